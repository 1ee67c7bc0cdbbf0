"""Turn-taking alone (``ivr.turns``), on a fake clock and a scripted dialogue: when the
caller cuts a prompt, and when their words go on with the turn the bot just answered."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.events import (
    Action,
    BargeIn,
    Decision,
    Dtmf,
    Event,
    HangUp,
    Hypothesis,
    Listen,
    Say,
    SilenceTimeout,
    Transfer,
    Utterance,
    join_turns,
)
from ivr.turns import TurnTaking


@dataclass
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ScriptedDialogue:
    """Answers every event with ``reply``; its state is how many events it handled."""

    reply: list[Action] = field(default_factory=lambda: [Say("请问具体在哪里？"), Listen()])
    state: int = 0
    handled: list[Event] = field(default_factory=list)
    restored: list[object] = field(default_factory=list)

    def handle(self, event: Event) -> Decision:
        self.handled.append(event)
        self.state += 1
        return Decision(list(self.reply), f"state-{self.state}")

    def snapshot(self) -> object:
        return ("state", self.state)

    def restore(self, snapshot: object) -> None:
        self.restored.append(snapshot)
        assert isinstance(snapshot, tuple)
        self.state = snapshot[1]


FIRST = Utterance("我想反映一下。", 0.9)
THEN = Utterance("小区门口的路灯坏了", 0.6)


def turn_taking(continuation_s: float = 1.0) -> tuple[TurnTaking, ScriptedDialogue, FakeClock]:
    dialogue, clock = ScriptedDialogue(), FakeClock()
    return TurnTaking(dialogue, continuation_s, clock), dialogue, clock


def test_a_caller_who_only_paused_gets_one_answer_to_the_whole_sentence() -> None:
    turns, dialogue, clock = turn_taking()
    first = turns.decide(FIRST)
    assert first.continued is None and first.event == FIRST
    clock.now += 0.6  # the caller goes on within the window
    assert not turns.speech_started(line_playing=False)
    second = turns.decide(THEN)
    assert second.continued == FIRST
    # The bot's answer to the first part is taken back: back to before it, then the
    # whole sentence is the one turn it answers.
    assert dialogue.restored == [("state", 0)]
    assert dialogue.handled == [FIRST, second.event] and dialogue.state == 1
    assert isinstance(second.event, Utterance)
    assert second.event.text == "我想反映一下，小区门口的路灯坏了"
    weighted = (0.9 * len(FIRST.text) + 0.6 * len(THEN.text)) / (len(FIRST.text) + len(THEN.text))
    assert second.event.confidence == pytest.approx(weighted)


def test_speech_after_the_window_is_a_new_turn() -> None:
    turns, dialogue, clock = turn_taking(continuation_s=1.0)
    turns.decide(FIRST)
    clock.now += 1.2
    turns.speech_started(line_playing=False)
    second = turns.decide(THEN)
    assert second.continued is None and second.event == THEN
    assert dialogue.restored == [] and dialogue.state == 2


def test_a_second_start_without_words_in_between_is_new_speech() -> None:
    turns, dialogue, clock = turn_taking()
    turns.decide(FIRST)
    clock.now += 0.3
    turns.speech_started(line_playing=False)  # a cough: no words came of it
    clock.now += 0.3
    turns.speech_started(line_playing=False)
    assert turns.decide(THEN).continued is None
    assert dialogue.restored == []


@pytest.mark.parametrize("moved_on", [Dtmf("1"), SilenceTimeout()])
def test_a_key_or_a_timeout_in_between_closes_the_turn(moved_on: Event) -> None:
    turns, dialogue, clock = turn_taking()
    turns.decide(FIRST)
    clock.now += 0.2
    turns.speech_started(line_playing=False)
    turns.decide(moved_on)
    assert turns.decide(THEN).continued is None
    assert dialogue.restored == []


def test_a_caller_going_on_over_the_reply_cuts_it_and_still_continues_the_turn() -> None:
    turns, dialogue, clock = turn_taking()
    turns.decide(FIRST)
    stopped: list[bool] = []
    turns.prompt_started(lambda: stopped.append(True), barge_in=True)  # the bot's reply
    clock.now += 0.4
    assert turns.speech_started(line_playing=True)  # the caller speaks over it
    assert stopped == [True]
    turns.prompt_ended()
    turns.decide(BargeIn())  # the bot hears the barge-in: the turn stays open
    assert turns.decide(THEN).continued == FIRST
    assert dialogue.restored == [("state", 0)]


@pytest.mark.parametrize("final", [HangUp("done"), Transfer("general", "人工")])
def test_a_reply_that_did_more_than_speak_is_never_taken_back(final: Action) -> None:
    turns, dialogue, clock = turn_taking()
    dialogue.reply = [Say("好的"), final]
    turns.decide(FIRST)
    clock.now += 0.2
    turns.speech_started(line_playing=False)
    assert turns.decide(THEN).continued is None
    assert dialogue.restored == []


def test_continuation_off_takes_no_snapshot_and_never_continues() -> None:
    turns, dialogue, _ = turn_taking(continuation_s=0)
    snapshots: list[object] = []
    dialogue.snapshot = lambda: snapshots.append(1)  # type: ignore[method-assign]
    turns.decide(FIRST)
    turns.speech_started(line_playing=False)  # at once: still not within a 0 s window
    assert turns.decide(THEN).continued is None
    assert snapshots == [] and dialogue.restored == []


def test_the_n_best_of_the_part_that_followed_keeps_its_sequence_probability() -> None:
    then = Utterance("路灯坏了", 0.7, (Hypothesis("路灯坏了", -0.2), Hypothesis("路的坏了", -0.9)))
    joined = join_turns(Utterance("我想反映一下。", 0.9), then)
    head = "我想反映一下，"  # the first part's full stop becomes a comma
    assert joined.text == head + "路灯坏了"
    assert [h.text for h in joined.alternatives] == [head + "路灯坏了", head + "路的坏了"]
    # Per-token scores: the decided head adds no uncertainty, so each score is spread
    # over the longer sentence (score x 4 tokens / 11 tokens).
    assert [h.score for h in joined.alternatives] == pytest.approx([-0.2 * 4 / 11, -0.9 * 4 / 11])
    assert joined.alternatives[0].score > joined.alternatives[1].score


def test_speech_over_a_prompt_that_may_be_cut_stops_it_once() -> None:
    turns, _, _ = turn_taking()
    stopped: list[bool] = []
    turns.prompt_started(lambda: stopped.append(True), barge_in=True)
    assert turns.speech_started(line_playing=True)
    assert stopped == [True]


def test_speech_once_the_line_has_gone_quiet_cuts_nothing() -> None:
    turns, _, _ = turn_taking()
    stopped: list[bool] = []
    turns.prompt_started(lambda: stopped.append(True), barge_in=True)
    assert not turns.speech_started(line_playing=False)
    assert stopped == []


def test_a_prompt_the_caller_must_hear_is_not_flushed_by_speech_or_keys() -> None:
    turns, _, _ = turn_taking()
    stopped: list[bool] = []
    turns.prompt_started(lambda: stopped.append(True), barge_in=False)  # emergency advice
    assert not turns.speech_started(line_playing=True)
    assert not turns.barge_in()  # a key press
    assert stopped == []


def test_nothing_to_cut_between_prompts() -> None:
    turns, _, _ = turn_taking()
    stopped: list[bool] = []
    assert not turns.barge_in()
    turns.prompt_started(lambda: stopped.append(True), barge_in=True)
    turns.prompt_ended()
    assert not turns.speech_started(line_playing=True) and not turns.barge_in()
    assert stopped == []
