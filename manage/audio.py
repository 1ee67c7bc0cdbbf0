"""Checks on a professionally recorded prompt before it replaces the synthetic voice.

The upload is converted to what the line carries (8 kHz, 16-bit, mono; libsoxr through
``hotline.audio.resample``) and refused with a clear message when it is clipped (a run of
samples at full scale: the recording was too loud), nearly silent, starts with a long
silence (the caller would think the line is dead), or is far too long for a prompt.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import numpy as np

from hotline.audio import resample
from voice.tts import pcm_to_wav

RATE = 8000
FULL_SCALE = 32000  # |sample| at or above this counts as clipped (int16 max 32767)
MAX_CLIPPED = 20  # samples at full scale tolerated (a few isolated peaks are inaudible)
MIN_RMS_DBFS = -45.0
MAX_LEADING_SILENCE_S = 1.0
MAX_SECONDS = 120.0
SILENCE_LEVEL = 300  # |sample| below this is silence (about -40 dBFS)


class RecordingError(ValueError):
    """A recording that cannot replace a prompt; the message says why and what to do."""


@dataclass(frozen=True)
class CheckedRecording:
    wav: bytes  # 8 kHz 16-bit mono WAV file
    seconds: float
    source_rate: int
    peak_dbfs: float
    rms_dbfs: float
    leading_silence_s: float

    def info(self) -> dict[str, float | int]:
        return {
            "seconds": round(self.seconds, 2),
            "source_rate": self.source_rate,
            "peak_dbfs": round(self.peak_dbfs, 1),
            "rms_dbfs": round(self.rms_dbfs, 1),
            "leading_silence_s": round(self.leading_silence_s, 2),
        }


def _dbfs(value: float) -> float:
    return 20 * float(np.log10(max(value, 1e-9) / 32768.0))


def check_recording(data: bytes, name: str = "upload") -> CheckedRecording:
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise RecordingError(f"{name}: not a PCM WAV file ({exc})") from exc
    if width not in (1, 2, 3, 4):
        raise RecordingError(f"{name}: unsupported sample width {8 * width} bit")
    if not raw or channels < 1:
        raise RecordingError(f"{name}: contains no audio")
    samples = _to_int16(raw, width).reshape(-1, channels).astype(np.float32)
    # Clipping is judged on the original channels (a mix-down can hide it).
    clipped = int(np.sum(np.abs(samples) >= FULL_SCALE))
    if clipped > MAX_CLIPPED:
        raise RecordingError(
            f"{name}: clipped: {clipped} samples at full scale; record again about 6 dB quieter"
        )
    mono = samples.mean(axis=1).astype("<i2").tobytes()
    pcm = resample(mono, rate, RATE) if rate != RATE else mono
    out = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    seconds = out.size / RATE
    if seconds > MAX_SECONDS:
        raise RecordingError(
            f"{name}: {seconds:.0f} s long; a prompt should be under {MAX_SECONDS:.0f} s"
        )
    rms = float(np.sqrt(np.mean(out**2))) if out.size else 0.0
    if _dbfs(rms) < MIN_RMS_DBFS:
        raise RecordingError(
            f"{name}: almost silent (level {_dbfs(rms):.0f} dBFS); check the"
            " microphone and record again"
        )
    loud = np.nonzero(np.abs(out) > SILENCE_LEVEL)[0]
    leading = loud[0] / RATE if loud.size else seconds
    if leading > MAX_LEADING_SILENCE_S:
        raise RecordingError(
            f"{name}: starts with {leading:.1f} s of silence; trim it to under"
            f" {MAX_LEADING_SILENCE_S:.0f} s so callers do not hear a dead line"
        )
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return CheckedRecording(pcm_to_wav(pcm, RATE), seconds, rate, _dbfs(peak), _dbfs(rms), leading)


def _to_int16(raw: bytes, width: int) -> np.ndarray:
    if width == 1:  # 8-bit WAV is unsigned
        return ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype("<i2")
    if width == 2:
        return np.frombuffer(raw, dtype="<i2")
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        return ((b[:, 2].astype(np.int16) << 8) | b[:, 1]).astype("<i2")
    return (np.frombuffer(raw, dtype="<i4") >> 16).astype("<i2")
