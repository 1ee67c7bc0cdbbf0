"""The controller process: SIP endpoint + media clock + one CallSession per call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from typing import Any

from hotline.metrics import METRICS
from hotline.settings import SipSettings
from ivr.journal import CallRecord
from ivr.media import MediaProcess
from ivr.rtp import MediaClock, RtpStream, StreamStats
from ivr.session import CallSession, SessionDeps
from ivr.sip import IncomingCall, SipEndpoint

log = logging.getLogger(__name__)
KEEP_RECENT = 5000


class Controller:
    def __init__(self, sip_settings: SipSettings, deps: SessionDeps) -> None:
        self.deps = deps
        self.endpoint = SipEndpoint(sip_settings, self._on_call)
        self.symmetric = sip_settings.symmetric_rtp
        self.strict_rtp = sip_settings.strict_rtp
        self.sessions: dict[str, CallSession] = {}
        # The latest calls only: a controller answering for months must not grow.
        self.records: deque[CallRecord] = deque(maxlen=KEEP_RECENT)
        self.stream_stats: dict[str, StreamStats] = {}  # call id -> media counters (bench)
        METRICS.track_calls(lambda: len(self.sessions), sip_settings.max_calls)
        self.media_clock = sip_settings.media_clock
        self.clock: MediaClock | MediaProcess | None = None
        self._tasks: set[asyncio.Task[CallRecord]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Python threads share the GIL; a short switch interval lets the media clock
        # thread get in within ~1 ms when it wakes, keeping packets on their 20 ms slot.
        sys.setswitchinterval(0.001)
        if self.media_clock == "process":
            self.clock = media = MediaProcess()
            media.start()
            await media.ready()
        else:
            self.clock = MediaClock(loop.call_soon_threadsafe)
            self.clock.start()
        try:
            await self.endpoint.start()
        except OSError:
            self.clock.stop()
            raise

    async def shutdown(self, drain_s: float, now: asyncio.Event | None = None) -> None:
        """Graceful stop: no new calls, registration withdrawn; live calls get ``drain_s``
        to finish (or until ``now`` is set, e.g. a second SIGTERM), then are handed over."""
        await self.endpoint.drain()
        if self._tasks:
            log.info("shutting down: waiting up to %.0f s for %d live calls",
                     drain_s, len(self._tasks))  # fmt: skip
            waits: set[asyncio.Future[Any]] = set(self._tasks)
            if now is not None:
                waits.add(asyncio.ensure_future(now.wait()))
            deadline = asyncio.get_running_loop().time() + drain_s
            while self._tasks and (now is None or not now.is_set()):
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                waits = {w for w in waits if not w.done()}
            for w in waits - set(self._tasks):
                w.cancel()
        for session in list(self.sessions.values()):
            session.hand_over()
        await self.stop()

    async def stop(self) -> None:
        await self.endpoint.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        if self.clock:
            self.clock.stop()

    def _on_call(self, call: IncomingCall) -> None:
        loop = asyncio.get_running_loop()
        assert call.sock is not None and self.clock is not None
        stream = RtpStream(call.sock, (call.media.host, call.media.port), call.media.payload_type,
                           call.media.dtmf_payload_type, lambda _: None, lambda _: None,
                           symmetric=self.symmetric, strict_port=self.strict_rtp)  # fmt: skip
        session = CallSession(call, stream, self.deps)
        loop.add_reader(call.sock.fileno(), stream.receive_ready)
        self.clock.add(stream)
        self.sessions[call.call_id] = session
        task = loop.create_task(self._run(call, stream, session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, call: IncomingCall, stream: RtpStream, session: CallSession) -> CallRecord:
        try:
            record = await session.run()
            self.records.append(record)
            METRICS.call_ended(record.outcome)
            METRICS.answer_latency.observe(record.answered_ms / 1000)
            return record
        finally:
            if self.clock:
                self.clock.remove(stream)
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(stream.sock.fileno())
            stream.close()
            self.stream_stats[call.call_id] = stream.stats
            while len(self.stream_stats) > KEEP_RECENT:  # dicts keep insertion order
                del self.stream_stats[next(iter(self.stream_stats))]
            self.sessions.pop(call.call_id, None)
