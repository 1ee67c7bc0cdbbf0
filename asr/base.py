"""The recogniser interface every engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from hotline.errors import UserFacingError

SAMPLE_RATE = 16000
FRAME_BYTES = 640  # 20 ms of 16-bit mono PCM at 16 kHz


class AsrError(UserFacingError):
    """Recognition cannot run (missing or damaged model, bad audio); the message says the fix."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking: stop the prompt (barge-in). Times are stream seconds."""

    at_s: float


@dataclass(frozen=True, slots=True)
class Alternative:
    """One of the recogniser's hypotheses for an utterance (Whisper: one beam)."""

    text: str
    score: float  # the decoder's log-probability per token: higher is likelier


@dataclass(frozen=True, slots=True)
class Heard:
    """What an engine decoded for one utterance: the best text and its alternatives."""

    text: str
    confidence: float  # 0..1
    alternatives: tuple[Alternative, ...] = ()  # best first; the first is ``text``


@dataclass(frozen=True, slots=True)
class Transcript:
    """A partial (still changing) or final result for one utterance."""

    text: str
    confidence: float  # 0..1
    start_s: float
    end_s: float
    is_final: bool
    reason: str = "silence"  # why a final ended: silence | max_length | stream_end
    # The n-best for a final, best first (its first is ``text``); empty when the engine
    # gives one hypothesis only. Understanding weighs them all (bot.nbest).
    alternatives: tuple[Alternative, ...] = ()


AsrEvent = SpeechStarted | Transcript


class Recognizer(ABC):
    """One per call. Not thread-safe: feed it from one thread (the call's ASR worker)."""

    @abstractmethod
    def accept(self, frame: bytes) -> list[AsrEvent]:
        """Feed one 20 ms frame of 16 kHz 16-bit PCM; return the events it completed."""

    @abstractmethod
    def finish(self) -> list[AsrEvent]:
        """End of stream (hang-up): return the final for speech still in progress, if any."""

    @abstractmethod
    def reset(self, hints: Sequence[str] = ()) -> None:
        """Start a new turn: drop any utterance in progress and use these phrase hints."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release per-call resources."""


class SpeechEngine(ABC):
    """A loaded model, shared by every call of the process."""

    name: str

    @abstractmethod
    def recognizer(self, hints: Sequence[str] = (), realtime: bool = True) -> Recognizer:
        """A new recogniser for one call.

        ``realtime=False`` is for files decoded faster than real time: turn-taking that
        depends on how fast a decode finishes then waits for it, so results do not depend
        on the machine's speed.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model."""


def check_frame(frame: bytes) -> None:
    if len(frame) != FRAME_BYTES:
        raise AsrError(
            f"a frame must be 20 ms of 16 kHz 16-bit mono PCM ({FRAME_BYTES} bytes), "
            f"got {len(frame)} bytes; resample 8 kHz telephone audio first"
        )
