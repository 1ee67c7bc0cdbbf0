"""``hotline asr bench``: accuracy, speed and memory of an engine on a folder of clips.

Each clip goes through the path a call takes: 16 kHz -> 8 kHz -> G.711 (A-law, mu-law)
-> 8 kHz -> 16 kHz in 20 ms frames with stream resamplers, then into a recogniser.
"""

from __future__ import annotations

import csv
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from asr.base import AsrError, SpeechEngine, Transcript
from asr.textnorm import cer
from hotline.audio import (
    StreamResampler,
    alaw_decode,
    alaw_encode,
    iter_frames,
    read_wav,
    ulaw_decode,
    ulaw_encode,
)

TRAILING_SILENCE_S = 1.5  # lets the endpointer end each clip by silence, as on a call
FRAME_16K = 640


@dataclass
class Clip:
    name: str
    text: str
    pcm: bytes  # 16 kHz 16-bit mono

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 32000


def load_clips(folder: Path) -> list[Clip]:
    """Read DIR/transcripts.tsv (filename<TAB>text...) and the WAV files it names."""
    index = folder / "transcripts.tsv"
    if not index.is_file():
        raise AsrError(f"{folder} has no transcripts.tsv (lines: filename<TAB>text)")
    clips: list[Clip] = []
    with index.open(encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), 1):
            if not row or row[0].startswith("#") or (number == 1 and row[0] == "filename"):
                continue
            if len(row) < 2:
                raise AsrError(f"{index}, line {number}: expected filename<TAB>text")
            pcm, _ = read_wav(folder / row[0], target_rate=16000)
            clips.append(Clip(row[0], row[1], pcm))
    if not clips:
        raise AsrError(f"{index} lists no clips")
    return clips


def telephone_path(pcm16k: bytes, law: str) -> bytes:
    """16 kHz -> 8 kHz -> G.711 -> 8 kHz -> 16 kHz, frame by frame as on a live call."""
    encode, decode = (alaw_encode, alaw_decode) if law == "alaw" else (ulaw_encode, ulaw_decode)
    down, up = StreamResampler(16000, 8000), StreamResampler(8000, 16000)
    out = bytearray()
    for frame in iter_frames(pcm16k, 16000):
        narrow = down.process(frame)
        out += up.process(decode(encode(narrow)))
    out += up.process(decode(encode(down.process(b"", last=True))), last=True)
    return bytes(out)


def speech_end_s(pcm: bytes) -> float:
    """Where speech ends in a clean clip, by energy: independent of the VAD under test."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    win = 160  # 10 ms
    n = len(samples) // win
    if n == 0:
        return 0.0
    energy = 10 * np.log10(np.mean(samples[: n * win].reshape(n, win) ** 2, axis=1) + 1e-6)
    threshold = max(energy.max() - 35.0, 20 * np.log10(32768) - 55.0)
    loud = np.nonzero(energy > threshold)[0]
    return float((loud[-1] + 1) * win / 16000) if len(loud) else 0.0


def speech_start_s(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    win = 160
    n = len(samples) // win
    energy = 10 * np.log10(np.mean(samples[: n * win].reshape(n, win) ** 2, axis=1) + 1e-6)
    threshold = max(energy.max() - 35.0, 20 * np.log10(32768) - 55.0)
    loud = np.nonzero(energy > threshold)[0]
    return float(loud[0] * win / 16000) if len(loud) else 0.0


def stream_finals(engine: SpeechEngine, pcm: bytes, hints: Sequence[str] = ()) -> list[Transcript]:
    """Stream 16 kHz PCM (plus trailing silence) in 20 ms frames as fast as possible into
    a call's recogniser (``hints``: the bot's phrase hints, as on a call); its finals."""
    recognizer = engine.recognizer(hints=hints, realtime=False)
    finals: list[Transcript] = []
    for frame in iter_frames(pcm + b"\x00" * int(TRAILING_SILENCE_S * 32000), 16000):
        finals += [e for e in recognizer.accept(frame) if isinstance(e, Transcript) and e.is_final]
    finals += [e for e in recognizer.finish() if isinstance(e, Transcript)]
    recognizer.close()
    return finals


def transcribe_stream(engine: SpeechEngine, pcm: bytes) -> str:
    """The finals of :func:`stream_finals`, joined."""
    return "".join(e.text for e in stream_finals(engine, pcm))


def run_condition(
    engine: SpeechEngine, clips: list[Clip], transform: Callable[[bytes], bytes]
) -> tuple[float, float, float]:
    """CER, CPU seconds and audio seconds for one condition, clips streamed flat out."""
    pairs = []
    cpu0 = time.process_time()
    audio = 0.0
    for clip in clips:
        pcm = transform(clip.pcm)
        text = transcribe_stream(engine, pcm)
        pairs.append((clip.text, text))
        audio += len(pcm) / 32000 + TRAILING_SILENCE_S
    return cer(pairs), time.process_time() - cpu0, audio


def latencies_ms(
    engine: SpeechEngine, clips: list[Clip], transform: Callable[[bytes], bytes]
) -> list[float]:
    """Final latency per clip, streamed in real time: wall clock from speech end to final."""
    values: list[float] = []
    for clip in clips:
        pcm = transform(clip.pcm)
        values.append(_paced_latency(engine, pcm))
    return values


def _paced_latency(engine: SpeechEngine, pcm: bytes) -> float:
    padded = pcm + b"\x00" * int(TRAILING_SILENCE_S * 32000)
    end_s = speech_end_s(pcm)
    recognizer = engine.recognizer()
    last_final = None
    t0 = time.perf_counter()
    for index, frame in enumerate(iter_frames(padded, 16000)):
        delay = t0 + index * 0.02 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for event in recognizer.accept(frame):
            if isinstance(event, Transcript) and event.is_final:
                last_final = time.perf_counter()
    recognizer.close()
    if last_final is None:
        return TRAILING_SILENCE_S * 1000  # never finalised: as late as the clip allows
    # The frame that holds the end of speech is delivered 20 ms after it starts.
    return (last_final - (t0 + end_s + 0.02)) * 1000


def streams_realtime(engine: SpeechEngine, clips: list[Clip], seconds: float = 20.0) -> int:
    """Streams this machine keeps up with: audio seconds decoded per wall second, flat out.

    Each worker's recogniser first hears one clip unmeasured, as the recognisers of a
    long-running server have (Vosk's decoding graph cache is per recogniser).
    """
    workers = max(2, 2 * (os.cpu_count() or 1))
    pcms = [
        telephone_path(c.pcm, "alaw") + b"\x00" * int(TRAILING_SILENCE_S * 32000) for c in clips
    ]
    recognizers = [engine.recognizer() for _ in range(workers)]
    processed = [0.0] * workers
    warmed = threading.Barrier(workers + 1)
    go = threading.Event()
    stop_at = [0.0]

    def work(slot: int) -> None:
        recognizer = recognizers[slot]
        for frame in iter_frames(pcms[slot % len(pcms)], 16000):
            recognizer.accept(frame)
        recognizer.finish()
        warmed.wait()
        go.wait()
        i = slot + 1
        while time.perf_counter() < stop_at[0]:
            for frame in iter_frames(pcms[i % len(pcms)], 16000):
                recognizer.accept(frame)
                processed[slot] += 0.02
                if time.perf_counter() >= stop_at[0]:
                    break
            recognizer.finish()
            i += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    warmed.wait()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    go.set()
    for t in threads:
        t.join()
    for recognizer in recognizers:
        recognizer.close()
    return int(sum(processed) / (time.perf_counter() - t0))


def memory_mb(
    load: Callable[[], SpeechEngine], clips: list[Clip], streams: int = 20
) -> tuple[SpeechEngine, float, float]:
    """RSS growth from loading the model, and per active stream (each fed speech)."""
    process = psutil.Process()
    before = process.memory_info().rss
    engine = load()
    after_model = process.memory_info().rss
    recognizers = [engine.recognizer() for _ in range(streams)]
    sample = telephone_path(clips[0].pcm, "alaw")
    for recognizer in recognizers:
        for frame in iter_frames(sample[: 32000 * 2], 16000):
            recognizer.accept(frame)
    after_streams = process.memory_info().rss
    for recognizer in recognizers:
        recognizer.close()
    return engine, (after_model - before) / 2**20, (after_streams - after_model) / 2**20 / streams


def run_bench(
    load: Callable[[], SpeechEngine],
    folder: Path,
    runs: int = 3,
    latency: bool = True,
    stream_seconds: float = 20.0,
) -> dict:
    clips = load_clips(folder)
    engine, rss_model, rss_stream = memory_mb(load, clips)
    transcribe_stream(engine, clips[0].pcm)  # warm-up, as a long-running server is
    conditions = {
        "16k": lambda pcm: pcm,
        "8k_alaw": lambda pcm: telephone_path(pcm, "alaw"),
        "8k_ulaw": lambda pcm: telephone_path(pcm, "ulaw"),
    }
    result: dict = {
        "engine": engine.name,
        "clips": len(clips),
        "audio_s": round(sum(c.seconds for c in clips), 2),
    }
    rtfs: list[float] = []
    for label, transform in conditions.items():
        errors, cpu_runs = [], []
        for _ in range(runs if label == "8k_alaw" else 1):
            error, cpu, audio = run_condition(engine, clips, transform)
            errors.append(error)
            cpu_runs.append(cpu / audio)
        result[f"cer_{label}"] = round(statistics.median(errors), 4)
        rtfs.extend(cpu_runs)
    result["rtf"] = round(statistics.median(rtfs), 4)
    if latency:
        lat = latencies_ms(engine, clips, conditions["8k_alaw"])
        result["final_latency_ms_p50"] = round(float(np.percentile(lat, 50)), 1)
        result["final_latency_ms_p95"] = round(float(np.percentile(lat, 95)), 1)
    result["streams_realtime"] = streams_realtime(engine, clips, stream_seconds)
    result["rss_mb_model"] = round(rss_model, 1)
    result["rss_mb_per_stream"] = round(rss_stream, 2)
    result["cpus"] = os.cpu_count()
    engine.close()
    return result
