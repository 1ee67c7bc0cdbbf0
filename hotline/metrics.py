"""Prometheus metrics of the hotline: calls, capacity, recogniser speed, reply latency,
seat queues, tickets.

One :data:`METRICS` per process on prometheus_client's default registry (so process CPU
and memory come along). The controller serves it on its own port
(:func:`start_metrics_server`, ``observability.metrics_port``); the console mounts it at
``/metrics`` (:func:`asgi_app`). Packages report through the small methods here, so the
metric names live in one place and tests can build a private :class:`Metrics`.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_asgi_app,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Real-time factor: decode time / audio time. Below 1 keeps up; the buckets resolve the
# 0.05-0.5 range where Vosk and Whisper int8 live on one core.
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)
# End of the caller's turn to the first reply audio: people notice past ~0.8 s.
LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.calls = Counter("hotline_calls", "Calls ended, by outcome", ["outcome"], registry=r)
        self.calls_refused = Counter(
            "hotline_calls_refused", "Calls refused at capacity (486/503)", ["reason"],
            registry=r)  # fmt: skip
        self.active_calls = Gauge("hotline_active_calls", "Calls in progress", registry=r)
        self.capacity = Gauge("hotline_call_capacity", "Calls this controller accepts",
                              registry=r)  # fmt: skip
        self.asr_rtf = Histogram(
            "hotline_asr_rtf", "Recogniser real-time factor per call (decode s / audio s)",
            buckets=RTF_BUCKETS, registry=r)  # fmt: skip
        self.reply_latency = Histogram(
            "hotline_reply_latency_seconds", "End of the caller's turn to the first reply audio",
            buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.answer_latency = Histogram(
            "hotline_answer_seconds", "INVITE received to 200 OK sent",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=r)  # fmt: skip
        self.tickets = Counter("hotline_tickets", "Work orders created, by request type",
                               ["type"], registry=r)  # fmt: skip
        self.journal_failures = Counter(
            "hotline_journal_failures", "Calls whose Redis journal could not be written",
            registry=r)  # fmt: skip
        self.recording_failures = Counter(
            "hotline_recording_failures", "Call recordings or records that could not be saved",
            ["reason"], registry=r)  # fmt: skip
        self.sip_malformed = Counter("hotline_sip_malformed_packets",
                                     "SIP datagrams that did not parse", registry=r)  # fmt: skip
        self.sip_refused = Counter(
            "hotline_sip_refused_datagrams",
            "SIP datagrams refused (oversized, not-sip, too-many-headers, header-too-long, "
            "unparseable)", ["reason"], registry=r)  # fmt: skip
        self.media_failures = Counter(
            "hotline_media_failures",
            "Media process failures: restarted (it died and was replaced with its calls), "
            "rejected (a stream it refused)", ["reason"], registry=r)  # fmt: skip
        self.media_stalled = Counter(
            "hotline_media_stalled_calls",
            "Calls handed to a person because their audio stopped flowing: out (the bot's "
            "prompt never finished playing), in (no packet from the caller)", ["direction"],
            registry=r)  # fmt: skip
        self.controller_downtime = Gauge(
            "hotline_controller_downtime_seconds",
            "How long this controller was not answering before its current start (from its "
            "last heartbeat in Redis; 0 for a first start or a quick restart): its callers "
            "went to Asterisk's fallback without work orders", registry=r)  # fmt: skip
        self.spooled_drafts = Counter(
            "hotline_spooled_drafts", "Work orders kept because SQL was unavailable: in the "
            "local spool (disk) or, when the spool's disk refused them too, in memory and the "
            "call journal (memory)", ["where"], registry=r)  # fmt: skip
        self.spooled_filed = Counter(
            "hotline_spooled_drafts_filed", "Spooled or held work orders filed once SQL was back",
            registry=r)  # fmt: skip
        self.tickets_requeued = Counter(
            "hotline_tickets_requeued", "Work orders put back on the seat queue by the "
            "automatic reconcile (after a Redis restart)", registry=r)  # fmt: skip
        self.ami_connected = Gauge("hotline_ami_connected", "1 while logged in to Asterisk AMI",
                                   registry=r)  # fmt: skip
        self.orphans_recovered = Counter(
            "hotline_orphan_calls_recovered", "Calls of a dead controller turned into tickets",
            registry=r)  # fmt: skip
        self._queue_collector: Collector | None = None

    # ---- reporting, called by the packages ----
    def call_ended(self, outcome: str) -> None:
        self.calls.labels(outcome=outcome or "unknown").inc()

    def ticket_created(self, request_type: object) -> None:
        value = getattr(request_type, "value", request_type)
        self.tickets.labels(type=str(value) or "unknown").inc()

    def track_calls(self, active: Callable[[], int], capacity: int) -> None:
        """The active-call gauge reads the controller's own table at scrape time."""
        self.active_calls.set_function(lambda: float(active()))
        self.capacity.set(capacity)

    def watch_queue(self, queue: Any) -> None:
        """``hotline_queue_depth{skill,priority}`` read from the Redis seat queue per scrape."""
        if self._queue_collector is not None:
            self.registry.unregister(self._queue_collector)
        self._queue_collector = QueueDepthCollector(queue)
        self.registry.register(self._queue_collector)

    def timed_recognizer(self, recognizer: Any, sample_rate: int = 16000) -> TimedRecognizer:
        return TimedRecognizer(recognizer, self.asr_rtf.observe, sample_rate)


class QueueDepthCollector(Collector):
    """Tickets waiting for a seat, per skill and lane; nothing (not zero) if Redis is down."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("hotline_queue_depth", "Tickets waiting for a seat",
                                   labels=["skill", "priority"])  # fmt: skip
        try:
            waiting = self.queue.waiting()
        except Exception as exc:  # a scrape must not fail because Redis restarts
            log.warning("queue depth unavailable: %s", exc)
            return
        tally = Tally((e.skill, e.priority) for e in waiting)
        for skill in self.queue.skills:
            for priority in ("urgent", "normal"):
                family.add_metric([skill, priority], tally.get((skill, priority), 0))
        yield family


class TimedRecognizer:
    """Wraps any ``asr.base.Recognizer``: times ``accept``/``finish`` against the audio fed
    and reports the call's real-time factor when it is closed. Frames are 16-bit PCM."""

    def __init__(
        self, inner: Any, observe: Callable[[float], None], sample_rate: int = 16000
    ) -> None:
        self.inner = inner
        self._observe = observe
        self._bytes_per_s = 2 * sample_rate
        self.audio_s = 0.0
        self.busy_s = 0.0

    def accept(self, frame: bytes) -> Any:
        self.audio_s += len(frame) / self._bytes_per_s
        return self._timed(self.inner.accept, frame)

    def finish(self) -> Any:
        return self._timed(self.inner.finish)

    def close(self) -> None:
        if self.audio_s >= 1.0:  # shorter calls say nothing about speed
            self._observe(self.busy_s / self.audio_s)
        self.inner.close()

    def _timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            # Materialise generators so their work is inside the timing.
            result = fn(*args)
            return list(result) if isinstance(result, Iterator) else result
        finally:
            self.busy_s += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:  # reset, hints, engine name...
        return getattr(self.inner, name)


class ReplyClock:
    """Per call: mark the end of the caller's turn, observe when the reply starts."""

    def __init__(self, observe: Callable[[float], None]) -> None:
        self._observe = observe
        self._turn_ended: float | None = None

    def turn_ended(self) -> None:
        self._turn_ended = time.monotonic()

    def reply_started(self) -> None:
        if self._turn_ended is not None:
            self._observe(time.monotonic() - self._turn_ended)
            self._turn_ended = None


def start_metrics_server(
    host: str, port: int, registry: CollectorRegistry = REGISTRY
) -> tuple[Any, threading.Thread]:
    """``/metrics`` on its own port for the controller (a daemon thread)."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return server, thread


def asgi_app(registry: CollectorRegistry = REGISTRY, token: str = "") -> Any:
    """The exporter as an ASGI app for the console; with ``token``, a bearer is required."""
    inner = make_asgi_app(registry)
    if not token:
        return inner
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"")
        if scope["type"] == "http" and not hmac.compare_digest(given, expected):
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain"),
                                    (b"www-authenticate", b"Bearer")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b"metrics need a bearer token\n"})
            return
        await inner(scope, receive, send)

    return guarded


def counts(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric as {labels: value} (benchmarks and drills read these)."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _default() -> Metrics:
    return Metrics(REGISTRY)


METRICS = _default()
