"""Listening alone (``ivr.listening``): the recogniser thread against a scripted
recogniser on a fake clock, the gap filling's arithmetic, and the watch on the caller's
RTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from asr.base import FRAME_BYTES, AsrEvent, Recognizer, SpeechStarted, Transcript
from ivr.listening import FILL_AFTER_S, GAP_FILL_S, AsrWorker, GapFiller, InboundWatch

PACKET = 320  # bytes of 20 ms at 8 kHz
POLL_S = 0.005  # the worker looks at a quiet line this often (real time) in these tests
FINAL = Transcript("路灯坏了", 0.9, 0.0, 1.0, is_final=True)


def packet(level: int) -> bytes:
    return np.full(PACKET // 2, level, dtype="<i2").tobytes()


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ScriptedRecognizer(Recognizer):
    """Keeps every frame; answers frame ``n`` (1-based) with ``events_at[n]``."""

    events_at: dict[int, list[AsrEvent]] = field(default_factory=dict)
    fail_at: int = 0  # this frame raises, as a broken decoder would
    frames: list[bytes] = field(default_factory=list)
    resets: list[tuple[str, ...]] = field(default_factory=list)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, frame: bytes) -> list[AsrEvent]:
        assert len(frame) == FRAME_BYTES
        with self.lock:
            self.frames.append(frame)
            count = len(self.frames)
        if count == self.fail_at:
            raise RuntimeError("decoder blew up")
        return self.events_at.get(count, [])

    def finish(self) -> list[AsrEvent]:
        return [FINAL]

    def reset(self, hints: Sequence[str] = ()) -> None:
        self.resets.append(tuple(hints))

    def close(self) -> None:
        self.closed = True

    def count(self) -> int:
        with self.lock:
            return len(self.frames)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the recogniser thread did not get there"
        time.sleep(0.002)


def settle() -> None:
    """Long enough for the worker to look at the quiet line several times."""
    time.sleep(POLL_S * 10)


def test_audio_reaches_the_recogniser_in_order_as_16_khz_frames() -> None:
    rec, posted = ScriptedRecognizer(), []
    worker = AsrWorker(rec, posted.append, clock=FakeClock(), poll_s=POLL_S)
    levels = [1000 * (n + 1) for n in range(8)]
    for level in levels:
        worker.audio(packet(level))
    worker.finish()
    worker.join(5.0)
    assert rec.count() == len(levels)  # one 20 ms frame per 20 ms packet
    means = [np.frombuffer(f, dtype="<i2").mean() for f in rec.frames]
    assert means == sorted(means) and means[-1] > 0.9 * levels[-1]


def test_a_quiet_line_gets_silence_after_the_pause_and_only_up_to_the_cap() -> None:
    clock, rec = FakeClock(), ScriptedRecognizer()
    worker = AsrWorker(rec, lambda _e: None, clock=clock, poll_s=POLL_S)
    worker.audio(packet(3000))
    wait_for(lambda: rec.count() == 1)
    clock.now = FILL_AFTER_S - 0.05  # a delayed packet, not a pause: nothing filled
    settle()
    assert rec.count() == 1
    clock.now = FILL_AFTER_S + 0.01
    wait_for(lambda: rec.count() == 1 + 15)  # 0.31 s quiet: 15 packets, caught up at once
    clock.now = 60.0  # the line stays quiet: at most GAP_FILL_S of silence
    wait_for(lambda: rec.count() == 1 + round(GAP_FILL_S / 0.02))
    settle()
    assert rec.count() == 1 + round(GAP_FILL_S / 0.02)
    worker.finish()
    worker.join(5.0)


def test_no_silence_before_the_caller_has_said_anything() -> None:
    clock, rec = FakeClock(), ScriptedRecognizer()
    worker = AsrWorker(rec, lambda _e: None, clock=clock, poll_s=POLL_S)
    clock.now = 30.0
    settle()
    worker.finish()
    worker.join(5.0)
    assert rec.count() == 0


def test_reset_passes_the_hints_in_order_with_the_audio() -> None:
    rec = ScriptedRecognizer()
    worker = AsrWorker(rec, lambda _e: None, clock=FakeClock(), poll_s=POLL_S)
    worker.audio(packet(1000))
    worker.reset(("路灯", "噪音"))
    worker.finish()
    worker.join(5.0)
    assert rec.resets == [("路灯", "噪音")] and rec.count() == 1


def test_events_are_posted_and_finish_ends_the_thread_with_the_last_words() -> None:
    started = SpeechStarted(0.04)
    rec, posted = ScriptedRecognizer(events_at={2: [started]}), []
    worker = AsrWorker(rec, posted.append, clock=FakeClock(), poll_s=POLL_S)
    for _ in range(3):
        worker.audio(packet(2000))
    wait_for(lambda: rec.count() == 3)
    assert worker.running and posted == [started]
    worker.finish()
    worker.join(5.0)
    assert not worker.running and rec.closed
    assert posted == [started, FINAL]  # the words in progress at the hang-up


def test_a_recogniser_failure_does_not_stop_listening() -> None:
    rec, posted = ScriptedRecognizer(fail_at=1, events_at={2: [SpeechStarted(0.02)]}), []
    worker = AsrWorker(rec, posted.append, clock=FakeClock(), poll_s=POLL_S)
    worker.audio(packet(1000))
    worker.audio(packet(1000))
    worker.finish()
    worker.join(5.0)
    assert rec.count() == 2 and posted == [SpeechStarted(0.02), FINAL] and rec.closed


def test_gap_filling_counts_whole_packets_from_the_last_one_heard() -> None:
    gaps = GapFiller()
    gaps.heard(10.0)
    assert gaps.silence_due(10.0 + FILL_AFTER_S - 0.01) == b""
    assert len(gaps.silence_due(10.35)) == 17 * PACKET  # 0.35 s: 17 whole packets
    assert len(gaps.silence_due(10.39)) == 2 * PACKET  # only what is new since
    gaps.heard(11.0)  # the caller spoke again: a new gap starts from here
    assert gaps.silence_due(11.1) == b""
    assert len(gaps.silence_due(20.0)) == round(GAP_FILL_S / 0.02) * PACKET
    assert gaps.silence_due(30.0) == b""


@dataclass
class Stats:
    packets_in: int = 0


def watch(stats: Stats, clock: FakeClock, packets_per_s: int, stall_s: float) -> list[float]:
    """Runs the watch on a fake clock (each sleep advances it); the times it fired."""
    stalled: list[float] = []

    async def sleep(seconds: float) -> None:
        clock.now += seconds
        stats.packets_in += int(packets_per_s * seconds)

    async def on_stalled(why: str) -> None:
        assert f"{stall_s:.0f} s" in why
        stalled.append(clock.now)

    watch = InboundWatch(stats, stall_s, on_stalled, clock=clock, sleep=sleep)
    asyncio.run(watch.watch(lambda: clock.now >= 120.0))
    return stalled


def test_a_line_with_no_caller_rtp_for_the_stall_time_is_reported_once() -> None:
    assert watch(Stats(), FakeClock(), packets_per_s=0, stall_s=30.0) == [30.0]


def test_a_line_carrying_rtp_is_never_reported() -> None:
    assert watch(Stats(), FakeClock(), packets_per_s=50, stall_s=30.0) == []
