"""``hotline bench tickets``: tickets created per second and screen-pop latency.

Pop latency is measured end to end as an operator sees it: from the moment the bot hands
its draft to ``TicketService.intake`` until the 'pop' event arrives on an operator's open
console connection (the real /events server-sent-event stream over HTTP).
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from console.app import create_app
from console.server import serve_in_thread
from hotline.draft import Address, Caller, FiveElements, RequestType, TicketDraft, TranscriptLine
from hotline.settings import Settings
from tickets.accounts import (
    AccountStore,
    Role,
)
from tickets.redis_embedded import free_port
from tickets.service import TicketService

SEAT = "8001"


def sample_draft(i: int) -> TicketDraft:
    return TicketDraft(
        type=RequestType.COMPLAINT if i % 3 else RequestType.HELP,
        topic=("夜间施工噪音", "路灯不亮", "消防通道占用")[i % 3],
        department="市城市管理局",
        elements=FiveElements(
            where=f"龙华区滨海大道{i}号",
            when="昨晚十点以后",
            who_what="工地",
            what_happened="工地夜间施工噪音很大，影响休息",
            caller_wants="希望停止夜间施工",
            address=Address(district="龙华区", street="滨海大道", building=f"{i}号"),
        ),
        caller=Caller(number=f"1380000{i % 10000:04d}"),
        summary="夜间施工扰民",
        handover_reason="投诉需人工登记",
        call_id=f"bench-{i}",
        transcript=[
            TranscriptLine(speaker="caller", text="工地晚上一直施工太吵了", confidence=0.9)
        ],
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _produce(
    settings: Settings, first: int, count: int, threads: int, start: Any, out: Any
) -> None:
    """One producer process (a controller node, its calls on ``threads`` worker threads as
    the call sessions' ``asyncio.to_thread`` would run them): waits, then intakes."""
    service = TicketService.from_settings(settings)
    drafts = [sample_draft(i) for i in range(first, first + count)]
    service.queue.ensure_groups()
    out.put(("ready", []))
    start.wait()
    with ThreadPoolExecutor(threads) as pool:
        numbers = [t.number for t in pool.map(partial(service.intake, skill="general"), drafts)]
    out.put(("done", numbers))


def create_concurrently(
    settings: Settings, count: int, producers: int, threads: int = 4
) -> tuple[list[str], float]:
    """Tickets created by ``producers`` processes at once; returns numbers and tickets/s."""
    context = multiprocessing.get_context("spawn")  # the caller has threads: no fork
    start, out = context.Event(), context.Queue()
    shares = [count // producers + (1 if i < count % producers else 0) for i in range(producers)]
    firsts = [sum(shares[:i]) for i in range(producers)]
    workers = [
        context.Process(target=_produce, args=(settings, f, n, threads, start, out), daemon=True)
        for f, n in zip(firsts, shares, strict=True)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        out.get(timeout=120)  # ready
    began = time.perf_counter()
    start.set()
    numbers: list[str] = []
    for _ in workers:
        numbers += out.get(timeout=600)[1]
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.join(timeout=30)
    return numbers, count / elapsed


def run_bench(
    settings: Settings,
    redis_url: str,
    *,
    count: int,
    pops: int,
    database_url: str | None = None,
    producers: int = 1,
    threads: int = 4,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        cfg = settings.tickets.model_copy(
            update={
                "database_url": database_url or f"sqlite:///{Path(tmp) / 'bench.db'}",
                "redis_url": redis_url,
                "key_prefix": f"bench-{uuid.uuid4().hex[:8]}",
            }
        )
        bench_settings = settings.model_copy(update={"tickets": cfg, "data_dir": Path(tmp)})
        service = TicketService.from_settings(bench_settings)
        try:
            return _measure(bench_settings, service, count, pops, producers, threads)
        finally:
            service.queue.drop_all()
            service.store.dispose()


def _serve_console(settings: Settings, port: int, started: Any, stop: Any) -> None:
    """The operator console in its own process, as deployed."""
    app = create_app(settings, reconcile_every_s=3600)
    with serve_in_thread(app, port):
        started.set()
        stop.wait()


def _measure(
    settings: Settings, service: TicketService, count: int, pops: int, producers: int, threads: int
) -> dict[str, Any]:
    accounts = AccountStore(service.store, timedelta(hours=1))
    password = uuid.uuid4().hex
    username = f"bench-{uuid.uuid4().hex[:8]}"  # the database may be reused between runs
    account = accounts.add(username, password, Role.OPERATOR, extension=SEAT)
    pop_drafts = [sample_draft(i) for i in range(count, count + pops)]
    context = multiprocessing.get_context("spawn")
    started, stop = context.Event(), context.Event()
    port = free_port()
    server = context.Process(
        target=_serve_console, args=(settings, port, started, stop), daemon=True
    )
    server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        if not started.wait(60):
            raise RuntimeError("the console did not start")
        token = httpx.post(
            f"{base}/api/v1/auth/token", json={"username": username, "password": password}
        ).json()["token"]
        received: dict[str, float] = {}
        arrived = threading.Condition()
        ready = threading.Event()
        client = httpx.Client(
            base_url=base, cookies={"hotline_session": token}, timeout=httpx.Timeout(5.0, read=None)
        )

        def listen() -> None:
            event = ""
            try:
                with client.stream("GET", "/events") as response:
                    for line in response.iter_lines():
                        if line.startswith("retry:"):
                            ready.set()
                        elif line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:") and event == "pop":
                            number = json.loads(line[5:])["ticket"]
                            with arrived:
                                received[number] = time.perf_counter()
                                arrived.notify_all()
            except (httpx.HTTPError, RuntimeError):
                pass  # closed by the main thread when the measurement is over

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        if not ready.wait(10):
            raise RuntimeError("the console's event stream did not open")

        created, created_per_s = create_concurrently(settings, count, producers, threads)

        latencies: list[float] = []
        missed = 0
        for draft in pop_drafts:
            t0 = time.perf_counter()
            ticket = service.intake(draft, skill="general")
            service.screen_pop(ticket.number, SEAT, account)
            created.append(ticket.number)
            with arrived:
                if not arrived.wait_for(partial(received.__contains__, ticket.number), 2.0):
                    missed += 1
                    continue
            latencies.append((received[ticket.number] - t0) * 1000)
        client.close()
        listener.join(timeout=5)
    finally:
        stop.set()
        server.join(timeout=15)

    expected = count + pops
    in_sql = service.store.existing(created)
    queued = service.queue.queued_tickets()
    lost = (expected - len(set(created))) + (expected - len(in_sql)) + missed
    lost += sum(1 for number in created[:count] if number not in queued)
    return {
        "created_per_s": round(created_per_s, 1),
        "pop_latency_ms_p50": round(statistics.median(latencies), 2) if latencies else None,
        "pop_latency_ms_p95": round(_percentile(latencies, 0.95), 2) if latencies else None,
        "lost": lost,
    }
