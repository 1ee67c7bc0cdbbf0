"""Prompt playout alone (``ivr.playout``): a fake line that plays nothing by itself (the
test says when a prompt's audio has gone out), a scripted prompt source and short
deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

from bot.events import Say
from ivr.journal import CallRecord, JournalEvent
from ivr.playout import PromptPlayer
from ivr.turns import TurnTaking
from voice.prompts import Prompt

GRACE_S = 0.05  # the deadline of a prompt of (almost) no length
NUMBER, WITH_NUMBER = 8, 9  # the tags of the fake prompts that read a ticket number


def prompt(tag: int, seconds: float = 0.02) -> Prompt:
    return Prompt(bytes([tag, 0]) * int(8000 * seconds), "rendered", "stand-in", "")


@dataclass
class FakeLine:
    """Queues what it is given; ``played()`` is the media clock sending the oldest."""

    queued: list[tuple[bytes, Callable[[], None] | None]] = field(default_factory=list)
    flushes: int = 0

    def play(self, pcm8k: bytes, done: Callable[[], None] | None = None) -> None:
        self.queued.append((pcm8k, done))

    def flush(self) -> list[object]:
        self.flushes += 1
        dropped = [done for _, done in self.queued if done is not None]
        self.queued.clear()
        return dropped

    def played(self) -> None:
        _, done = self.queued.pop(0)
        if done is not None:
            done()


@dataclass
class FakePrompts:
    pieces: list[Prompt]

    def get(self, text: str, prompt_id: str | None = None, slow: bool = False) -> Prompt:
        return self.pieces[0]

    def stream(
        self, text: str, prompt_id: str | None = None, slow: bool = False
    ) -> Iterator[Prompt]:
        return iter(self.pieces)

    def ticket_number(self, number: str) -> Prompt:
        return prompt(NUMBER)

    def with_ticket_number(self, wording: str, number: str) -> Prompt:
        return prompt(WITH_NUMBER)


@dataclass
class Seen:
    """What the player told the rest of the call."""

    journal: list[tuple[JournalEvent, dict[str, object]]] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    recorded: bytearray = field(default_factory=bytearray)
    prompts_started: int = 0
    media_lost: list[str] = field(default_factory=list)

    def write(self, kind: JournalEvent, data: dict[str, object]) -> None:
        self.journal.append((kind, data))

    def prompt_started(self) -> None:
        self.prompts_started += 1

    async def lost(self, why: str) -> None:
        self.media_lost.append(why)


@dataclass
class Call:
    line: FakeLine
    turns: TurnTaking
    ended: asyncio.Event
    record: CallRecord
    player: PromptPlayer
    seen: Seen


def call(pieces: list[Prompt] | None = None) -> Call:
    line, ended, seen = FakeLine(), asyncio.Event(), Seen()
    turns = TurnTaking(SimpleNamespace(), continuation_s=0)  # no dialogue: only barge-in
    record = CallRecord(call_id="c1", caller="13800138000", started_at="")
    prompts = FakePrompts([prompt(1)] if pieces is None else pieces)
    player = PromptPlayer(
        line, prompts, turns, ended, record, seen,
        said=seen.said.append, on_prompt=seen.prompt_started, played=seen.recorded.extend,
        media_lost=seen.lost, slack=1.5, grace_s=GRACE_S,
    )  # fmt: skip
    return Call(line, turns, ended, record, player, seen)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the player did not get there")


def test_a_prompt_played_to_its_end_returns_true() -> None:
    async def scenario() -> tuple[Call, bool]:
        c = call()
        playing = asyncio.ensure_future(c.player.play(prompt(7, seconds=1.0)))
        await until(lambda: len(c.line.queued) == 1)
        assert not playing.done()  # queued, not yet heard
        c.line.played()
        return c, await playing

    c, played = asyncio.run(scenario())
    assert played and c.seen.prompts_started == 1
    assert c.seen.recorded == prompt(7, seconds=1.0).pcm  # the recording holds what went out
    assert c.line.flushes == 0 and c.seen.media_lost == []
    assert not c.turns.barge_in()  # the prompt is over: nothing left to cut


def test_a_barge_in_flushes_the_line_and_returns_false() -> None:
    async def scenario() -> tuple[Call, bool]:
        c = call()
        playing = asyncio.ensure_future(c.player.play(prompt(7, seconds=1.0)))
        await until(lambda: len(c.line.queued) == 1)
        assert c.turns.barge_in()  # the caller speaks over it
        return c, await playing

    c, played = asyncio.run(scenario())
    assert not played and c.line.flushes == 1 and c.line.queued == []
    assert c.record.barge_ins == 1 and c.seen.media_lost == []


def test_advice_the_caller_must_hear_is_not_cut() -> None:
    async def scenario() -> tuple[Call, bool]:
        c = call()
        playing = asyncio.ensure_future(c.player.play(prompt(7, seconds=1.0), barge_in=False))
        await until(lambda: len(c.line.queued) == 1)
        assert not c.turns.barge_in()
        c.line.played()
        return c, await playing

    c, played = asyncio.run(scenario())
    assert played and c.line.flushes == 0 and c.record.barge_ins == 0


def test_a_prompt_never_sent_hits_its_deadline_and_reports_the_media_lost() -> None:
    async def scenario() -> tuple[Call, bool, float]:
        c = call()
        loop = asyncio.get_running_loop()
        start = loop.time()
        played = await c.player.play(prompt(7, seconds=0.02))  # the line never plays it
        return c, played, loop.time() - start

    c, played, waited = asyncio.run(scenario())
    deadline = 0.02 * 1.5 + GRACE_S
    assert not played and deadline <= waited < deadline + 1.0
    assert len(c.seen.media_lost) == 1 and "still not played" in c.seen.media_lost[0]


def test_a_hang_up_ends_the_wait_without_blaming_the_media() -> None:
    async def scenario() -> tuple[Call, bool]:
        c = call()
        asyncio.get_running_loop().call_later(0.01, c.ended.set)
        return c, await c.player.play(prompt(7, seconds=60.0))

    c, played = asyncio.run(scenario())
    assert not played and c.seen.media_lost == []


def test_streamed_pieces_are_queued_in_order_as_they_come() -> None:
    async def scenario() -> tuple[Call, bool]:
        c = call()
        rendered: asyncio.Queue[int] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pieces() -> Iterator[Prompt]:  # rendered in a worker thread, one per signal
            for _ in range(3):
                tag = asyncio.run_coroutine_threadsafe(rendered.get(), loop).result()
                yield prompt(tag)

        playing = asyncio.ensure_future(c.player.play(prompt(1), more=pieces()))
        await until(lambda: len(c.line.queued) == 1)
        c.line.played()  # the first clause is heard before the next is rendered
        await rendered.put(2)
        await until(lambda: len(c.line.queued) == 1)
        await rendered.put(3)
        await rendered.put(4)
        await until(lambda: len(c.line.queued) == 3)
        assert [pcm[0] for pcm, _ in c.line.queued] == [2, 3, 4]
        c.line.played()
        c.line.played()
        assert not playing.done()  # the last clause is still going out
        c.line.played()
        return c, await playing

    c, played = asyncio.run(scenario())
    assert played
    assert bytes(c.seen.recorded) == b"".join(prompt(n).pcm for n in (1, 2, 3, 4))


def test_a_say_is_journalled_and_written_in_the_transcript() -> None:
    async def scenario() -> tuple[Call, bool]:
        c = call([prompt(1), prompt(2)])
        saying = asyncio.ensure_future(c.player.say(Say("您反映的是路灯问题", prompt="readback")))
        await until(lambda: len(c.line.queued) == 2)
        c.line.played()
        c.line.played()
        return c, await saying

    c, played = asyncio.run(scenario())
    assert played and c.seen.said == ["您反映的是路灯问题"]
    assert c.seen.journal == [
        (JournalEvent.SAY, {"text": "您反映的是路灯问题", "prompt": "readback"})
    ]


def test_a_say_with_no_audio_counts_as_heard() -> None:
    c = call([])
    assert asyncio.run(c.player.say(Say("")))
    assert c.line.queued == [] and c.seen.said == [""]


def confirmed(wording: str, number: str) -> tuple[list[str], list[int]]:
    """What a callback confirmation put in the transcript, and the prompts it played."""

    async def scenario() -> tuple[list[str], list[int]]:
        c = call()
        heard: list[int] = []

        def play(pcm8k: bytes, done: Callable[[], None] | None = None) -> None:
            heard.append(pcm8k[0])
            if done is not None:
                asyncio.get_running_loop().call_soon(done)  # played out at once

        c.line.play = play  # type: ignore[method-assign]
        await c.player.confirm_callback(wording, number, fallback="我们会尽快回电")
        return c.seen.said, heard

    return asyncio.run(scenario())


def test_a_callback_confirmation_reads_the_number_where_the_wording_puts_it() -> None:
    said, heard = confirmed("已登记，工单号{ticket_no}，明天回电", "20261128-0001")
    assert said == ["已登记，工单号20261128-0001，明天回电"] and heard == [WITH_NUMBER]


def test_a_callback_confirmation_without_a_place_for_the_number_reads_it_after() -> None:
    said, heard = confirmed("已登记，明天回电", "20261128-0001")
    assert said == ["已登记，明天回电"] and heard == [1, NUMBER]


def test_a_spooled_callback_keeps_the_promise_without_a_number() -> None:
    said, heard = confirmed("已登记，工单号{ticket_no}", "")
    assert said == ["我们会尽快回电"] and heard == [1]
