"""Prompts: text rendered to 8 kHz audio ahead of time, cached on disk by content hash.

Order of preference for a prompt: a WAV a manager recorded (``<prompts_dir>/<id>.wav``)
always wins; else the cache (``<cache>/<sha256>.wav`` plus a JSON sidecar naming the
engine and voice); else render with the configured engine. Rendering happens at
start-up and between calls (``prerender``), never while a caller waits, except for a
knowledge-base answer seen for the first time, which renders once and is cached.

Engines: edge-tts (zh-CN neural voice) when the network allows, else espeak-ng offline.
Measured here: Debian's espeak-ng voice ``cmn`` reads tone digits in English and is
unusable for Mandarin; ``cmn-latn-pinyin`` fed with tone-numbered pinyin (pypinyin) is
intelligible only in part. It is the offline fallback, not the goal: record the fixed
prompts (greeting, menu, survey) and deploy edge-tts where a network exists.

Dynamic parts (ticket numbers, dates) are spoken from pre-rendered pieces (digits,
"年", "月", "日" ...) joined at run time, so a call never waits on a renderer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np

from hotline.audio import read_wav, write_wav

log = logging.getLogger(__name__)

RATE = 8000
GAP = b"\x00\x00" * int(RATE * 0.08)  # 80 ms between joined pieces
DIGITS = "零一二三四五六七八九"
PIECES = [*DIGITS, "十", "幺", "年", "月", "日", "号", "点", "您的工单号是", "工单号"]


class PromptError(Exception):
    """A prompt cannot be rendered (no engine works); the message says what to install."""


@dataclass(frozen=True, slots=True)
class Prompt:
    pcm: bytes  # 8 kHz 16-bit mono
    source: str  # recorded | cache | rendered | joined
    engine: str
    voice: str

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE


class TtsEngine(Protocol):
    name: str
    voice: str
    local: bool  # renders on this machine; only a local engine hears a caller's words

    def available(self) -> bool: ...

    def render(self, text: str, out_wav: Path) -> None: ...


class EspeakEngine:
    """espeak-ng, offline. Chinese text is turned into tone-numbered pinyin first."""

    name = "espeak-ng"
    local = True

    def __init__(self, voice: str = "cmn-latn-pinyin") -> None:
        self.voice = voice

    def available(self) -> bool:
        return shutil.which("espeak-ng") is not None

    def render(self, text: str, out_wav: Path) -> None:
        spoken = to_pinyin(text) if "pinyin" in self.voice else text
        result = subprocess.run(
            ["espeak-ng", "-v", self.voice, "-s", "150", "-w", str(out_wav), spoken],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if result.returncode != 0 or not out_wav.exists():
            raise PromptError(f"espeak-ng failed for voice {self.voice}: {result.stderr.strip()}")


class EdgeTtsEngine:
    """Microsoft's neural voices through the edge-tts package; needs the network."""

    name = "edge-tts"
    local = False  # Microsoft's cloud: never for text that may hold a caller's words

    def __init__(self, voice: str = "zh-CN-XiaoxiaoNeural", timeout_s: float = 8.0) -> None:
        self.voice = voice
        self.timeout_s = timeout_s
        self._reachable: bool | None = None

    def available(self) -> bool:
        if self._reachable is None:
            self._reachable = self._probe()
        return self._reachable

    def _probe(self) -> bool:
        try:
            import edge_tts  # noqa: F401
        except ImportError:
            return False
        import socket

        try:
            with socket.create_connection(("speech.platform.bing.com", 443), timeout=2):
                return True
        except OSError:
            return False

    def render(self, text: str, out_wav: Path) -> None:
        import edge_tts

        with tempfile.TemporaryDirectory() as tmp:
            mp3 = Path(tmp) / "out.mp3"
            communicate = edge_tts.Communicate(text, self.voice)
            asyncio.run(asyncio.wait_for(communicate.save(str(mp3)), self.timeout_s))
            result = subprocess.run(["sox", str(mp3), "-r", "8000", "-c", "1", "-b", "16",
                                     str(out_wav)], capture_output=True, text=True)  # fmt: skip
            if result.returncode != 0:
                raise PromptError(f"sox cannot convert edge-tts output: {result.stderr.strip()}")


SLOW_TEMPO = 0.8  # a repeated prompt plays at 80 % speed: slower, still natural


def stretch(pcm: bytes, tempo: float) -> bytes:
    """16-bit mono PCM at RATE played at ``tempo`` speed with its pitch kept. sox's
    WSOLA ``tempo`` effect does it well; without sox the prompt plays at normal speed."""
    if shutil.which("sox") is None:
        log.warning("sox is not installed: a slow repeat plays at normal speed")
        return pcm
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        write_wav(source, pcm, RATE)
        result = subprocess.run(["sox", str(source), str(target), "tempo", "-s", str(tempo)],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        if result.returncode != 0:
            log.warning("sox tempo failed (%s): a slow repeat plays at normal speed",
                        result.stderr.strip()[:200])  # fmt: skip
            return pcm
        stretched, _ = read_wav(target, target_rate=RATE)
    return stretched


def _write_atomically(wav: Path, pcm: bytes) -> None:
    """A cache file is whole or absent: a reader never sees half a prompt."""
    tmp_wav = wav.with_suffix(".tmp")
    write_wav(tmp_wav, pcm, RATE)
    tmp_wav.replace(wav)


def to_pinyin(text: str) -> str:
    """Chinese -> 'ni3 hao3' (tone digits), what espeak-ng's cmn-latn-pinyin voice reads."""
    from pypinyin import Style, lazy_pinyin

    text = re.sub(r"\d", lambda m: DIGITS[int(m.group())], text)
    words = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)
    return " ".join(w.strip() for w in words if w.strip())


def content_key(engine: str, voice: str, text: str) -> str:
    return hashlib.sha256(f"{engine}\n{voice}\n{text}".encode()).hexdigest()[:32]


class PromptLibrary:
    def __init__(self, recorded_dir: Path, cache_dir: Path, engines: list[TtsEngine]) -> None:
        self.recorded_dir = recorded_dir
        self.cache_dir = cache_dir
        self.engines = engines
        self._memory: dict[str, Prompt] = {}
        self._lock = threading.Lock()
        # Texts known before any call (prompts, menus, answers: ``prerender``). Any other
        # text may hold a caller's words (a read-back of their complaint, address, name):
        # it is rendered by a local engine only, and kept neither on disk nor in memory.
        self._public: set[str] = set()
        cache_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, ivr: object, data_dir: Path) -> PromptLibrary:
        engine = getattr(ivr, "tts_engine", "auto")
        engines: list[TtsEngine] = []
        if engine in ("auto", "edge"):
            engines.append(EdgeTtsEngine(getattr(ivr, "edge_voice", "zh-CN-XiaoxiaoNeural")))
        if engine in ("auto", "espeak"):
            engines.append(EspeakEngine(getattr(ivr, "espeak_voice", "cmn-latn-pinyin")))
        return cls(Path(getattr(ivr, "prompts_dir", "prompts")), data_dir / "prompt-cache", engines)

    def _engine(self, local_only: bool = False) -> TtsEngine:
        for engine in self.engines:
            if (engine.local or not local_only) and engine.available():
                return engine
        if local_only:
            raise PromptError("no local text-to-speech engine for a caller's words: install "
                              "espeak-ng (apt); they are never sent to a cloud voice")  # fmt: skip
        raise PromptError("no text-to-speech engine works: install espeak-ng (apt) or edge-tts")

    def get(self, text: str, prompt_id: str | None = None, slow: bool = False) -> Prompt:
        """The audio for a prompt: recorded > cached > rendered now (then cached).
        ``slow``: the same words stretched in time, same pitch, for a caller who asked
        「慢一点」「再说一遍」."""
        if slow:
            normal = self.get(text, prompt_id)
            if text not in self._public and normal.source != "recorded":
                return Prompt(stretch(normal.pcm, SLOW_TEMPO), normal.source, normal.engine,
                              normal.voice)  # fmt: skip
            return self._slowed(normal, text)
        if prompt_id:
            recorded = self.recorded_dir / f"{prompt_id}.wav"
            if recorded.is_file():
                pcm, _ = read_wav(recorded, target_rate=RATE)
                return Prompt(pcm, "recorded", "recording", str(recorded.name))
        if text not in self._public:
            return self._private(text)
        engine = self._engine()
        key = content_key(engine.name, engine.voice, text)
        return self._memoised(key, lambda: self._cached_or_rendered(engine, text, key))

    def _cached_or_rendered(self, engine: TtsEngine, text: str, key: str) -> Prompt:
        wav = self.cache_dir / f"{key}.wav"
        if wav.is_file():
            pcm, _ = read_wav(wav, target_rate=RATE)
            return Prompt(pcm, "cache", engine.name, engine.voice)
        return self._render(engine, text, wav, key)

    def _slowed(self, prompt: Prompt, text: str) -> Prompt:
        key = "slow-" + content_key(prompt.engine, prompt.voice, text)

        def load() -> Prompt:
            wav = self.cache_dir / f"{key}.wav"
            if wav.is_file():
                pcm, _ = read_wav(wav, target_rate=RATE)
            else:
                pcm = stretch(prompt.pcm, SLOW_TEMPO)
                _write_atomically(wav, pcm)
            return Prompt(pcm, prompt.source, prompt.engine, prompt.voice)

        return self._memoised(key, load)

    def _memoised(self, key: str, load: Callable[[], Prompt]) -> Prompt:
        """The prompt kept in memory under ``key``, loaded once (outside the lock: a
        render takes seconds)."""
        with self._lock:
            if key in self._memory:
                return self._memory[key]
        prompt = load()
        with self._lock:
            self._memory[key] = prompt
        return prompt

    def _render(self, engine: TtsEngine, text: str, wav: Path, key: str) -> Prompt:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "tts.wav"
            engine.render(text, raw)
            pcm, _ = read_wav(raw, target_rate=RATE)
        pcm = _trim_and_level(pcm)
        _write_atomically(wav, pcm)
        sidecar = {"text": text, "engine": engine.name, "voice": engine.voice, "key": key}
        wav.with_suffix(".json").write_text(json.dumps(sidecar, ensure_ascii=False, indent=1))
        return Prompt(pcm, "rendered", engine.name, engine.voice)

    def _private(self, text: str) -> Prompt:
        """Text that may hold a caller's words: a local engine, nothing kept."""
        engine = self._engine(local_only=True)
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "tts.wav"
            engine.render(text, raw)
            pcm, _ = read_wav(raw, target_rate=RATE)
        return Prompt(_trim_and_level(pcm), "rendered", engine.name, engine.voice)

    def prerender(self, texts: Iterable[str]) -> int:
        """Render everything a call may need (menus, pieces) before calls arrive; these
        texts, and only these, may use a cloud voice and the disk cache."""
        count = 0
        for text in [*PIECES, *texts]:
            self.render_public(text)
            count += 1
        return count

    def render_public(self, text: str) -> Prompt:
        """A text known before any call (a prompt a manager wrote, a knowledge-base
        answer): any engine, cached on disk."""
        self._public.add(text)
        return self.get(text)

    # ---- dynamic parts ----
    def join(self, pieces: Iterable[str]) -> Prompt:
        parts = [self.get(p).pcm for p in pieces]
        pcm = GAP.join(parts)
        engine = self.engines[0] if self.engines else None
        return Prompt(pcm, "joined", engine.name if engine else "", engine.voice if engine else "")

    def ticket_number(self, number: str) -> Prompt:
        """'您的工单号是' + each digit ('1' read as 幺, as Chinese operators read numbers)."""
        return self.join(["您的工单号是", *spoken_digits(number)])

    def with_ticket_number(self, wording: str, number: str) -> Prompt:
        """A prompt with ``{ticket_no}`` (``ticket_created_night``): its fixed parts as
        written (prerendered, see ivr.wiring.bot_prompt_texts), the number digit by digit."""
        head, _, tail = wording.partition(TICKET_NO)
        pieces = [head, *spoken_digits(number), tail]
        return self.join(p for p in pieces if p.strip())

    def spoken_date(self, day: date) -> Prompt:
        return self.join([*(DIGITS[int(c)] for c in str(day.year)), "年",
                          *_cardinal(day.month), "月", *_cardinal(day.day), "日"])  # fmt: skip


TICKET_NO = "{ticket_no}"


def spoken_digits(number: str) -> list[str]:
    return ["幺" if ch == "1" else DIGITS[int(ch)] for ch in number if ch.isdigit()]


def _cardinal(n: int) -> list[str]:
    """1..31 as spoken pieces: 十, 十一, 二十三 ..."""
    if n < 10:
        return [DIGITS[n]]
    tens, ones = divmod(n, 10)
    out = ([] if tens == 1 else [DIGITS[tens]]) + ["十"]
    return out + ([DIGITS[ones]] if ones else [])


def _trim_and_level(pcm: bytes) -> bytes:
    """Cut leading/trailing silence (prompts start at once) and normalise to -3 dBFS peak."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    if not samples.size:
        return pcm
    loud = np.nonzero(np.abs(samples) > 300)[0]
    if loud.size:
        samples = samples[max(0, loud[0] - 80) : loud[-1] + 400]
    peak = float(np.max(np.abs(samples))) or 1.0
    return (samples * (23000.0 / peak)).clip(-32768, 32767).astype("<i2").tobytes()
