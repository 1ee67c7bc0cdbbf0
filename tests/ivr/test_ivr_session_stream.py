"""A read-back is played as it is rendered: the caller hears its first clause while the
rest is still being synthesised, and a barge-in stops the rendering too."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from ivr.journal import CallRecord
from ivr.playout import PromptPlayer
from ivr.turns import TurnTaking
from voice.prompts import Prompt

PIECE = b"\x10\x00" * 800  # 0.1 s at 8 kHz
RENDER_S = 0.15  # each later piece takes this long to synthesise


class Line:
    """The outgoing side of a call: plays each queued piece in real time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queued: list[tuple[float, bytes]] = []
        self._busy_until = 0.0
        self._pending: list[asyncio.TimerHandle] = []

    def play(self, pcm: bytes, done: Callable[[], None] | None = None) -> None:
        now = time.monotonic()
        self.queued.append((now, pcm))
        self._busy_until = max(self._busy_until, now) + len(pcm) / 16000
        if done is not None:
            self._pending.append(self.loop.call_later(self._busy_until - now, done))

    def flush(self) -> list[Any]:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        return []

    @property
    def playing(self) -> bool:
        return time.monotonic() < self._busy_until


@dataclass
class Player:
    """A ``PromptPlayer`` on the line, and what it recorded (no SIP, recogniser or bot)."""

    prompts: PromptPlayer
    line: Line
    turns: TurnTaking
    record: CallRecord
    said: bytearray


def _player(loop: asyncio.AbstractEventLoop) -> Player:
    line = Line(loop)
    turns = TurnTaking(SimpleNamespace(), continuation_s=0)  # no dialogue: only barge-in
    record = CallRecord(call_id="test", caller="", started_at="")
    said = bytearray()

    async def media_lost(why: str) -> None:
        raise AssertionError(f"media lost: {why}")

    player = PromptPlayer(
        line, SimpleNamespace(), turns, asyncio.Event(), record, SimpleNamespace(),  # type: ignore[arg-type]
        said=lambda _text: None, on_prompt=lambda: None, played=said.extend,
        media_lost=media_lost,
    )  # fmt: skip
    return Player(player, line, turns, record, said)


def _rendered(count: int, pulled: list[float]) -> Iterator[Prompt]:
    for number in range(count):
        if number:
            time.sleep(RENDER_S)  # synthesis of the next clause (in the worker thread)
        pulled.append(time.monotonic())
        yield Prompt(PIECE, "streamed", "stand-in", "")


def test_the_first_clause_plays_while_the_rest_renders() -> None:
    async def scenario() -> tuple[bool, Line, list[float], bytearray]:
        loop = asyncio.get_running_loop()
        player = _player(loop)
        pulled: list[float] = []
        pieces = _rendered(4, pulled)
        first = next(pieces)
        played = await player.prompts.play(first, more=pieces)
        return played, player.line, pulled, player.said

    played, line, pulled, recorded = asyncio.run(scenario())
    assert played
    assert len(line.queued) == 4
    # Each piece went to the line as soon as it was rendered, not after the last one.
    assert line.queued[1][0] < pulled[-1]
    assert line.queued[0][0] <= pulled[1] - RENDER_S * 0.9
    assert bytes(recorded) == PIECE * 4  # the recording holds what was said


def test_a_barge_in_stops_the_rest_of_the_read_back_being_rendered() -> None:
    async def scenario() -> tuple[bool, list[float], int]:
        loop = asyncio.get_running_loop()
        player = _player(loop)
        pulled: list[float] = []
        pieces = _rendered(10, pulled)
        first = next(pieces)
        loop.call_later(0.2, player.turns.barge_in)  # the caller speaks over the read-back
        played = await player.prompts.play(first, more=pieces)
        return played, pulled, player.record.barge_ins

    played, pulled, barge_ins = asyncio.run(scenario())
    assert not played and barge_ins == 1
    assert len(pulled) <= 4  # rendering stopped with the barge-in, not after 10 pieces


def test_rendering_runs_off_the_event_loop() -> None:
    """While a piece renders, the call's event loop keeps running (RTP, DTMF, ASR)."""

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        player = _player(loop)
        ticks = 0
        stop = threading.Event()

        async def tick() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())
        pieces = _rendered(3, [])
        await player.prompts.play(next(pieces), more=pieces)
        stop.set()
        await ticker
        return ticks

    assert asyncio.run(scenario()) >= 20  # ~0.3 s of rendering, 10 ms ticks
