"""``hotline bench tts``: is the voice understood on the phone, fast enough, small enough?

- ``cer_alaw``: the bot's own prompts, rendered as a call hears them (levelled to -3
  dBFS, 8 kHz, A-law round trip), recognised by the project's recogniser (Whisper base,
  asr/), character error rate against the text. Digits on both sides are compared as
  the characters a person says (幺 = 一 = 1): reading 12345 digit by digit is right.
- ``rtf``: CPU seconds per second of audio, one synthesis at a time (the local voice
  runs on one thread; espeak-ng's child process is counted).
- ``first_audio_ms_p50/p95``: N read-backs start at once, rendered as a call renders
  them (ivr.prompts ``stream``: the template's lead-in "我复述一下：" prerendered at
  start, the caller's part synthesised clause by clause): the time until each one's
  first audio is ready, what a caller waits for after their turn ends.
  ``synth_first_audio_ms_*``: the same without the prerendered lead-in, the engine's
  own first audio. ``stall_ms_p95``: how long playback would stand still inside a
  read-back waiting for its next piece (0: rendering keeps ahead of the caller).
- ``rss_mb``: resident memory the voice adds to a process: after loading it and N
  syntheses at once, minus before (the recogniser, loaded later for the CER, and the
  bot's data loaded for the prompts are not the voice's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from hotline.audio import alaw_decode, alaw_encode, resample
from voice.tts import TtsEngine, trim_and_level

BENCH_PROMPTS = 26  # as many as issue 17's measurement of espeak-ng
# Read-backs as the bot says them (bot/data/prompts.yaml, readback), caller-like content.
READBACK_SUMMARIES = [
    "幸福路三号楼下水管破裂，要求尽快维修；联系人王先生，回电号码1 3 9 0 7 5 5 1 2 3 4",
    "阳光花园小区门口饭店油烟扰民，要求整改；联系人李女士",
    "人民路和解放路路口红绿灯坏了，要求维修",
    "公司拖欠三个月工资，要求帮助追讨；联系人张先生，回电号码1 8 6 0 0 0 1 2 3 4 5",
    "东湖街道夜间施工噪音扰民，要求停止夜间施工",
]
READBACK_TEMPLATE = "我复述一下：{summary}。请问对吗？对的话请说对，需要更正请直接说更正的内容。"


@dataclass(frozen=True, slots=True)
class TtsBenchResult:
    engine: str
    cer_alaw: float | None  # None: --no-cer
    rtf: float
    first_audio_ms_p50: float
    first_audio_ms_p95: float
    rss_mb: float
    # The read-back's own synthesis (no prerendered lead-in): the engine's first audio.
    synth_first_audio_ms_p50: float
    synth_first_audio_ms_p95: float
    stall_ms_p95: float  # silence inside a read-back while its next piece renders

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SPOKEN = str.maketrans({"幺": "一", **{str(d): "零一二三四五六七八九"[d] for d in range(10)}})


def spoken(text: str) -> str:
    return text.translate(SPOKEN)


def telephone(pcm8k: bytes) -> bytes:
    """What the recogniser hears of a prompt: A-law round trip, then 16 kHz."""
    return resample(alaw_decode(alaw_encode(pcm8k)), 8000, 16000)


def readbacks(count: int) -> list[str]:
    return [READBACK_TEMPLATE.format(summary=READBACK_SUMMARIES[i % len(READBACK_SUMMARIES)])
            for i in range(count)]  # fmt: skip


def intelligibility(
    engine: TtsEngine, texts: list[str], recognise: Callable[[bytes], str]
) -> float:
    from asr.textnorm import cer

    pairs = []
    for text in texts:
        heard = recognise(telephone(trim_and_level(engine.synthesize(text))))
        pairs.append((spoken(text), spoken(heard)))
    return cer(pairs)


def _cpu_s() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def real_time_factor(engine: TtsEngine, texts: list[str]) -> float:
    cpu0 = _cpu_s()
    audio_s = sum(len(engine.synthesize(t)) / 2 / 8000 for t in texts)
    return (_cpu_s() - cpu0) / audio_s if audio_s else 0.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One read-back as a caller gets it: when its first audio was ready, and how long
    playback would have stood still waiting for later pieces."""

    first_ms: float
    stall_ms: float


def deliveries(stream: Callable[[str], Iterator[bytes]], concurrency: int) -> list[Delivery]:
    """``concurrency`` read-backs started at the same instant, each rendered to its end.
    Playback starts with the first piece; each later piece plays when both it is ready
    and the one before has ended; the waits between are stalls."""
    texts = readbacks(concurrency)
    start = threading.Barrier(concurrency + 1)
    results: list[Delivery] = [Delivery(0.0, 0.0)] * concurrency

    def one(slot: int) -> None:
        start.wait()
        t0 = time.perf_counter()
        first = None
        plays_until = stall = 0.0
        for pcm in stream(texts[slot]):
            ready = time.perf_counter() - t0
            if first is None:
                first = plays_until = ready
            stall += max(0.0, ready - plays_until)
            plays_until = max(plays_until, ready) + len(pcm) / 2 / 8000
        results[slot] = Delivery((first or 0.0) * 1000, stall * 1000)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    return results


def library_stream(engine: TtsEngine, cache: Path) -> Callable[[str], Iterator[bytes]]:
    """Read-backs the way a call renders them (ivr.prompts.PromptLibrary.stream): the
    template's fixed lead-in and question prerendered, the caller's part streamed."""
    from ivr.wiring import template_parts
    from voice.prompts import PromptLibrary

    library = PromptLibrary(cache / "recorded", cache / "prompt-cache", [engine])
    library.prerender(template_parts(READBACK_TEMPLATE))
    return lambda text: (p.pcm for p in library.stream(text))


def run_tts_bench(
    engine: TtsEngine,
    prompts: list[str],
    load_recogniser: Callable[[], Callable[[bytes], str]] | None,
    concurrency: int,
    runs: int = 3,
) -> TtsBenchResult:
    """Medians over ``runs``; the CER once (every engine here is deterministic)."""
    texts = prompts[:BENCH_PROMPTS]
    process = psutil.Process(os.getpid())
    before = process.memory_info().rss
    engine.synthesize(texts[0])  # loaded and warm, as a running controller is
    rtfs: list[float] = []
    runs_of: dict[str, list[float]] = {k: [] for k in ("p50", "p95", "synth50", "synth95", "stall")}
    with tempfile.TemporaryDirectory() as tmp:
        as_a_call = library_stream(engine, Path(tmp))
        for _ in range(runs):
            rtfs.append(real_time_factor(engine, texts))
            calls = deliveries(as_a_call, concurrency)
            runs_of["p50"].append(_pct([d.first_ms for d in calls], 50))
            runs_of["p95"].append(_pct([d.first_ms for d in calls], 95))
            runs_of["stall"].append(_pct([d.stall_ms for d in calls], 95))
            bare = deliveries(engine.stream, concurrency)
            runs_of["synth50"].append(_pct([d.first_ms for d in bare], 50))
            runs_of["synth95"].append(_pct([d.first_ms for d in bare], 95))
    median = {k: round(statistics.median(v), 1) for k, v in runs_of.items()}
    rss = (process.memory_info().rss - before) / 2**20
    error = intelligibility(engine, texts, load_recogniser()) if load_recogniser else None
    cer_alaw = None if error is None else round(error, 4)
    return TtsBenchResult(engine.name, cer_alaw, round(statistics.median(rtfs), 4),
                          median["p50"], median["p95"], round(rss, 1), median["synth50"],
                          median["synth95"], median["stall"])  # fmt: skip


def _pct(values: list[float], q: int) -> float:
    return float(np.percentile(values, q))


def register(commands: Any, bench: Any) -> None:
    from voice.cli import ENGINES

    tts = bench.add_parser("tts", help="voice intelligibility, speed, first audio, memory (JSON)")
    tts.add_argument("--engine", choices=ENGINES, default="local")
    tts.add_argument("--concurrency", type=int, default=20, help="read-backs started at once")
    tts.add_argument("--runs", type=int, default=3, help="timing runs (medians)")
    tts.add_argument("--no-cer", action="store_true", help="skip the recogniser (no Whisper)")
    tts.add_argument("--json", action="store_true", help="print JSON (the only output form)")
    tts.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from hotline.cli import CommandError
    from hotline.settings import load_settings
    from ivr.wiring import bot_prompt_texts, load_brain, load_speech
    from voice.cli import engine_named

    if args.concurrency < 1 or args.runs < 1:
        raise CommandError("--concurrency and --runs must be at least 1")
    settings = load_settings()
    engine = engine_named(args.engine, settings)
    prompts = bot_prompt_texts(load_brain(settings))

    def load_recogniser() -> Callable[[bytes], str]:
        whisper = load_speech(settings, "whisper")
        return lambda pcm: whisper.decode(pcm, whisper.no_prompt).text  # type: ignore[attr-defined]

    result = run_tts_bench(engine, prompts, None if args.no_cer else load_recogniser,
                           args.concurrency, args.runs)  # fmt: skip
    print(json.dumps(result.as_dict(), ensure_ascii=False))
    return 0
