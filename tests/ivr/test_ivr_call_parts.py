"""The call session's single-concern parts, each alone: the silence timer on a fake
clock, the recorder against a real (temporary) disk."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ivr.recorder import CallRecorder, recording_path
from ivr.silence import SilenceTimer


@dataclass
class FakeHandle:
    due: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClock:
    now: float = 0.0
    handles: list[FakeHandle] = field(default_factory=list)

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeHandle:
        handle = FakeHandle(self.now + delay, callback)
        self.handles.append(handle)
        return handle

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for handle in list(self.handles):
            if not handle.cancelled and handle.due <= self.now:
                self.handles.remove(handle)
                handle.callback()


def test_silence_after_the_bots_timeout_capped_by_the_deployment() -> None:
    clock, fired = FakeClock(), []
    timer = SilenceTimer(clock, cap_s=8.0, on_silence=lambda: fired.append(clock.now))
    timer.arm(asked_s=20.0)  # the bot asks for more than the site allows: capped
    clock.advance(7.9)
    assert fired == []
    clock.advance(0.1)
    assert fired == [8.0] and not timer.armed
    timer.arm(asked_s=3.0)  # a shorter wish is kept
    clock.advance(3.0)
    assert fired == [8.0, 11.0]


def test_speech_or_a_key_cancels_the_silence_and_rearming_starts_over() -> None:
    clock, fired = FakeClock(), []
    timer = SilenceTimer(clock, cap_s=5.0, on_silence=lambda: fired.append(clock.now))
    timer.arm()
    clock.advance(4.0)
    timer.arm()  # the bot listened again: a new full timeout
    clock.advance(4.0)
    timer.cancel()  # the caller spoke
    clock.advance(10.0)
    assert fired == [] and not timer.armed


def tone(seconds: float, hz: float) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    return (np.sin(2 * np.pi * hz * t) * 6000).astype("<i2").tobytes()


def test_the_recording_is_stereo_caller_left_bot_right(tmp_path: Path) -> None:
    path = recording_path(tmp_path, "2026-11-28", "SIP/call 1@10.0.0.1")
    assert path == tmp_path / "recordings" / "2026-11-28" / "SIP_call_1_10_0_0_1.wav"
    recorder = CallRecorder(path, "call-1", enabled=True, reserve_bytes=0)
    recorder.caller(tone(1.0, 300))
    recorder.bot(tone(0.5, 1000))
    assert asyncio.run(recorder.save()) == str(path)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 8000)
        frames = np.frombuffer(wav.readframes(8000), dtype="<i2").reshape(-1, 2)
    assert frames[:, 0].tobytes() == tone(1.0, 300)
    assert frames[:4000, 1].tobytes() == tone(0.5, 1000) and not frames[4000:, 1].any()


@pytest.mark.parametrize("enabled, reserve", [(False, 0), (True, 1 << 60)])
def test_no_recording_when_off_or_when_the_disk_is_down_to_the_work_order_reserve(
    tmp_path: Path, enabled: bool, reserve: int
) -> None:
    path = recording_path(tmp_path, "2026-11-28", "call-2")
    recorder = CallRecorder(path, "call-2", enabled=enabled, reserve_bytes=reserve)
    recorder.caller(tone(0.2, 300))
    assert asyncio.run(recorder.save()) == ""
    assert not path.exists()


class FakeJournal:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, object]]] = []

    def write(self, kind: object, data: dict[str, object]) -> None:
        self.entries.append((str(kind), data))


class Sink:
    def __init__(self, result: str | Exception) -> None:
        self.result = result
        self.drafts: list[tuple[str, str]] = []

    async def intake(self, draft: object, skill: str) -> str:
        self.drafts.append((getattr(draft, "call_id", ""), skill))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def file_with(result: str | Exception) -> tuple[object, FakeJournal, object, str]:
    from hotline.draft import RequestType, TicketDraft
    from ivr.filing import TicketFiler
    from ivr.journal import CallRecord

    journal, record = FakeJournal(), CallRecord(call_id="c1", caller="13800138000",
                                                started_at="2026-11-28T00:00:00")  # fmt: skip
    filer = TicketFiler(Sink(result), journal, record)  # type: ignore[arg-type]
    draft = TicketDraft(type=RequestType.COMPLAINT, call_id="c1")
    number = asyncio.run(filer.file(draft, "real_estate"))
    return filer, journal, record, number


def test_a_filed_work_order_is_journalled_with_its_number() -> None:
    filer, journal, record, number = file_with("20261128-0001")
    assert number == "20261128-0001" and filer.number == number  # type: ignore[attr-defined]
    assert record.ticket == number and record.outcome == "ticket"  # type: ignore[attr-defined]
    assert journal.entries == [("ticket", {"number": number})]


def test_a_spooled_work_order_keeps_the_promise_without_a_number() -> None:
    filer, journal, record, number = file_with("")
    assert number == "" and filer.spooled and not filer.unfiled  # type: ignore[attr-defined]
    assert record.outcome == "ticket"  # type: ignore[attr-defined]
    assert journal.entries == [("ticket", {"number": "", "spooled": True})]


def test_a_work_order_nothing_took_keeps_the_journal_open_for_recovery() -> None:
    from ivr.filing import WorkOrderHeld

    for failure in (RuntimeError("SQL and spool both away"), WorkOrderHeld("held")):
        filer, journal, record, number = file_with(failure)
        assert number == "" and filer.unfiled  # type: ignore[attr-defined]
        assert journal.entries == []  # no "ticket" entry: recovery must file it
        assert record.outcome != "ticket"  # type: ignore[attr-defined]
