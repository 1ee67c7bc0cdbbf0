"""Whisper through CTranslate2 (faster-whisper's model, our own decode call).

Why not ``WhisperModel.transcribe``: it pads every input to 30 s of features, so a 3 s
utterance costs as much encoder time as 30 s (about 1.5 s on one core for the base
model). CTranslate2 accepts shorter inputs, so we encode only the utterance plus a
short silent tail (without the tail the decoder tends to repeat itself), which makes
a typical utterance 4-6 times cheaper. We also decode *speculatively*: once the
caller has been silent for ``speculative_silence_ms`` the utterance is decoded in the
background, so the final is usually ready the moment the endpointer confirms the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import opencc

from asr.base import AsrError, Recognizer, SpeechEngine
from asr.recognizer import VadRecognizer, looks_complete
from asr.models import install_whisper_base
from hotline.settings import EndpointingSettings, WhisperSettings

TAIL_PAD_S = 1.0  # silence appended before encoding; see the module docstring
SAMPLE_RATE = 16000
BASE_PROMPT = "以下是普通话的句子。"
MAX_HINT_CHARS = 120
# Below this the caller almost certainly said nothing (cough, line noise).
NO_SPEECH_PROB = 0.6


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    confidence: float
    no_speech_prob: float


class WhisperEngine(SpeechEngine):
    name = "whisper"

    def __init__(self, settings: WhisperSettings, endpointing: EndpointingSettings, models_dir: Path) -> None:
        from faster_whisper import WhisperModel  # heavy import: only when the engine is used

        model_dir = settings.model_dir or install_whisper_base(models_dir)
        if not (Path(model_dir) / "model.bin").is_file():
            raise AsrError(f"{model_dir} is not a CTranslate2 Whisper model directory (no model.bin)")
        workers = settings.parallel_decodes or _cpu_count()
        self.settings = settings
        self.endpointing = endpointing
        self._model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type=settings.compute_type,
            cpu_threads=settings.threads_per_decode,
            num_workers=workers,
        )
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper")
        tokenizer = self._model.hf_tokenizer
        self._tokenizer = tokenizer
        self._sot_prev = tokenizer.token_to_id("<|startofprev|>")
        self._task = [
            tokenizer.token_to_id("<|startoftranscript|>"),
            tokenizer.token_to_id(f"<|{settings.language}|>"),
            tokenizer.token_to_id("<|transcribe|>"),
            tokenizer.token_to_id("<|notimestamps|>"),
        ]
        self._eot = tokenizer.token_to_id("<|endoftext|>")
        self._to_simplified = opencc.OpenCC("t2s")
        self._prompt_text = BASE_PROMPT

    def recognizer(self, hints: Sequence[str] = ()) -> Recognizer:
        return WhisperRecognizer(self, hints)

    def prompt_tokens(self, hints: Sequence[str]) -> list[int]:
        text = BASE_PROMPT
        if hints:
            text = BASE_PROMPT + "关键词：" + "、".join(hints)
            text = text[: len(BASE_PROMPT) + MAX_HINT_CHARS]
        self._prompt_text = text
        previous = self._tokenizer.encode(text, add_special_tokens=False).ids
        return [self._sot_prev, *previous, *self._task]

    def submit(self, pcm: bytes, prompt: list[int]) -> Future[Decoded]:
        return self._executor.submit(self.decode, pcm, prompt)

    def decode(self, pcm: bytes, prompt: list[int]) -> Decoded:
        """Recognise one utterance of 16 kHz 16-bit PCM (runs in a worker thread)."""
        import ctranslate2

        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        audio = np.concatenate([audio, np.zeros(int(TAIL_PAD_S * SAMPLE_RATE), np.float32)])
        features = self._model.feature_extractor(audio, padding=0)
        frames = features.shape[-1] // 2 * 2  # the encoder halves the frame count
        features = np.ascontiguousarray(features[None, :, :frames], dtype=np.float32)
        seconds = len(pcm) / 2 / SAMPLE_RATE
        result = self._model.model.generate(
            ctranslate2.StorageView.from_array(features),
            [prompt],
            beam_size=self.settings.beam_size,
            max_length=min(448, len(prompt) + 8 + int(seconds * 10)),
            return_scores=True,
            return_no_speech_prob=True,
            repetition_penalty=1.05,
            no_repeat_ngram_size=4,  # stops "我说我说我说..." loops on short noisy cuts
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < self._eot]
        text = self._to_simplified.convert(self._tokenizer.decode(tokens)).strip()
        confidence = math.exp(result.scores[0]) if result.scores else 0.0
        return Decoded(text, min(1.0, confidence), result.no_speech_prob)

    def is_speech(self, decoded: Decoded) -> bool:
        """Reject silence, noise and the decoder echoing its own prompt."""
        if not decoded.text:
            return False
        if decoded.no_speech_prob > NO_SPEECH_PROB and decoded.confidence < 0.5:
            return False
        return decoded.text.strip("。，,. ") not in self._prompt_text

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class WhisperRecognizer(VadRecognizer):
    """VAD-cut utterances, each decoded whole; finals only (Whisper has no partials)."""

    def __init__(self, engine: WhisperEngine, hints: Sequence[str]) -> None:
        super().__init__(engine.endpointing)
        self.engine = engine
        silence_ms = engine.settings.speculative_silence_ms
        self._speculate_after = max(1, silence_ms // 20) if silence_ms else 0
        self._prompt = engine.prompt_tokens(hints)
        self._speculation: tuple[int, Future[Decoded]] | None = None

    def _on_reset(self, hints: Sequence[str]) -> None:
        self._prompt = self.engine.prompt_tokens(hints)
        self._cancel_speculation()

    def _on_start(self) -> None:
        self._cancel_speculation()

    def _on_silence(self) -> None:
        if not self._speculate_after or self.endpointer.trailing_silence_frames < self._speculate_after:
            return
        if self._speculation and self._speculation[0] == self._voiced_frames:
            return  # already decoding exactly this audio
        self._cancel_speculation()
        self._speculation = (self._voiced_frames, self.engine.submit(self.speech_audio(), self._prompt))

    def _words_complete(self) -> bool:
        current = self._current_speculation()
        if current is None or not current.done():
            return False
        decoded = current.result()
        return self.engine.is_speech(decoded) and looks_complete(decoded.text)

    def _decode(self) -> tuple[str, float] | None:
        future = self._current_speculation()
        if future is None:
            self._cancel_speculation()
            future = self.engine.submit(self.speech_audio(), self._prompt)
        decoded = future.result()
        self._speculation = None
        return (decoded.text, decoded.confidence) if self.engine.is_speech(decoded) else None

    def close(self) -> None:
        self._cancel_speculation()

    def _current_speculation(self) -> Future[Decoded] | None:
        if self._speculation and self._speculation[0] == self._voiced_frames:
            return self._speculation[1]
        return None

    def _cancel_speculation(self) -> None:
        if self._speculation:
            self._speculation[1].cancel()
            self._speculation = None


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
