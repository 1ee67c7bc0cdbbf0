"""Endpointing: where an utterance starts and ends, from a voice-activity detector.

webrtcvad classifies each 20 ms frame; a short run of voiced frames starts speech
(the start-of-speech event drives barge-in), a configurable run of unvoiced frames
ends it, and a maximum length forces an end so a caller talking over a noisy line
still gets an answer. Frames before the onset are kept (pre-roll) so the first
syllable reaches the recogniser.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import webrtcvad

from asr.base import FRAME_BYTES, SAMPLE_RATE, check_frame
from hotline.settings import EndpointingSettings

FRAME_S = 0.02
# Frames quieter than this (dBFS) never count as speech: webrtcvad alone flags line
# hiss and comfort noise on some trunks.
MIN_SPEECH_DBFS = -55.0


class Phase(Enum):
    SILENCE = "silence"
    SPEECH = "speech"


@dataclass(slots=True)
class Step:
    """What one frame did to the endpointer."""

    started: bool = False
    ended: bool = False
    in_speech: bool = False
    voiced: bool = False
    reason: str = ""
    # On start: the pre-roll frames plus this one; in speech: just this frame.
    audio: list[bytes] = field(default_factory=list)


class Endpointer:
    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings
        self._vad = webrtcvad.Vad(settings.vad_aggressiveness)
        self._start_frames = max(1, settings.start_speech_ms // 20)
        # The endpointer itself waits for the longer silence; a recogniser that can tell the
        # words are complete ends the turn earlier with end_now() (see asr.recognizer).
        self._end_frames = max(1, max(settings.end_silence_ms, settings.max_end_silence_ms) // 20)
        self._max_frames = int(settings.max_utterance_s / FRAME_S)
        self._pre_roll: deque[bytes] = deque(
            maxlen=max(self._start_frames, settings.pre_roll_ms // 20)
        )
        self._recent: deque[bool] = deque(maxlen=self._start_frames)
        self.frames_seen = 0
        self.phase = Phase.SILENCE
        self.speech_start_s = 0.0
        self.last_voiced_end_s = 0.0
        self.trailing_silence_frames = 0
        self._speech_frames = 0

    @property
    def now_s(self) -> float:
        return self.frames_seen * FRAME_S

    def is_voiced(self, frame: bytes) -> bool:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        rms = float(np.sqrt(np.mean(samples * samples))) + 1e-9
        if 20 * np.log10(rms / 32768.0) < MIN_SPEECH_DBFS:
            return False
        return bool(self._vad.is_speech(frame, SAMPLE_RATE))

    def reset(self) -> None:
        """Forget the utterance in progress (new turn); the stream clock keeps running."""
        self.phase = Phase.SILENCE
        self._pre_roll.clear()
        self._recent.clear()
        self.trailing_silence_frames = 0
        self._speech_frames = 0

    def push(self, frame: bytes) -> Step:
        check_frame(frame)
        voiced = self.is_voiced(frame)
        self.frames_seen += 1
        step = Step(voiced=voiced)
        if self.phase is Phase.SILENCE:
            self._listen_for_onset(frame, voiced, step)
        else:
            self._follow_speech(frame, voiced, step)
        return step

    def _listen_for_onset(self, frame: bytes, voiced: bool, step: Step) -> None:
        self._pre_roll.append(frame)
        self._recent.append(voiced)
        # Start when most of the last start_speech_ms is voiced: one click is not speech.
        needed = (
            max(1, (len(self._recent) * 4 + 4) // 5)
            if len(self._recent) == self._start_frames
            else None
        )
        if needed is None or sum(self._recent) < needed:
            return
        first_voiced = self._recent.index(True)
        onset_frame = self.frames_seen - len(self._recent) + first_voiced
        self.phase = Phase.SPEECH
        self.speech_start_s = onset_frame * FRAME_S
        self.last_voiced_end_s = self.now_s
        self.trailing_silence_frames = 0
        self._speech_frames = len(self._recent)
        step.started = step.in_speech = True
        step.audio = list(self._pre_roll)
        self._pre_roll.clear()
        self._recent.clear()

    def _follow_speech(self, frame: bytes, voiced: bool, step: Step) -> None:
        step.in_speech = True
        step.audio = [frame]
        self._speech_frames += 1
        if voiced:
            self.trailing_silence_frames = 0
            self.last_voiced_end_s = self.now_s
        else:
            self.trailing_silence_frames += 1
        if self.trailing_silence_frames >= self._end_frames:
            self._end(step, "silence")
        elif self._speech_frames >= self._max_frames:
            self._end(step, "max_length")

    def end_now(self, step: Step, reason: str = "silence") -> None:
        """End the utterance in progress on this step (decided by the recogniser)."""
        if self.phase is Phase.SPEECH:
            self._end(step, reason)

    def _end(self, step: Step, reason: str) -> None:
        step.ended = True
        step.reason = reason
        self.phase = Phase.SILENCE
        self._recent.clear()
        self.trailing_silence_frames = 0


def speech_bounds(pcm: bytes, settings: EndpointingSettings) -> list[tuple[float, float]]:
    """(start_s, end_s) of each utterance in a whole 16 kHz buffer (by silence alone)."""
    ep = Endpointer(settings)
    bounds: list[tuple[float, float]] = []
    for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        step = ep.push(pcm[i : i + FRAME_BYTES])
        if step.ended:
            bounds.append((ep.speech_start_s, ep.last_voiced_end_s))
    if ep.phase is Phase.SPEECH:
        bounds.append((ep.speech_start_s, ep.last_voiced_end_s))
    return bounds
