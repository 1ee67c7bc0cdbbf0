"""What every engine's per-call recogniser shares: VAD turns, utterance audio, early ends.

A turn ends after ``end_silence_ms`` of silence when the words so far look like a
complete request, and after ``max_end_silence_ms`` in any case. Callers pause in the
middle of a sentence ("我想问一下那个……公积金"), so a short pause after a word that
promises more does not end the turn; a short pause after a finished sentence does,
which keeps the bot's reply fast.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence

from asr.base import Alternative, AsrEvent, Heard, Recognizer, SpeechStarted, Transcript
from asr.endpoint import Endpointer
from asr.hints import corrector_for
from hotline.settings import EndpointingSettings

# Endings after which a Mandarin speaker is very likely to go on.
CONTINUATION_ENDINGS = (
    "，", ",", "、", "：", "就是", "然后", "还有", "因为", "所以", "但是", "可是", "而且",
    "那个", "这个", "就", "和", "跟", "与", "的话", "如果", "或者", "还是", "我想", "想问",
    "请问", "问一下", "嗯", "呃", "额", "那", "在", "是", "把", "被", "给", "对", "从", "到",
)  # fmt: skip
TRAILING_MARKS = "。．.！!？?… 　"


def looks_complete(text: str) -> bool:
    """True when a transcript does not end on a word that announces more to come."""
    # Whisper ends almost every cut with "。", so a full stop says nothing; only the
    # last word does.
    core = text.strip().rstrip(TRAILING_MARKS)
    if not core:
        return False
    return not core.endswith(CONTINUATION_ENDINGS)


class VadRecognizer(Recognizer):
    """Template for engines: subclasses decode; this class decides when turns start and end."""

    def __init__(self, endpointing: EndpointingSettings, hints: Sequence[str] = ()) -> None:
        self.endpointer = Endpointer(endpointing)
        self._corrector = corrector_for(tuple(hints))
        self._early_end_frames = max(1, endpointing.end_silence_ms // 20)
        self._utterance: list[bytes] = []
        self._voiced_frames = 0  # frames up to and including the last voiced one

    # ---- hooks ----
    def _on_start(self) -> None:
        """A new utterance begins."""

    def _on_audio(self, frame: bytes) -> None:
        """One frame of the utterance (pre-roll included)."""

    def _partials(self) -> list[AsrEvent]:
        return []

    def _on_silence(self) -> None:
        """Called on every silent frame inside an utterance."""

    @abstractmethod
    def _words_complete(self) -> bool:
        """Whether what was said so far looks finished (allows an early end)."""

    @abstractmethod
    def _decode(self) -> Heard | None:
        """What the utterance just ended said, or None for no speech."""

    def _on_reset(self, hints: Sequence[str]) -> None:
        """Drop engine state; use these hints from now on."""

    # ---- Recognizer ----
    def accept(self, frame: bytes) -> list[AsrEvent]:
        step = self.endpointer.push(frame)
        events: list[AsrEvent] = []
        if step.started:
            self._utterance, self._voiced_frames = [], 0
            self._on_start()
            events.append(SpeechStarted(self.endpointer.speech_start_s))
        if step.in_speech:
            for piece in step.audio:
                self._utterance.append(piece)
                self._on_audio(piece)
            if step.voiced or step.started:
                self._voiced_frames = len(self._utterance)
            if not step.ended:
                events.extend(self._partials())
                if not step.voiced:
                    self._on_silence()
                    if (
                        self.endpointer.trailing_silence_frames >= self._early_end_frames
                        and self._words_complete()
                    ):
                        self.endpointer.end_now(step)
        if step.ended:
            events.extend(self._finish_utterance(step.reason))
        return events

    def finish(self) -> list[AsrEvent]:
        if not self._utterance:
            return []
        self.endpointer.reset()
        return self._finish_utterance("stream_end")

    def reset(self, hints: Sequence[str] = ()) -> None:
        self.endpointer.reset()
        self._utterance, self._voiced_frames = [], 0
        self._corrector = corrector_for(tuple(hints))
        self._on_reset(hints)

    # ---- helpers for subclasses ----
    def speech_audio(self) -> bytes:
        """The utterance up to 100 ms after its last voiced frame (quiet final consonants)."""
        return b"".join(self._utterance[: min(len(self._utterance), self._voiced_frames + 5)])

    def _finish_utterance(self, reason: str) -> list[AsrEvent]:
        decoded = self._decode()
        start, end = self.endpointer.speech_start_s, self.endpointer.last_voiced_end_s
        self._utterance, self._voiced_frames = [], 0
        if decoded is None or not decoded.text:
            return []
        text = self._corrector.correct(decoded.text)
        alternatives = _corrected(self._corrector.correct, decoded.alternatives)
        return [Transcript(text, decoded.confidence, start, end, True, reason, alternatives)]


def _corrected(
    correct: Callable[[str], str], alternatives: Sequence[Alternative]
) -> tuple[Alternative, ...]:
    """The n-best through the hint corrector, duplicates dropped (the better score kept)."""
    out: dict[str, Alternative] = {}
    for alt in alternatives:
        text = correct(alt.text)
        if text and text not in out:
            out[text] = Alternative(text, alt.score)
    return tuple(out.values())
