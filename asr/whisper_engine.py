"""Whisper through CTranslate2 (faster-whisper's model, our own decode call).

Why not ``WhisperModel.transcribe``: it pads every input to 30 s of features, so a 3 s
utterance costs as much encoder time as 30 s (about 1.5 s on one core for the base
model). CTranslate2 accepts shorter inputs, so we encode the utterance padded with
silence to ``min_window_s`` (5 s by default; always at least a 1 s tail, without which
the decoder tends to repeat itself): a typical utterance costs 3-5 times less, for a
small loss of accuracy against the full window. We also decode *speculatively*: once the
caller has been silent for ``speculative_silence_ms`` the utterance is decoded in the
background, so the final is usually ready the moment the endpointer confirms the end.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import opencc
from rapidfuzz.distance import Levenshtein

from asr.base import Alternative, AsrError, Heard, Recognizer, SpeechEngine
from asr.models import install_whisper_base
from asr.recognizer import VadRecognizer, looks_complete
from asr.whisper_vocab import VocabularyMap, mandarin_model
from hotline.settings import EndpointingSettings, WhisperSettings

TAIL_PAD_S = 1.0  # the least silence appended before encoding; see the module docstring
SAMPLE_RATE = 16000
BASE_PROMPT = "以下是普通话的句子。"
# Below this the caller almost certainly said nothing (cough, line noise).
NO_SPEECH_PROB = 0.6


@dataclass(frozen=True, slots=True)
class WhisperPrompt:
    text: str
    tokens: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    confidence: float
    no_speech_prob: float
    alternatives: tuple[Alternative, ...] = ()  # the beam's n-best, best first


class WhisperEngine(SpeechEngine):
    name = "whisper"

    def __init__(
        self, settings: WhisperSettings, endpointing: EndpointingSettings, models_dir: Path
    ) -> None:
        from faster_whisper import WhisperModel  # heavy import: only when the engine is used

        model_dir = Path(settings.model_dir or install_whisper_base(models_dir))
        if not (model_dir / "model.bin").is_file():
            raise AsrError(
                f"{model_dir} is not a CTranslate2 Whisper model directory (no model.bin)"
            )
        self._vocab: VocabularyMap | None = None
        if settings.vocabulary == "mandarin" and settings.language == "zh":
            model_dir = mandarin_model(model_dir, models_dir)
            self._vocab = VocabularyMap.load(model_dir)
        workers = settings.parallel_decodes or _cpu_count()
        self.settings = settings
        self.endpointing = endpointing
        before = _thread_ids()
        self._model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type=settings.compute_type,
            cpu_threads=settings.threads_per_decode,
            num_workers=workers,
        )
        _lower_priority(_thread_ids() - before, settings.decode_nice)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper")
        self._workers = workers
        self._inflight = 0  # decodes queued or running, across all calls
        self._inflight_lock = threading.Lock()
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
        self.no_prompt = WhisperPrompt("", tuple(self._model_ids(self._task)))

    def recognizer(self, hints: Sequence[str] = (), realtime: bool = True) -> Recognizer:
        return WhisperRecognizer(self, hints, realtime)

    def prompt(self, hints: Sequence[str]) -> WhisperPrompt:
        """Previous-text prompt: steers towards simplified Chinese and the hinted words."""
        text = BASE_PROMPT
        chosen = _within(hints, self.settings.hint_prompt_chars)
        if chosen:
            text = BASE_PROMPT + "关键词：" + "、".join(chosen)
        previous = self._tokenizer.encode(text, add_special_tokens=False).ids
        return WhisperPrompt(text, tuple(self._model_ids([self._sot_prev, *previous, *self._task])))

    def _model_ids(self, token_ids: list[int]) -> list[int]:
        return self._vocab.to_model(token_ids) if self._vocab else token_ids

    def _tokenizer_ids(self, model_ids: list[int]) -> list[int]:
        return self._vocab.to_tokenizer(model_ids) if self._vocab else model_ids

    def submit(self, pcm: bytes, prompt: WhisperPrompt) -> Future[Decoded]:
        with self._inflight_lock:
            self._inflight += 1
        future = self._executor.submit(self.decode_checked, pcm, prompt)
        future.add_done_callback(self._decode_done)
        return future

    def has_idle_worker(self) -> bool:
        """True when a decode submitted now would start at once (no call waits for it)."""
        with self._inflight_lock:
            return self._inflight < self._workers

    def _decode_done(self, _future: Future[Decoded]) -> None:
        with self._inflight_lock:
            self._inflight -= 1

    def decode_checked(self, pcm: bytes, prompt: WhisperPrompt) -> Decoded:
        """Decode; if the result echoes the prompt (a known Whisper failure on hard audio),
        decode again without it and keep that."""
        decoded = self.decode(pcm, prompt)
        if prompt.text and _echoes(decoded.text, prompt.text):
            decoded = self.decode(pcm, self.no_prompt)
        return decoded

    def decode(self, pcm: bytes, prompt: WhisperPrompt) -> Decoded:
        """Recognise one utterance of 16 kHz 16-bit PCM (runs in a worker thread)."""
        import ctranslate2

        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        # Pad with silence to at least min_window_s: Whisper saw 30 s windows in training
        # and transcribes very short windows worse (measured: CER 0.22 with a 2 s tail,
        # 0.19 with an 8 s window, 0.19 with the full 30 s at three times the cost).
        seconds_in = len(audio) / SAMPLE_RATE
        pad_s = max(TAIL_PAD_S, self.settings.min_window_s - seconds_in)
        audio = np.concatenate([audio, np.zeros(int(pad_s * SAMPLE_RATE), np.float32)])
        features = self._model.feature_extractor(audio, padding=0)
        frames = features.shape[-1] // 2 * 2  # the encoder halves the frame count
        features = np.ascontiguousarray(features[None, :, :frames], dtype=np.float32)
        seconds = len(pcm) / 2 / SAMPLE_RATE
        result = self._model.model.generate(
            ctranslate2.StorageView.from_array(features),
            [list(prompt.tokens)],
            beam_size=self.settings.beam_size,
            max_length=min(448, len(prompt.tokens) + 10 + int(seconds * 16)),
            return_scores=True,
            return_no_speech_prob=True,
            no_repeat_ngram_size=4,  # stops "我说我说我说..." loops on short noisy cuts
            # The beam holds these hypotheses anyway: handing them on is free, and a
            # homophone in the first is often the right word in the second (底宝/低保).
            num_hypotheses=min(self.settings.n_best, self.settings.beam_size),
        )[0]
        alternatives: dict[str, Alternative] = {}
        for ids, score in zip(result.sequences_ids, result.scores or [], strict=False):
            text = self._text(ids)
            key = _PUNCTUATION.sub("", text)  # "……吗。" and "……吗?" are one hypothesis
            if key and key not in alternatives:
                alternatives[key] = Alternative(text, round(float(score), 4))
        text = self._text(result.sequences_ids[0])
        confidence = math.exp(result.scores[0]) if result.scores else 0.0
        return Decoded(
            text, min(1.0, confidence), result.no_speech_prob, tuple(alternatives.values())
        )

    def _text(self, model_ids: list[int]) -> str:
        tokens = [t for t in self._tokenizer_ids(model_ids) if t < self._eot]
        return collapse_repeats(self._to_simplified.convert(self._tokenizer.decode(tokens)).strip())

    def is_speech(self, decoded: Decoded) -> bool:
        """Reject silence, noise and the decoder echoing its own prompt."""
        if not decoded.text:
            return False
        return not (decoded.no_speech_prob > NO_SPEECH_PROB and decoded.confidence < 0.5)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class WhisperRecognizer(VadRecognizer):
    """VAD-cut utterances, each decoded whole; finals only (Whisper has no partials)."""

    def __init__(self, engine: WhisperEngine, hints: Sequence[str], realtime: bool = True) -> None:
        super().__init__(engine.endpointing, hints)
        self.engine = engine
        self.realtime = realtime
        self._speculate_after = _frames(engine.settings.speculative_silence_ms)
        self._speculate_early = _frames(engine.settings.early_speculative_silence_ms)
        self._prompt = engine.prompt(hints)
        self._speculation: tuple[int, Future[Decoded]] | None = None

    def _on_reset(self, hints: Sequence[str]) -> None:
        self._prompt = self.engine.prompt(hints)
        self._cancel_speculation()

    def _on_start(self) -> None:
        self._cancel_speculation()

    def _on_silence(self) -> None:
        if not self._speculation_due():
            return
        if self._speculation and self._speculation[0] == self._voiced_frames:
            return  # already decoding exactly this audio
        self._cancel_speculation()
        self._speculation = (
            self._voiced_frames,
            self.engine.submit(self.speech_audio(), self._prompt),
        )

    def _speculation_due(self) -> bool:
        """Decode once the caller has been silent a while; sooner when a worker is idle.

        A decode costs 300-450 ms of one core, so a final that starts only when the turn
        ends would be that late. Starting at the first short pause wastes the decode when
        the caller goes on, which is why the early start only takes an idle worker.
        """
        silent = self.endpointer.trailing_silence_frames
        if self._speculate_after and silent >= self._speculate_after:
            return True
        return bool(
            self._speculate_early
            and silent >= self._speculate_early
            and self.engine.has_idle_worker()
        )

    def _words_complete(self) -> bool:
        """The turn ends early only on a finished decode whose words look complete.

        While the decode of this audio still runs the turn stays open: the final could not
        come sooner anyway (it waits for that decode), and a caller who goes on meanwhile
        keeps the turn instead of being cut at a pause. ``max_end_silence_ms`` ends it in
        any case.
        """
        current = self._current_speculation()
        if current is None:
            return True  # nothing decoding (speculation off): end, the final decodes now
        if self.realtime and not current.done():
            return False
        decoded = current.result()
        return not self.engine.is_speech(decoded) or looks_complete(decoded.text)

    def _decode(self) -> Heard | None:
        future = self._current_speculation()
        if future is None:
            self._cancel_speculation()
            future = self.engine.submit(self.speech_audio(), self._prompt)
        decoded = future.result()
        self._speculation = None
        if not self.engine.is_speech(decoded):
            return None
        return Heard(decoded.text, decoded.confidence, decoded.alternatives)

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


_PUNCTUATION = re.compile(r"[\s\W_]+")
_CLAUSE = re.compile(r"[^。！？!?，,；;]+[。！？!?，,；;]?")


def collapse_repeats(text: str) -> str:
    """Drop a clause that repeats the one before it (Whisper sometimes says a sentence twice:
    "孩子刚生下来怎么上户口？孩子刚生下来怎么伤户口")."""
    kept: list[str] = []
    for clause in _CLAUSE.findall(text):
        core = clause.strip(" 。！？!?，,；;")
        previous = kept[-1].strip(" 。！？!?，,；;") if kept else ""
        if previous and len(core) >= 4 and Levenshtein.normalized_similarity(core, previous) >= 0.7:
            continue
        kept.append(clause)
    return "".join(kept).strip()


def _frames(silence_ms: int) -> int:
    """20 ms frames of silence (at least one); 0 ms means never."""
    return max(1, silence_ms // 20) if silence_ms else 0


def _within(hints: Sequence[str], budget: int) -> list[str]:
    """The leading hints whose characters fit the budget, never half a word."""
    chosen: list[str] = []
    for hint in hints:
        budget -= len(hint)
        if budget < 0:
            break
        chosen.append(hint)
    return chosen


def _echoes(text: str, prompt_text: str, span: int = 4) -> bool:
    """True when ``text`` repeats any ``span``-character run of the prompt."""
    runs = {prompt_text[i : i + span] for i in range(len(prompt_text) - span + 1)}
    return any(text[i : i + span] in runs for i in range(len(text) - span + 1))


def _thread_ids() -> set[int]:
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:  # not Linux
        return set()


def _lower_priority(thread_ids: set[int], nice: int) -> None:
    """Run CTranslate2's own decode threads at a lower CPU priority.

    On a full machine the real-time media clock waits for the GIL, and the Python thread
    holding it waits for a CPU behind the decode threads (priority inversion: measured
    ticks up to 180 ms late at 40 calls). Decode threads hold no GIL, so making them
    yield the CPU to every Python thread costs recognition only the CPU those threads
    use. Only threads CTranslate2 created are touched (raising nice needs no privilege).
    """
    if not nice:
        return
    for tid in thread_ids:
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))


def _cpu_count() -> int:
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
