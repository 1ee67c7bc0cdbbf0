"""Fault drills: break one thing while real sipp callers talk to the real controller.

``hotline drill NAME --json`` and ``tests/ops/test_drills.py`` run the same code. Each
drill starts its own redis-server (AOF, free port), SQLite ticket store and controller,
places calls with sipp, injects the fault and prints what survived::

    {"drill": ..., "calls": ..., "failed": ..., "tickets_expected": ...,
     "tickets_found": ..., "lost": ..., "crashed": false, ...drill's own evidence}

``failed``: calls that did not end as the drill expects; ``lost``: work orders the bot
decided on (or, for a killed controller, the call's journal) that are not in the store.
What Asterisk adds around the bot leg is not here; ``controller-kill`` reads the
dialplan's fallback from telephony_config/extensions.conf instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.metrics import METRICS
from hotline.settings import Settings
from ops.faults import options_request
from testkit.ami_replay import ASTERISK20_SESSION, ReplayAsterisk, ReplayError
from testkit.bench import CallClip, outcome_label
from testkit.stack import NightSwitchboard, Stack, clips_from, stack_settings, tally
from tickets.redis_embedded import EmbeddedRedis

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent
FLOOD_PACKETS = 10_000
ATTACKER_HOST = "127.0.0.2"
# Longer than redis-py's own retries (~8 s) after the key press that files a work order
# mid-outage, with room for that press to come late on a loaded machine (CI saw the
# retries outlast a 10 s outage, so the queue never needed healing and nothing was shown).
REDIS_OUTAGE_S = 16.0


class DrillError(Exception):
    """The drill could not run (missing tool, controller would not start...)."""


class DrillSkipped(Exception):
    """This machine cannot inject the fault (e.g. no permission to mount a tmpfs)."""


@dataclass
class DrillKit:
    """What the drills share: settings, callers' clips, one loaded speech engine."""

    settings: Settings
    work: Path
    clips: list[CallClip]
    kb: Path | None = None
    engine_name: str = "whisper"
    engine: Any = None  # loaded once, shared by every drill's stack
    prompt_cache: Path | None = None  # rendered prompts, shared (they are slow to render)

    @classmethod
    def load(
        cls,
        settings: Settings,
        work: Path,
        audio: Path,
        kb: Path | None,
        engine_name: str = "whisper",
    ) -> DrillKit:
        from ivr.wiring import load_speech
        from voice.prompts import cache_dir

        work.mkdir(parents=True, exist_ok=True)
        clips = clips_from(audio, work)
        engine = load_speech(settings, engine_name)
        return cls(settings, work, clips, kb, engine_name, engine,
                   cache_dir(settings.ivr, settings.data_dir.resolve()))  # fmt: skip

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def clip(self, label: str, nth: int = 0) -> CallClip:
        found = [c for c in self.clips if c.expected.startswith(label)]
        if len(found) <= nth:
            raise DrillError(f"the callers' clips have no {nth + 1}. clip labelled {label!r}")
        return found[nth]

    def data_dir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stack(
        self, name: str, redis_url: str, switchboard: Any = None, *,
        database_url: str = "", data_dir: Path | None = None, ivr: dict[str, Any] | None = None,
        max_calls: int = 8,
    ) -> Stack:  # fmt: skip
        """``database_url``: else SQLite in the data folder; ``data_dir``: else the
        drill's own folder; ``ivr``: settings of ``ivr`` to change."""
        data = data_dir or self.work / name
        data.mkdir(parents=True, exist_ok=True)
        settings = stack_settings(self.settings, data, redis_url, f"drill-{name}")
        if database_url:
            tickets = settings.tickets.model_copy(update={"database_url": database_url})
            settings = settings.model_copy(update={"tickets": tickets})
        # Every drill's controller shares the kit's rendered prompts (ivr.prompt_cache_dir).
        ivr = {"prompt_cache_dir": self.prompt_cache, **(ivr or {})}
        settings = settings.model_copy(update={"ivr": settings.ivr.model_copy(update=ivr)})
        return Stack(settings, engine_name=self.engine_name, kb=self.kb,
                     switchboard=switchboard or NightSwitchboard(False), max_calls=max_calls,
                     shared_engine=self.engine)  # fmt: skip


@contextlib.asynccontextmanager
async def running(stack: Stack) -> AsyncIterator[Stack]:
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()


async def result(name: str, stack: Stack, calls: dict[str, int]) -> dict[str, Any]:
    """The common counts, and whether the controller still answers SIP (not crashed)."""
    counts = await asyncio.to_thread(tally, stack, calls)
    crashed = not await asyncio.to_thread(sip_ping, stack.port)
    return {"drill": name, **counts, "crashed": crashed}


# ---- small tools ----------------------------------------------------------------------


def sip_ping(port: int, host: str = "127.0.0.1", timeout_s: float = 3.0) -> bool:
    """An OPTIONS request answered (any final response) = the SIP endpoint is alive."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout_s)
        local = sock.getsockname()[1]
        request = options_request(host, port, local, f"drill{random.randrange(10**9)}")
        try:
            sock.sendto(request, (host, port))
            reply, _ = sock.recvfrom(4096)
        except OSError:
            return False
    return reply.startswith(b"SIP/2.0 ")


def counter(name: str, **labels: str) -> float:
    return float(METRICS.registry.get_sample_value(name, labels or None) or 0.0)


class LogCapture(logging.Handler):
    """Log lines of the drill's run, to show the error a fault produced."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")

    def __enter__(self) -> LogCapture:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout_s: float, every_s: float = 0.2, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(every_s)
    if what:
        raise DrillError(f"{what} did not happen within {timeout_s:.0f} s")
    return None


# ---- controller killed mid-call -------------------------------------------------------


def controller_env(kit: DrillKit, data: Path, redis_url: str, sip_port: int,
                   **extra: str) -> dict[str, str]:  # fmt: skip
    low = 44000 + (sip_port % 50) * 40
    env = {**os.environ,
           "HOTLINE_DATA_DIR": str(data), "HOTLINE_SIP__BIND_HOST": "127.0.0.1",
           "HOTLINE_SIP__BIND_PORT": str(sip_port), "HOTLINE_SIP__RTP_PORT_LOW": str(low),
           "HOTLINE_SIP__RTP_PORT_HIGH": str(low + 30), "HOTLINE_SIP__REGISTRAR_HOST": "",
           "HOTLINE_SIP__STRICT_RTP": "false",  # sipp's keys come from another port
           "HOTLINE_AMI__URL": "", "HOTLINE_IVR__REDIS_URL": redis_url,
           "HOTLINE_TICKETS__REDIS_URL": redis_url, "HOTLINE_TICKETS__EMBEDDED_REDIS": "never",
           "HOTLINE_TICKETS__DATABASE_URL": f"sqlite:///{data / 'tickets.db'}",
           "HOTLINE_TICKETS__KEY_PREFIX": "drill-kill", "HOTLINE_BOT__MANAGED_CONFIG": "false",
           "HOTLINE_OBSERVABILITY__METRICS_PORT": "0", "HOTLINE_IVR__SATISFACTION_SURVEY": "false",
           **extra}  # fmt: skip
    if kit.kb is not None:
        env["HOTLINE_BOT__KB"] = str(kit.kb)
    if kit.prompt_cache is not None:  # the kit's rendered prompts, shared with its stacks
        env.setdefault("HOTLINE_IVR__PROMPT_CACHE_DIR", str(kit.prompt_cache))
    return env


class ControllerProcess:
    """``hotline run`` in a subprocess, as production runs it."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, engine: str) -> None:
        self.env, self.port, self.log_path, self.engine = env, port, log_path, engine
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout_s: float = 120.0) -> ControllerProcess:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hotline.cli", "run", "--engine", self.engine],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

        async def answering() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise DrillError(f"hotline run exited ({self.proc.returncode}): {self.tail()}")
            return await asyncio.to_thread(sip_ping, self.port, "127.0.0.1", 0.3)

        await wait_for(answering, timeout_s, 0.3, what="the controller answering OPTIONS")
        return self

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return await asyncio.to_thread(self.proc.wait, 20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return await asyncio.to_thread(self.proc.wait, 5)


def dialplan_fallback(conf: Path = REPO / "telephony_config" / "extensions.conf") -> str:
    """Where Asterisk sends a caller whose bot leg died without HOTLINE_DONE=1."""
    lines = conf.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if "HOTLINE_DONE" in line and "GotoIf" in line:
            jump = re.search(r"Goto\([^)]*\)", lines[index + 1])
            if jump:
                return jump.group(0)
    return ""


async def drill_controller_kill(kit: DrillKit) -> dict[str, Any]:
    """kill -9 of ``hotline run`` mid-call: the journal's partial transcript becomes a
    ticket at the next controller start; the caller's leg dies (sipp's BYE goes
    unanswered), and Asterisk's dialplan would queue the caller for a person."""
    import redis.asyncio as aioredis

    from ivr.journal import ACTIVE, JournalEntry, JournalEvent
    from ivr.wiring import load_brain
    from testkit.callers import Caller, free_udp_port, sipp_command
    from tickets.service import TicketService
    from voice.prompts import PromptLibrary

    data = kit.data_dir("controller-kill")
    clip = kit.clip("complaint")
    with EmbeddedRedis(data / "redis") as server:
        port = free_udp_port()
        env = controller_env(kit, data, server.url, port)
        settings = stack_settings(kit.settings, data, server.url, "drill-kill")
        # The greeting's length, from the same prompt cache the controller renders into.
        brain = await asyncio.to_thread(load_brain, settings, kit.kb)
        prompts = PromptLibrary.from_settings(settings.ivr, data, settings.models_dir)
        greeting = await asyncio.to_thread(prompts.get, brain.prompts.text("greeting"),
                                           "greeting")  # fmt: skip
        first = await ControllerProcess(env, port, data / "controller-1.log",
                                        kit.engine_name).start()  # fmt: skip
        redis = aioredis.from_url(server.url)
        service = await asyncio.to_thread(TicketService.from_settings, settings)
        number = "13800990001"
        caller = Caller(free_udp_port(), caller=number)
        caller.wait(int(greeting.seconds * 1000) + 300).speak(clip.raw)
        caller.hang_up_unless_bye(int(clip.seconds * 1000) + 3000)
        work = kit.work / "controller-kill-sipp"
        work.mkdir(exist_ok=True)
        cmd = sipp_command(caller.scenario(), ("127.0.0.1", port), work, local_port=free_udp_port(),
                           media_port=caller.media_port, name=number,
                           timeout_s=greeting.seconds + clip.seconds + 40)  # fmt: skip
        cmd += ["-max_non_invite_retrans", "3"]  # the BYE to a dead peer: give up sooner
        sipp = await asyncio.create_subprocess_exec(
            *cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)  # fmt: skip
        second: ControllerProcess | None = None
        try:

            async def utterance_journaled() -> str:
                client: Any = redis
                for key in await client.keys("hotline:call:*"):
                    for _, fields in await client.xrange(key):
                        entry = JournalEntry.decode(fields)
                        if entry is not None and entry.kind is JournalEvent.UTTERANCE:
                            return str(key.decode()).split(":", 2)[2]
                return ""

            call_id = await wait_for(utterance_journaled, 90, what="the caller's words "
                                     "reaching the journal")  # fmt: skip
            first.kill()
            killed = time.monotonic()
            sipp_exit = await asyncio.wait_for(sipp.wait(), 90)
            caller_noticed_s = time.monotonic() - killed
            errors = "".join(p.read_text(errors="replace") for p in work.glob("sipp-errors-*"))
            await asyncio.sleep(2.5)  # the dead controller's heartbeat is now stale
            second = await ControllerProcess(
                {**env, "HOTLINE_IVR__ORPHAN_STALE_S": "2"}, port, data / "controller-2.log",
                kit.engine_name).start()  # fmt: skip

            async def recovered() -> Any:
                return await asyncio.to_thread(_ticket_for, service, call_id)

            ticket = await wait_for(recovered, 60)
            still_active = await redis.hlen(ACTIVE)
            crashed = second.proc is not None and second.proc.poll() is not None
        finally:
            if sipp.returncode is None:
                sipp.kill()
            first.kill()
            if second is not None:
                await second.stop()
            await redis.aclose()
            service.store.dispose()
            service.queue.redis.close()
    caller_words = [line["text"] for line in (ticket.transcript if ticket else [])
                    if line.get("speaker") == "caller"]  # fmt: skip
    return {
        "drill": "controller-kill", "calls": 1, "failed": int(ticket is None),
        "tickets_expected": 1, "tickets_found": int(ticket is not None),
        "lost": int(ticket is None), "crashed": crashed,
        "recovered_ticket": ticket.number if ticket else "",
        "ticket_type": ticket.type if ticket else "", "caller_words_kept": caller_words,
        "journal_left_active": still_active,
        "caller_leg": {"sipp_exit": sipp_exit, "bye_answered": "BYE" not in errors
                       and sipp_exit == 0, "ended_after_kill_s": round(caller_noticed_s, 1),
                       "sipp_error": _last_error(errors)},
        "dialplan_fallback": dialplan_fallback(),
    }  # fmt: skip


def _ticket_for(service: Any, call_id: str) -> Any:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from tickets.models import TicketRow

    with Session(service.store.engine, expire_on_commit=False) as db:
        row = db.execute(select(TicketRow).where(TicketRow.call_id == call_id)).scalars().first()
        if row is not None:
            db.expunge(row)
        return row


def _last_error(text: str) -> str:
    """sipp's error log: timestamped messages, not always one per line; the messages."""
    parts = re.split(r"\d{4}-\d\d-\d\d\t[\d:.]+\t[\d.]+: ", text)
    messages = [re.sub(r"Call-Id: \S+, ", "", p.strip())[:90] for p in parts if p.strip()]
    return " | ".join(messages[-2:])


# ---- Redis restarted while calls run --------------------------------------------------


async def drill_redis_restart(kit: DrillKit) -> dict[str, Any]:
    """Redis (AOF) dies and comes back on the same port mid-call: calls go on, every
    ticket is in SQL and, without anyone running ``reconcile``, back in the seat queue
    (the controller reconciles when Redis returns); no call is left in the journal's
    active list (it would become a duplicate orphan ticket)."""
    import redis as sync_redis

    from ivr.journal import ACTIVE
    from ops.faults import OptionsProbe

    data = kit.data_dir("redis-restart")
    server = EmbeddedRedis(data / "redis").start()
    calls: dict[str, int] = {}
    failures_before = counter("hotline_journal_failures_total")
    requeued_before = counter("hotline_tickets_requeued_total")
    try:
        stack = kit.stack("redis-restart", server.url)
        async with running(stack):
            work = kit.work / "redis-restart-sipp"
            work.mkdir(exist_ok=True)
            plan = [
                ("13800990101", kit.clip("complaint"), ""),
                ("13800990102", kit.clip("complaint", 1), ""),
                ("13800990103", kit.clip("complaint"), "0"),
            ]  # "0": a person, a ticket

            async def place(number: str, clip: CallClip, keys: str) -> None:
                calls[number] = await stack.call(clip, number, work, keys=keys)

            tasks = [asyncio.create_task(place(*p)) for p in plan]
            await asyncio.sleep(stack.greeting_s)  # outage from the first key press on
            with OptionsProbe(stack.port) as probe:
                assert server.process is not None
                server.process.kill()  # a crash: no shutdown save, the AOF is what remains
                await asyncio.to_thread(server.process.wait)
                down_at = time.monotonic()
                # Longer than redis-py's own retries (10, backing off to 1 s: ~8 s), so an
                # intake during the outage really finds Redis away and the queue must heal.
                await asyncio.sleep(REDIS_OUTAGE_S)
                server.start()
                outage_s = time.monotonic() - down_at
                await asyncio.gather(*tasks)
            outcome = await accounted("redis-restart", stack, calls)
            assert stack.service is not None
            queued = await asyncio.to_thread(stack.service.queue.queued_tickets)
            tickets = await asyncio.to_thread(stack.tickets_by_call)
            client = sync_redis.Redis.from_url(server.url)

            async def journals_closed() -> bool:
                return int(await asyncio.to_thread(client.hlen, ACTIVE)) == 0

            # A call whose work order reached SQL but not the queue while Redis was away
            # keeps its journal for orphan recovery, which files it again (idempotent per
            # call) within orphan_stale_s + a scan; then nothing may be left.
            stale_s = stack.settings.ivr.orphan_stale_s
            await wait_for(journals_closed, stale_s + 5 * stack.upkeep_every_s + 10, 0.5)
            left_active = int(client.hlen(ACTIVE))
            client.close()
            numbers = {t.number for t in tickets.values()}
            outcome.update(await calls_after_fault(stack, kit, work, 110))
            outcome.update({
                "outage_s": round(outage_s, 1),
                "requeued_by_controller": counter("hotline_tickets_requeued_total")
                - requeued_before,
                "tickets_not_in_queue": sorted(numbers - queued),
                "journal_failures": counter("hotline_journal_failures_total") - failures_before,
                "journal_left_active": left_active,
                "options_during_fault": probe.summary(),
            })  # fmt: skip
            await asyncio.to_thread(stack.service.queue.drop_all)
            return outcome
    finally:
        server.stop()


# ---- AMI connection dropped -----------------------------------------------------------


async def drill_ami_drop(kit: DrillKit) -> dict[str, Any]:
    """Asterisk's AMI goes away while calls run: a caller asking for a person during the
    outage still gets a ticket and is handed to the dialplan (hang-up without
    HOTLINE_DONE, so Asterisk queues the caller); the client reconnects with back-off, and
    the QueueStatus after the new login re-syncs seat presence: the seat that logged off
    while the connection was down (no event reached us) puts the bot in night mode."""
    from ivr.ami import AmiClient

    data = kit.data_dir("ami-drop")
    try:
        asterisk = ReplayAsterisk(ASTERISK20_SESSION, password="drill")
    except ReplayError as exc:
        raise DrillError(str(exc)) from exc
    port = await asterisk.start()
    ami = AmiClient(f"ami://hotline:drill@127.0.0.1:{port}", ping_interval_s=0.5,
                    reconnect_max_s=1.0, queues=kit.settings.ami.queues)  # fmt: skip
    calls: dict[str, int] = {}
    number = "13800990201"
    with EmbeddedRedis(data / "redis") as server:
        stack = kit.stack("ami-drop", server.url, switchboard=ami)
        try:
            if not await ami.start():
                raise DrillError("the AMI client could not log in to the replayed Asterisk")
            seats_before = ami.seats_available("general")
            async with running(stack):
                work = kit.work / "ami-drop-sipp"
                work.mkdir(exist_ok=True)
                await asterisk.stop()  # Asterisk restarts: the socket dies, no listener
                # 15 s: on a loaded 2-core CI machine 5 s once proved too short to see the reset.
                await wait_for(lambda: _false(ami.connected), 15, what="the AMI loss noticed")
                calls[number] = await stack.call(kit.clip("complaint"), number, work, keys="0")
                await stack.settle()
                # Back, but seat-101 did not log in again: only QueueStatus can tell.
                status = asterisk.replies["queuestatus"]
                asterisk.replies["queuestatus"] = status.replace("Status: 1\n", "Status: 5\n")
                await asterisk.start()  # same port
                await wait_for(lambda: _true(ami.connected and ami.logins >= 2), 15,
                               what="the AMI client reconnecting")  # fmt: skip
                outcome = await result("ami-drop", stack, calls)
                record = next((r for r in stack.controller.records  # type: ignore[union-attr]
                               if r.caller == number), None)  # fmt: skip
                outcome.update({
                    "logins": ami.logins,
                    "queue_status_requests": [a.get("Action") for a in asterisk.actions]
                    .count("QueueStatus"),
                    "seats_before": seats_before,
                    "seats_after_resync": ami.seats_available("general"),
                    "outage_call": {"outcome": record.outcome if record else "",
                                    "ticket": record.ticket if record else "",
                                    "hangup_by": record.hangup_by if record else "",
                                    "marked_done": any(a.get("Variable") == "HOTLINE_DONE"
                                                       for a in asterisk.actions)},
                })  # fmt: skip
                assert stack.service is not None
                await asyncio.to_thread(stack.service.queue.drop_all)
                return outcome
        finally:
            await ami.stop()
            await asterisk.stop()


async def _true(value: bool) -> bool:
    return value


async def _false(value: bool) -> bool:
    return not value


# ---- SIP flood and garbage RTP ---------------------------------------------------------


async def run_outside(code: str, what: str) -> str:
    """Run ``code`` in its own process (an attacker does not share the controller's GIL);
    what it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise DrillError(f"{what} did not run: {err.decode(errors='replace')[-300:]}")
    return out.decode().strip()


async def attack_from_outside(code: str, what: str) -> int:
    """``run_outside`` for code that prints a count."""
    return int(await run_outside(code, what))


async def flood_from_outside(sip_port: int, rtp_port: int, count: int, spread_s: float) -> int:
    code = (
        f"from ops.flood import flood; print(flood(('127.0.0.1', {sip_port}), "
        f"('127.0.0.1', {rtp_port}), {count}, {spread_s}))"
    )
    return await attack_from_outside(code, "the flood")


async def drill_sip_flood(kit: DrillKit) -> dict[str, Any]:
    """10,000 malformed SIP datagrams at the SIP port and garbage RTP at a live call's
    RTP port while the caller speaks: no crash, the call's audio stays paced and it ends
    with the outcome its words ask for."""
    data = kit.data_dir("sip-flood")
    clip = kit.clip("kb:")
    malformed_before = counter("hotline_sip_malformed_packets_total")
    with EmbeddedRedis(data / "redis") as server:
        stack = kit.stack("sip-flood", server.url)
        async with running(stack):
            assert stack.controller is not None and stack.controller.clock is not None
            work = kit.work / "sip-flood-sipp"
            work.mkdir(exist_ok=True)
            number = "13800990301"
            call = asyncio.create_task(stack.call(clip, number, work))
            session = await wait_for(lambda: _session(stack), 20, 0.05, what="the call")
            rtp_port = session.stream.sock.getsockname()[1]
            clock = stack.controller.clock.stats
            # The same call before the flood (the greeting playing) is the baseline.
            base_ticks, base_late = clock.ticks, clock.late_ticks
            await asyncio.sleep(max(0.0, stack.greeting_s - 0.5))  # the caller starts talking
            ticks, late = clock.ticks, clock.late_ticks
            base_ticks, base_late = ticks - base_ticks, late - base_late
            worst_before = clock.max_late_ms
            sent = await flood_from_outside(stack.port, rtp_port, FLOOD_PACKETS, 3.0)
            ticks, late = clock.ticks - ticks, clock.late_ticks - late
            alive_during = await asyncio.to_thread(sip_ping, stack.port)
            code = await call
            await stack.settle()
            record = next((r for r in stack.controller.records if r.caller == number), None)
            stats = stack.controller.stream_stats.get(record.call_id) if record else None
            answers = {e.answer: e.id for e in stack.brain.kb}
            label = (
                outcome_label(stack.recorders[number], answers) if number in stack.recorders else ""
            )
            outcome = await result("sip-flood", stack, {number: code})
            right = label == clip.expected
            outcome["failed"] += int(not right and not outcome["failed"])
            outcome.update({
                "sip_garbage_sent": sent, "rtp_garbage_sent": sent,
                "malformed_counted": counter("hotline_sip_malformed_packets_total")
                - malformed_before,
                "rtp_foreign_dropped": stats.foreign_dropped if stats else 0,
                "keys_heard": record.dtmf if record else "",
                "media_ticks_before_flood": base_ticks, "late_ticks_before_flood": base_late,
                "media_ticks_during_flood": ticks, "late_ticks_during_flood": late,
                "worst_late_ms_during_flood": round(clock.max_late_ms, 1)
                if clock.max_late_ms > worst_before else None,
                "answered_during_flood": alive_during,
                "expected": clip.expected, "outcome": label,
                "call_outcome": record.outcome if record else "",
            })  # fmt: skip
            assert stack.service is not None
            await asyncio.to_thread(stack.service.queue.drop_all)
            return outcome


async def _session(stack: Stack) -> Any:
    sessions = list(stack.controller.sessions.values()) if stack.controller else []
    return sessions[0] if sessions else None


# ---- disk full for recordings ---------------------------------------------------------


def mount_tmpfs(path: Path, size: str = "64k") -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise DrillSkipped(f"cannot mount a {size} tmpfs on {path} "
                           f"({(done.stderr or done.stdout).strip() or 'mount failed'}): "
                           "run as root (or in a container with CAP_SYS_ADMIN)")  # fmt: skip


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


async def drill_disk_full(kit: DrillKit) -> dict[str, Any]:
    """Recordings go to a 64 KiB tmpfs that a call fills: the failure is logged clearly
    and counted, no half-written WAV stays, and the calls and their tickets go on."""
    data = kit.data_dir("disk-full")
    recordings = data / "recordings"
    mount_tmpfs(recordings)
    failures_before = counter("hotline_recording_failures_total", reason="ENOSPC")
    try:
        with EmbeddedRedis(data / "redis") as server, LogCapture() as logs:
            stack = kit.stack("disk-full", server.url)
            async with running(stack):
                work = kit.work / "disk-full-sipp"
                work.mkdir(exist_ok=True)
                plan = {"13800990401": kit.clip("complaint"), "13800990402": kit.clip("kb:")}
                codes = await asyncio.gather(*(stack.call(clip, number, work)
                                               for number, clip in plan.items()))  # fmt: skip
                await stack.settle()
                outcome = await result("disk-full", stack, dict(zip(plan, codes, strict=True)))
                wavs = [str(p) for p in recordings.rglob("*.wav")]
                records = list((data / "calls").rglob("*.json"))
                errors = [line for line in logs.lines if "ENOSPC" in line]
                outcome.update({
                    "recording_failures": counter("hotline_recording_failures_total",
                                                  reason="ENOSPC") - failures_before,
                    "error_logged": errors[0] if errors else "",
                    "wavs_left": wavs, "call_records_saved": len(records),
                })  # fmt: skip
                assert stack.service is not None
                await asyncio.to_thread(stack.service.queue.drop_all)
                return outcome
    finally:
        unmount(recordings)


# ---- issue-13 drills: every one accounts for the calls the same way ------------------


def accounting(stack: Stack, calls: dict[str, int]) -> dict[str, Any]:
    """Calls placed (number -> sipp exit) against SQL and the seat queue, counted by the
    caller's number (each drill call has its own), not by the bot's own records only:
    ``filed``: calls with a work order; ``queued``: of those, on the seat queue;
    ``duplicated``: work orders beyond one per call; ``lost``: decided on, not in SQL."""
    from collections import Counter

    counts = tally(stack, calls)
    assert stack.service is not None
    rows = [r for r in stack.tickets_by_call().values() if r.caller_number in calls]
    per_caller = Counter(r.caller_number for r in rows)
    queued = stack.service.queue.queued_tickets()
    return {
        "placed": len(calls), "failed": counts["failed"],
        "tickets_expected": counts["tickets_expected"], "tickets_found": counts["tickets_found"],
        "filed": len(per_caller), "queued": sum(r.number in queued for r in rows),
        "duplicated": sum(n - 1 for n in per_caller.values()), "lost": counts["lost"],
    }  # fmt: skip


async def accounted(name: str, stack: Stack, calls: dict[str, int],
                    settle_s: float = 20.0) -> dict[str, Any]:  # fmt: skip
    """The accounting once every decided work order is filed and queued (the spool and
    the queue heal in the background) or ``settle_s`` has passed."""
    await stack.settle()

    async def complete() -> bool:
        counts = await asyncio.to_thread(accounting, stack, calls)
        return counts["lost"] == 0 and counts["queued"] >= counts["filed"]

    await wait_for(complete, settle_s, 0.5)
    counts = await asyncio.to_thread(accounting, stack, calls)
    crashed = not await asyncio.to_thread(sip_ping, stack.port)
    return {"drill": name, **counts, "crashed": crashed}


async def calls_after_fault(stack: Stack, kit: DrillKit, work: Path, first: int,
                            count: int = 2) -> dict[str, Any]:  # fmt: skip
    """Consultation calls once the fault is over: two-way audio = the caller's words were
    heard (the bot gave the clip's expected answer) and the bot's audio was sent (at
    least 80 % of the greeting's packets)."""
    assert stack.controller is not None
    clip = kit.clip("kb:")
    numbers = [f"138009{first + n:05d}" for n in range(count)]
    codes = await asyncio.gather(*(stack.call(clip, n, work) for n in numbers))
    await stack.settle()
    await asyncio.sleep(0.5)  # the media process reports a finished call's packets
    answers = {e.answer: e.id for e in stack.brain.kb}
    records = {r.caller: r for r in stack.controller.records}
    two_way = 0
    for number, code in zip(numbers, codes, strict=True):
        record = records.get(number)
        stats = stack.controller.stream_stats.get(record.call_id) if record else None
        heard = number in stack.recorders and (
            outcome_label(stack.recorders[number], answers) == clip.expected
        )
        sent = stats is not None and stats.packets_out >= 50 * stack.greeting_s * 0.8
        two_way += int(code == 0 and heard and sent and stats is not None
                       and stats.packets_in >= 50)  # fmt: skip
    return {"calls_after": count, "two_way_after": two_way}


async def bomb_from_outside(sip_port: int, duration_s: float, every_s: float) -> int:
    code = (f"from ops.flood import sip_bomb; "
            f"print(sip_bomb(('127.0.0.1', {sip_port}), {duration_s}, {every_s}))")  # fmt: skip
    return await attack_from_outside(code, "the SIP bomb")


def refused_counts() -> dict[str, float]:
    reasons = ("oversized", "not-sip", "too-many-headers", "header-too-long", "unparseable")
    return {r: counter("hotline_sip_refused_datagrams_total", reason=r) for r in reasons}


async def drill_sip_bomb(kit: DrillKit) -> dict[str, Any]:
    """Datagrams as large as UDP allows (and 8 KB ones with thousands of header lines or
    one endless header) every 50 ms at the SIP port while two complaint calls run:
    OPTIONS keep being answered within milliseconds, the calls file one work order each."""
    from ops.faults import OptionsProbe

    data = kit.data_dir("sip-bomb")
    refused_before = refused_counts()
    with EmbeddedRedis(data / "redis") as server:
        stack = kit.stack("sip-bomb", server.url)
        async with running(stack):
            work = kit.work / "sip-bomb-sipp"
            work.mkdir(exist_ok=True)
            plan = {"13800990501": kit.clip("complaint"), "13800990502": kit.clip("complaint", 1)}
            calls = [asyncio.create_task(stack.call(clip, n, work)) for n, clip in plan.items()]
            with OptionsProbe(stack.port) as probe:
                sent = await bomb_from_outside(stack.port, stack.greeting_s + 10, 0.05)
            codes = await asyncio.gather(*calls)
            outcome = await accounted("sip-bomb", stack, dict(zip(plan, codes, strict=True)))
            outcome.update(await calls_after_fault(stack, kit, work, 510))
            refused = {r: n - refused_before[r] for r, n in refused_counts().items()}
            outcome.update({"bomb_datagrams_sent": sent, "refused": refused,
                            "options_during_fault": probe.summary()})  # fmt: skip
            assert stack.service is not None
            await asyncio.to_thread(stack.service.queue.drop_all)
            return outcome


async def drill_sdp_bad(kit: DrillKit) -> dict[str, Any]:
    """INVITEs with impossible SDP (port 99999, no codec in common, a hostname...) while a
    call runs, then the media process killed (-9) under that call: each INVITE gets 488,
    the media process is replaced with the live call, and later calls have two-way audio."""
    from ops.faults import OptionsProbe, bad_offers, send_invite

    data = kit.data_dir("sdp-bad")
    restarts_before = counter("hotline_media_failures_total", reason="restarted")
    with EmbeddedRedis(data / "redis") as server:
        stack = kit.stack("sdp-bad", server.url)
        async with running(stack):
            assert stack.controller is not None
            work = kit.work / "sdp-bad-sipp"
            work.mkdir(exist_ok=True)
            number = "13800990601"
            live = asyncio.create_task(stack.call(kit.clip("kb:"), number, work))
            await wait_for(lambda: _session(stack), 20, 0.05, what="the live call")
            with OptionsProbe(stack.port) as probe:
                answers = {name: await asyncio.to_thread(send_invite, stack.port, sdp)
                           for name, sdp in bad_offers().items()}  # fmt: skip
                media = stack.controller.clock
                pid = getattr(media, "pid", None)
                if pid:
                    os.kill(pid, signal.SIGKILL)  # "dies for any reason"
                    await wait_for(lambda: _true(getattr(media, "pid", None) not in (None, pid)),
                                   10, 0.1, what="the media process being replaced")  # fmt: skip
                code = await live
            outcome = await accounted("sdp-bad", stack, {number: code})
            kb_answers = {e.answer: e.id for e in stack.brain.kb}
            heard = outcome_label(stack.recorders[number], kb_answers)
            outcome.update(await calls_after_fault(stack, kit, work, 610))
            outcome.update({
                "invites": answers, "media_process_killed": bool(pid),
                "media_restarts": counter("hotline_media_failures_total", reason="restarted")
                - restarts_before,
                "live_call": {"expected": kit.clip("kb:").expected, "outcome": heard},
                "options_during_fault": probe.summary(),
            })  # fmt: skip
            assert stack.service is not None
            await asyncio.to_thread(stack.service.queue.drop_all)
            return outcome


def postgres_server() -> str:
    """The PostgreSQL the sql-down drill borrows (a database of its own on it)."""
    default = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    return os.environ.get("HOTLINE_DRILL_PG", os.environ.get("HOTLINE_TEST_PG", default))


@contextlib.contextmanager
def drill_database(server_url: str, name: str) -> Any:
    """A fresh database on ``server_url`` for one drill, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        raise DrillSkipped(f"no PostgreSQL to stop at {make_url(server_url).host}:"
                           f"{make_url(server_url).port} ({exc.orig})") from exc  # fmt: skip
    try:
        yield make_url(server_url).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


SQL_OUTAGE_S = 30.0


async def drill_sql_down(kit: DrillKit) -> dict[str, Any]:
    """PostgreSQL stops for 30 s while complaint calls end (their work orders are filed
    at the end of the call): filing retries, then spools; the spool is filed when SQL is
    back, one work order per call, each on the seat queue."""
    from ops.faults import OptionsProbe, TcpOutage

    data = kit.data_dir("sql-down")
    spooled_before = counter("hotline_spooled_drafts_total", where="disk")
    with contextlib.ExitStack() as exit_stack:
        server = exit_stack.enter_context(EmbeddedRedis(data / "redis"))
        base = exit_stack.enter_context(drill_database(postgres_server(), "hotline_drill_sql_down"))
        relay = TcpOutage((base.host or "127.0.0.1", base.port or 5432))
        await relay.start()
        url = base.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        stack = kit.stack("sql-down", server.url, database_url=url)
        try:
            async with running(stack):
                work = kit.work / "sql-down-sipp"
                work.mkdir(exist_ok=True)
                plan = {"13800990701": (kit.clip("complaint"), ""),
                        "13800990702": (kit.clip("complaint", 1), ""),
                        "13800990703": (kit.clip("complaint"), "0")}  # fmt: skip
                calls = [asyncio.create_task(stack.call(clip, n, work, keys=keys))
                         for n, (clip, keys) in plan.items()]  # fmt: skip
                await asyncio.sleep(stack.greeting_s)
                with OptionsProbe(stack.port) as probe:
                    await relay.cut()
                    down_at = time.monotonic()
                    codes = await asyncio.gather(*calls)
                    await stack.settle()
                    spooled = counter("hotline_spooled_drafts_total", where="disk") - spooled_before
                    await asyncio.sleep(max(0.0, SQL_OUTAGE_S - (time.monotonic() - down_at)))
                    await relay.restore()
                    outage_s = time.monotonic() - down_at
                outcome = await accounted("sql-down", stack, dict(zip(plan, codes, strict=True)))
                outcome.update(await calls_after_fault(stack, kit, work, 710))
                assert stack.sink is not None and stack.sink.spool is not None
                outcome.update({
                    "outage_s": round(outage_s, 1), "spooled_during_outage": spooled,
                    "spool_left": len(stack.sink.spool), "held_in_memory": len(stack.sink.held),
                    "options_during_fault": probe.summary(),
                })  # fmt: skip
                assert stack.service is not None
                await asyncio.to_thread(stack.service.queue.drop_all)
                return outcome
        finally:
            await relay.stop()


async def drill_disk_full_sql(kit: DrillKit) -> dict[str, Any]:
    """The data disk (SQLite, spool, recordings on one file system) fills up. Nearly full
    (under the recordings reserve): recordings are refused, work orders filed. Completely
    full: SQLite and the spool refuse the work order, it is held in memory (and in the
    call journal) and filed as soon as space is freed."""
    from ops.faults import OptionsProbe, fill_disk

    reserve_mb = 4.0
    disk = kit.work / "disk-full-sql-disk"
    mount_tmpfs(disk, "24m")
    refused_before = counter("hotline_recording_failures_total", reason="reserve")
    held_before = counter("hotline_spooled_drafts_total", where="memory")
    try:
        with EmbeddedRedis(kit.data_dir("disk-full-sql") / "redis") as server:
            stack = kit.stack("disk-full-sql", server.url, data_dir=disk,
                              ivr={"recordings_reserve_mb": reserve_mb})  # fmt: skip
            async with running(stack):
                work = kit.work / "disk-full-sql-sipp"
                work.mkdir(exist_ok=True)
                with OptionsProbe(stack.port) as probe:
                    await asyncio.to_thread(fill_disk, disk, int(reserve_mb * 1e6 / 2))
                    nearly = {"13800990801": kit.clip("complaint")}
                    codes = [await stack.call(nearly["13800990801"], "13800990801", work)]
                    await stack.settle()
                    await asyncio.to_thread(fill_disk, disk, 0)
                    full = {"13800990802": kit.clip("complaint", 1)}
                    codes.append(await stack.call(full["13800990802"], "13800990802", work))
                    await stack.settle()
                    assert stack.sink is not None
                    held = len(stack.sink.held)
                    (disk / "filler.bin").unlink()  # the operator frees space
                calls = dict(zip([*nearly, *full], codes, strict=True))
                outcome = await accounted("disk-full-sql", stack, calls)
                outcome.update(await calls_after_fault(stack, kit, work, 810))
                outcome.update({
                    "recordings_refused": counter("hotline_recording_failures_total",
                                                  reason="reserve") - refused_before,
                    "held_when_full": held,
                    "held_counted": counter("hotline_spooled_drafts_total", where="memory")
                    - held_before,
                    "held_left": len(stack.sink.held),
                    "options_during_fault": probe.summary(),
                })  # fmt: skip
                assert stack.service is not None
                await asyncio.to_thread(stack.service.queue.drop_all)
                return outcome
    finally:
        unmount(disk)


NOACK_INVITES = 1000
NOACK_SPREAD_S = 5.0


async def unacked_from_outside(sip_port: int, count: int, spread_s: float) -> dict[str, int]:
    target = ("127.0.0.1", sip_port)
    code = ("import json; from ops.flood import unacked_invites; "
            f"print(json.dumps(unacked_invites({target!r}, {count}, {spread_s})))")  # fmt: skip
    return dict(json.loads(await run_outside(code, "the INVITE burst")))


async def drill_invite_noack(kit: DrillKit) -> dict[str, Any]:
    """1,000 INVITEs from a peer that never ACKs the 200 OK (a broken trunk, an attacker
    on the Asterisk network), with orphan recovery as eager as it gets (2 s): every slot
    is free again after Timer H (32 s), no journal is left in Redis and no work order is
    invented for a call nobody was on; a real caller gets through afterwards."""
    from ivr.journal import ACTIVE, STREAM

    data = kit.data_dir("invite-noack")
    with EmbeddedRedis(data / "redis") as server:
        # The production slot count (sip.max_calls 60), recovery scanning every 5 s.
        stack = kit.stack("invite-noack", server.url, ivr={"orphan_stale_s": 2.0},
                          max_calls=60)  # fmt: skip
        async with running(stack):
            assert stack.controller is not None and stack.service is not None
            controller = stack.controller
            started = time.monotonic()
            answers = await unacked_from_outside(stack.port, NOACK_INVITES, NOACK_SPREAD_S)
            burst_s = time.monotonic() - started
            most_busy = len(controller.endpoint.calls)

            async def slots_free() -> bool:
                return not controller.endpoint.calls and not controller.sessions

            await wait_for(slots_free, 45, 0.25, what="every slot free after Timer H")
            free_after_s = time.monotonic() - started
            # One more recovery pass than the stale limit needs: an invented ticket shows.
            await asyncio.sleep(2.0 + 5 * stack.upkeep_every_s + 1.0)
            journals_left = await asyncio.to_thread(_journals_left, server.url, ACTIVE, STREAM)
            tickets = await asyncio.to_thread(stack.tickets_by_call)
            invented = sum(r.caller_number.startswith("1390099") for r in tickets.values())
            work = kit.work / "invite-noack-sipp"
            work.mkdir(exist_ok=True)
            outcome = {"drill": "invite-noack", "invites": answers,
                       "burst_s": round(burst_s, 1), "slots_busy_at_most": most_busy,
                       "slots_free_after_s": round(free_after_s, 1),
                       "active_journals_left": journals_left, "spurious_tickets": invented,
                       "crashed": not await asyncio.to_thread(sip_ping, stack.port)}  # fmt: skip
            outcome.update(await calls_after_fault(stack, kit, work, 710))
            await asyncio.to_thread(stack.service.queue.drop_all)
            return outcome


def _journals_left(redis_url: str, active_key: str, stream_key: str) -> int:
    """Entries in the active-call list plus call journal streams still in Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        streams = sum(1 for _ in client.scan_iter(stream_key.format("*"), count=1000))
        return int(client.hlen(active_key)) + streams
    finally:
        client.close()


DRILLS: dict[str, Callable[[DrillKit], Awaitable[dict[str, Any]]]] = {
    "controller-kill": drill_controller_kill,
    "redis-restart": drill_redis_restart,
    "ami-drop": drill_ami_drop,
    "sip-flood": drill_sip_flood,
    "disk-full": drill_disk_full,
    "sip-bomb": drill_sip_bomb,
    "sdp-bad": drill_sdp_bad,
    "sql-down": drill_sql_down,
    "disk-full-sql": drill_disk_full_sql,
    "invite-noack": drill_invite_noack,
}


async def run_drill(name: str, kit: DrillKit) -> dict[str, Any]:
    """One drill; a fault this machine cannot inject gives ``{"skipped": reason}``."""
    try:
        return await DRILLS[name](kit)
    except DrillSkipped as exc:
        return {"drill": name, "skipped": str(exc)}


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False)
