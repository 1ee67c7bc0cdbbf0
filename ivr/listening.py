"""Listening on a call: the caller's audio to the recogniser, and the watch that it keeps
coming.

``AsrWorker`` is the call's recogniser thread (``Recognizer.accept`` may block ~0.3 s for
a Whisper decode at the end of an utterance, which must never stall the event loop or
the media clock); its events go back through ``post``. ``GapFiller`` decides how much
silence a quiet line gets and ``InboundWatch`` notices a line that has gone dead; both
take their time from ``clock`` (monotonic seconds), so tests drive them with a fake one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from asr.base import AsrEvent, Recognizer
from hotline.audio import StreamResampler
from hotline.audio.frames import FrameBuffer

log = logging.getLogger(__name__)

GAP_S = 0.1  # how often the recogniser thread looks at a quiet line
FILL_AFTER_S = 0.3  # no caller packet for this long: the line went quiet (DTX, loss)
GAP_FILL_S = 2.0  # at most this much silence is filled in after the last packet
PACKET_S = 0.02
PACKET_SAMPLES = 160  # 20 ms at 8 kHz


@dataclass(frozen=True, slots=True)
class AudioJob:
    pcm8k: bytes  # the caller's audio (or silence filled into a gap)


@dataclass(frozen=True, slots=True)
class ResetJob:
    hints: tuple[str, ...]  # the bot listens for other words now


@dataclass(frozen=True, slots=True)
class FinishJob:
    """The call ended: the last words, then the recogniser is closed."""


AsrJob = AudioJob | ResetJob | FinishJob


class GapFiller:
    """How much silence a quiet line gets.

    Peers with silence suppression (DTX) and lost packets leave gaps; a recogniser that
    gets no frames never sees the silence that ends a turn, so gaps are filled with
    silence (up to ``GAP_FILL_S`` after the last packet). Filling starts only after
    ``FILL_AFTER_S`` without packets, then catches up at once: packets merely delayed
    (a busy peer or network; measured: 5 of 30 bench calls had 100-200 ms stalls
    mid-speech) must not get fake pauses put into the caller's words, while a real
    end of speech still reaches the recogniser's end-of-turn silence on time.
    """

    def __init__(self) -> None:
        self._last_audio: float | None = None  # clock time of the last packet
        self._filled = 0.0  # seconds of silence filled in since then

    def heard(self, now: float) -> None:
        """A packet from the caller arrived."""
        self._last_audio, self._filled = now, 0.0

    def silence_due(self, now: float) -> bytes:
        """8 kHz silence owed to the recogniser now (whole 20 ms packets; b"" for none)."""
        if self._last_audio is None:
            return b""  # nobody has spoken yet: nothing to end
        quiet = now - self._last_audio
        if quiet < FILL_AFTER_S or self._filled >= GAP_FILL_S:
            return b""
        missing = min(quiet, GAP_FILL_S) - self._filled
        packets = int(missing / PACKET_S)
        if packets <= 0:
            return b""
        self._filled += packets * PACKET_S
        return b"\x00\x00" * PACKET_SAMPLES * packets


class AsrWorker:
    """The call's recogniser thread: 8 kHz in, 16 kHz 20 ms frames to the recogniser,
    silence filled into gaps (``GapFiller``)."""

    def __init__(
        self,
        rec: Recognizer,
        post: Callable[[AsrEvent], None],  # called in the thread: hand over to the loop
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = GAP_S,
    ) -> None:
        self.rec = rec
        self.post = post
        self.clock = clock
        self.poll_s = poll_s
        self._jobs: queue.SimpleQueue[AsrJob] = queue.SimpleQueue()
        self._gaps = GapFiller()
        self._resampler = StreamResampler(8000, 16000)
        self._frames = FrameBuffer(16000)
        self._thread = threading.Thread(target=self._run, name="asr-call", daemon=True)
        self._thread.start()

    def audio(self, pcm8k: bytes) -> None:
        self._jobs.put(AudioJob(pcm8k))

    def reset(self, hints: tuple[str, ...]) -> None:
        self._jobs.put(ResetJob(hints))

    def finish(self) -> None:
        self._jobs.put(FinishJob())

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _next_job(self) -> AsrJob | None:
        try:
            job = self._jobs.get(timeout=self.poll_s)
        except queue.Empty:
            silence = self._gaps.silence_due(self.clock())
            return AudioJob(silence) if silence else None
        if isinstance(job, AudioJob):
            self._gaps.heard(self.clock())
        return job

    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                continue
            try:
                if isinstance(job, AudioJob):
                    for frame in self._frames.push(self._resampler.process(job.pcm8k)):
                        for event in self.rec.accept(frame):
                            self.post(event)
                elif isinstance(job, ResetJob):
                    self.rec.reset(job.hints)
                else:
                    for event in self.rec.finish():
                        self.post(event)
                    self.rec.close()
                    return
            except Exception:  # a recogniser failure must not kill the call: log, go on
                log.exception("recogniser failed")


class PacketCounter(Protocol):
    """The caller's side of the line as the watch sees it (``ivr.rtp.StreamStats``)."""

    packets_in: int


class InboundWatch:
    """A trunk sends RTP all through a call, silence included: none for ``stall_s``
    means the caller's audio no longer reaches us."""

    def __init__(
        self,
        stats: PacketCounter,
        stall_s: float,
        on_stalled: Callable[[str], Awaitable[None]],  # why, for the log
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        every_s: float = 1.0,
    ) -> None:
        self.stats = stats
        self.stall_s = stall_s
        self.on_stalled = on_stalled
        self.clock = clock
        self.sleep = sleep
        self.every_s = every_s

    async def watch(self, call_over: Callable[[], bool]) -> None:
        """Until ``call_over()``, or once the line has stalled (``on_stalled``)."""
        seen, since = self.stats.packets_in, self.clock()
        while not call_over():
            await self.sleep(self.every_s)
            if self.stats.packets_in != seen:
                seen, since = self.stats.packets_in, self.clock()
            elif self.clock() - since >= self.stall_s:
                await self.on_stalled(f"no RTP from the caller for {self.stall_s:.0f} s")
                return
