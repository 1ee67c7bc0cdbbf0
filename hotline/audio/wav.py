"""Reading and writing WAV files with clear errors for what telephony cannot use."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from hotline.audio.resample import resample
from hotline.errors import UserFacingError

MIN_RATE = 8000


class AudioFormatError(UserFacingError, ValueError):
    """Audio we cannot use; the message names the file and what is wrong."""


def read_wav(path: str | Path, target_rate: int | None = None) -> tuple[bytes, int]:
    """Return (16-bit mono PCM, sample rate); stereo is mixed down, rate converted on request.

    Raises AudioFormatError for a missing, truncated, empty or non-16-bit file.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            declared = wav.getnframes()
            raw = wav.readframes(declared)
    except FileNotFoundError as exc:
        raise AudioFormatError(f"{path}: no such file") from exc
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"{path}: not a readable PCM WAV file ({exc})") from exc
    if rate < MIN_RATE:
        raise AudioFormatError(f"{path}: {rate} Hz is below the {MIN_RATE} Hz of telephone audio")
    if width != 2:
        raise AudioFormatError(f"{path}: {8 * width}-bit samples; 16-bit PCM is required")
    frame_size = channels * width
    if len(raw) < declared * frame_size:
        raise AudioFormatError(
            f"{path}: truncated: header declares {declared} frames, file holds "
            f"{len(raw) // frame_size}"
        )
    if not raw:
        raise AudioFormatError(f"{path}: contains no audio")
    samples = np.frombuffer(raw, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    pcm = samples.tobytes()
    if target_rate is not None and target_rate != rate:
        pcm, rate = resample(pcm, rate, target_rate), target_rate
    return pcm, rate


def write_wav(path: str | Path, pcm: bytes, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
