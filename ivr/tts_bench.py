"""``hotline bench tts``: is the voice understood on the phone, fast enough, small enough?

- ``cer_alaw``: the bot's own prompts, rendered as a call hears them (levelled to -3
  dBFS, 8 kHz, A-law round trip), recognised by the project's recogniser (Whisper base,
  asr/), character error rate against the text. Digits on both sides are compared as
  the characters a person says (幺 = 一 = 1): reading 12345 digit by digit is right.
- ``rtf``: CPU seconds per second of audio, one synthesis at a time (the local voice
  runs on one thread; espeak-ng's child process is counted).
- ``first_audio_ms_p50/p95``: N read-backs start at once; the time until each one's
  first audio is ready (what a caller waits for after their turn ends).
- ``rss_mb``: resident memory of this process with the engine loaded and N syntheses
  done, measured before the recogniser is loaded (its memory is not the voice's).
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import psutil

from hotline.audio import alaw_decode, alaw_encode, resample
from ivr.tts import TtsEngine, trim_and_level

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
    cer_alaw: float
    rtf: float
    first_audio_ms_p50: float
    first_audio_ms_p95: float
    rss_mb: float

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


def first_audio_ms(engine: TtsEngine, concurrency: int) -> list[float]:
    """Wall milliseconds until each of ``concurrency`` simultaneous read-backs has its
    first piece of audio; each then renders to its end, as on a call."""
    texts = readbacks(concurrency)
    start = threading.Barrier(concurrency + 1)
    waits: list[float] = [0.0] * concurrency

    def one(slot: int) -> None:
        start.wait()
        t0 = time.perf_counter()
        pieces = engine.stream(texts[slot])
        next(pieces)
        waits[slot] = (time.perf_counter() - t0) * 1000
        for _ in pieces:
            pass

    threads = [threading.Thread(target=one, args=(k,)) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    return waits


def run_tts_bench(
    engine: TtsEngine,
    prompts: list[str],
    load_recogniser: Callable[[], Callable[[bytes], str]] | None,
    concurrency: int,
    runs: int = 3,
) -> TtsBenchResult:
    """Medians over ``runs``; the CER once (every engine here is deterministic)."""
    texts = prompts[:BENCH_PROMPTS]
    engine.synthesize(texts[0])  # loaded and warm, as a running controller is
    rtfs, p50s, p95s = [], [], []
    for _ in range(runs):
        rtfs.append(real_time_factor(engine, texts))
        waits = first_audio_ms(engine, concurrency)
        p50s.append(float(np.percentile(waits, 50)))
        p95s.append(float(np.percentile(waits, 95)))
    rss = psutil.Process(os.getpid()).memory_info().rss / 2**20
    error = intelligibility(engine, texts, load_recogniser()) if load_recogniser else float("nan")
    return TtsBenchResult(engine.name, round(error, 4), round(statistics.median(rtfs), 4),
                          round(statistics.median(p50s), 1), round(statistics.median(p95s), 1),
                          round(rss, 1))  # fmt: skip
