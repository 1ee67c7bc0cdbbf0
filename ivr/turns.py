"""Turn-taking on a call: when the caller may cut a prompt short (barge-in), and when
their new words go on with the turn the bot has just answered (a continued turn).

The part only decides; it needs no event loop. Time comes from ``clock`` (monotonic
seconds), so tests drive it with a fake clock, and stopping the line is the ``stop``
the session hands over with each prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.events import BargeIn, Decision, Event, Listen, Say, Utterance, join_turns

# A reply of only these can be taken back: nothing was filed, transferred or hung up.
REVERSIBLE = (Say, Listen)


class ReversibleDialogue(Protocol):
    """What turn-taking needs of the bot's dialogue (``ivr.session.Dialogue``)."""

    def handle(self, event: Event) -> Decision: ...

    def snapshot(self) -> object: ...

    def restore(self, snapshot: object) -> None: ...


@dataclass(slots=True)
class OpenTurn:
    """The caller's last turn while they may still be going on with it.

    The recogniser ends a turn after a short pause (300 ms) so the bot answers fast; a
    caller who had only paused ("我想反映一下。[pause] 我们小区门口的路灯坏了") starts
    speaking again within ``continuation_s``. If the bot's reply to the first part only
    spoke (no ticket, transfer or hang-up yet), it is taken back: the dialogue returns to
    ``snapshot`` and the whole sentence is answered as one turn.
    """

    snapshot: object
    utterance: Utterance
    ended_at: float  # clock time when the bot took the turn
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class TakenTurn:
    """The bot's decision on one of the caller's events."""

    event: Event  # as the bot saw it: a continued utterance is the whole sentence
    decision: Decision
    # The first part of a continued turn, whose answer was taken back; None otherwise.
    continued: Utterance | None = None


@dataclass(frozen=True, slots=True)
class _PlayingPrompt:
    may_cut: bool  # Say.barge_in: False for advice the caller must hear to the end
    stop: Callable[[], None]


class TurnTaking:
    def __init__(
        self,
        dialogue: ReversibleDialogue,
        continuation_s: float,  # 0: a turn is never continued
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dialogue = dialogue
        self.continuation_s = continuation_s
        self.clock = clock
        self._prompt: _PlayingPrompt | None = None
        self._open_turn: OpenTurn | None = None

    # ---- barge-in ----
    def prompt_started(self, stop: Callable[[], None], *, barge_in: bool) -> None:
        """A prompt is playing; ``stop`` silences the line and ends its wait."""
        self._prompt = _PlayingPrompt(barge_in, stop)

    def prompt_ended(self) -> None:
        self._prompt = None

    def speech_started(self, line_playing: bool) -> bool:
        """The caller started to speak. True: it cut the prompt (the bot hears a BargeIn)."""
        self._note_resumption()
        # Speech over a prompt whose last packet has already gone out cuts nothing.
        return line_playing and self.barge_in()

    def barge_in(self) -> bool:
        """The caller spoke or pressed a key over a prompt: it stops, if it may be cut."""
        prompt = self._prompt
        if prompt is None or not prompt.may_cut:
            return False
        prompt.stop()
        return True

    # ---- continued turns ----
    def decide(self, event: Event) -> TakenTurn:
        """The bot's decision on ``event``; an utterance that goes on with the open turn
        first takes back the answer to that turn's first part."""
        snapshot: object | None = None
        continued: Utterance | None = None
        if isinstance(event, Utterance):
            turn, self._open_turn = self._open_turn, None
            if turn is not None and turn.resumed:
                self.dialogue.restore(turn.snapshot)
                continued = turn.utterance
                event = join_turns(turn.utterance, event)
            if self.continuation_s > 0:
                snapshot = self.dialogue.snapshot()
        elif not isinstance(event, BargeIn):
            self._open_turn = None  # a key press or a timeout: the caller has moved on
        decision = self.dialogue.handle(event)
        if isinstance(event, Utterance):
            reversible = all(isinstance(a, REVERSIBLE) for a in decision.actions)
            if snapshot is not None and reversible:
                self._open_turn = OpenTurn(snapshot, event, self.clock())
        return TakenTurn(event, decision, continued)

    def _note_resumption(self) -> None:
        turn = self._open_turn
        if turn is None:
            return
        # A second start with no words in between (a cough, line noise) or a start after
        # the window is new speech, not the sentence going on.
        if turn.resumed or self.clock() - turn.ended_at > self.continuation_s:
            self._open_turn = None
        else:
            turn.resumed = True
