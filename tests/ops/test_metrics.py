"""Prometheus metrics: names and labels the dashboards rely on, read from real sources."""

from __future__ import annotations

import time
import urllib.request

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from hotline.draft import RequestType, Urgency
from hotline.metrics import METRICS, Metrics, ReplyClock, counts, start_metrics_server
from hotline.settings import Settings
from tests.console.helpers import make_env
from tests.tickets.support import make_draft
from tickets.service import TicketService


def test_calls_capacity_and_tickets_are_exported() -> None:
    metrics = Metrics(CollectorRegistry())
    live = ["a", "b", "c"]
    metrics.track_calls(lambda: len(live), capacity=60)
    for outcome in ("ticket", "ticket", "answered", ""):
        metrics.call_ended(outcome)
    metrics.ticket_created(RequestType.COMPLAINT)
    metrics.calls_refused.labels(reason="busy").inc()
    live.pop()
    text = generate_latest(metrics.registry).decode()
    assert 'hotline_calls_total{outcome="ticket"} 2.0' in text
    assert 'hotline_calls_total{outcome="unknown"} 1.0' in text
    assert "hotline_active_calls 2.0" in text  # read at scrape time, not at set-up
    assert "hotline_call_capacity 60.0" in text
    assert 'hotline_tickets_total{type="complaint"} 1.0' in text
    assert 'hotline_calls_refused_total{reason="busy"} 1.0' in text


class _SlowRecognizer:
    """Spends 5 ms on every 20 ms frame: a real-time factor of 0.25."""

    def __init__(self) -> None:
        self.closed = False
        self.hints: tuple[str, ...] = ()

    def accept(self, frame: bytes):  # a generator, like the engines' event streams
        time.sleep(0.005)
        yield from ()

    def finish(self) -> list[object]:
        return []

    def reset(self, hints: tuple[str, ...]) -> None:
        self.hints = hints

    def close(self) -> None:
        self.closed = True


def test_timed_recognizer_reports_the_real_time_factor() -> None:
    metrics = Metrics(CollectorRegistry())
    inner = _SlowRecognizer()
    rec = metrics.timed_recognizer(inner)
    frame = bytes(640)  # 20 ms at 16 kHz
    for _ in range(100):  # 2 s of audio
        assert rec.accept(frame) == []
    rec.reset(("社保",))
    rec.finish()
    rec.close()
    assert inner.closed and inner.hints == ("社保",)
    total = counts(metrics.registry, "hotline_asr_rtf_sum")[()]
    assert counts(metrics.registry, "hotline_asr_rtf_count")[()] == 1
    assert 0.24 <= total < 0.6


def test_short_calls_do_not_skew_the_rtf() -> None:
    metrics = Metrics(CollectorRegistry())
    rec = metrics.timed_recognizer(_SlowRecognizer())
    rec.accept(bytes(640))
    rec.close()
    assert counts(metrics.registry, "hotline_asr_rtf_count")[()] == 0


def test_reply_clock_observes_once_per_turn() -> None:
    metrics = Metrics(CollectorRegistry())
    clock = ReplyClock(metrics.reply_latency.observe)
    clock.reply_started()  # the greeting: no caller turn before it
    clock.turn_ended()
    time.sleep(0.05)
    clock.reply_started()
    clock.reply_started()  # the second prompt of the same reply is not a new latency
    assert counts(metrics.registry, "hotline_reply_latency_seconds_count")[()] == 1
    assert 0.05 <= counts(metrics.registry, "hotline_reply_latency_seconds_sum")[()] < 0.5


def test_queue_depth_is_read_from_redis(service: TicketService) -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.watch_queue(service.queue)
    service.intake(make_draft(1))
    service.intake(make_draft(2))
    service.intake(make_draft(3, urgency=Urgency.URGENT), skill="social_insurance")
    depth = counts(metrics.registry, "hotline_queue_depth")
    assert depth[(("priority", "normal"), ("skill", "general"))] == 2
    assert depth[(("priority", "urgent"), ("skill", "social_insurance"))] == 1
    assert depth[(("priority", "normal"), ("skill", "business"))] == 0


def test_queue_depth_is_absent_not_zero_while_redis_is_down() -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tickets.queue import SeatQueue

    metrics = Metrics(CollectorRegistry())
    nowhere = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    metrics.watch_queue(SeatQueue(nowhere, ["general"]))
    assert counts(metrics.registry, "hotline_queue_depth") == {}
    assert b"hotline_active_calls" in generate_latest(metrics.registry)  # scrape still works


def test_intake_counts_tickets_by_type(service: TicketService) -> None:
    def complaints() -> float:
        return counts(METRICS.registry, "hotline_tickets_total").get((("type", "complaint"),), 0.0)

    before = complaints()
    service.intake(make_draft(7))
    assert complaints() == before + 1


def test_console_serves_metrics(settings: Settings, service: TicketService) -> None:
    env = make_env(settings, service)
    service.intake(make_draft(4))
    with TestClient(env.app) as client:
        response = client.get("/metrics/")
    assert response.status_code == 200
    assert 'hotline_queue_depth{priority="normal",skill="general"} 1.0' in response.text
    assert "hotline_tickets_total" in response.text
    assert "process_resident_memory_bytes" in response.text


def test_console_metrics_token(settings: Settings, service: TicketService) -> None:
    guarded = settings.model_copy(
        update={
            "observability": settings.observability.model_copy(
                update={"metrics_token": "scrape-me"}
            )
        }
    )
    env = make_env(guarded, service)
    with TestClient(env.app) as client:
        assert client.get("/metrics/").status_code == 401
        bad = client.get("/metrics/", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        good = client.get("/metrics/", headers={"Authorization": "Bearer scrape-me"})
        assert good.status_code == 200 and "hotline_" in good.text


def test_standalone_exporter_for_the_controller() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.call_ended("transfer")
    server, thread = start_metrics_server("127.0.0.1", 0, metrics.registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert 'hotline_calls_total{outcome="transfer"} 1.0' in body


def test_console_health_reports_database_and_redis(
    settings: Settings, service: TicketService
) -> None:
    import redis.asyncio as aioredis

    env = make_env(settings, service)
    with TestClient(env.app) as client:
        ok = client.get("/healthz")
        assert ok.status_code == 200 and ok.json() == {"database": "ok", "redis": "ok"}
        env.app.state.console.events = aioredis.Redis(port=1, socket_connect_timeout=0.2)
        down = client.get("/healthz")
    assert down.status_code == 503 and down.json()["redis"].startswith("error")
