"""G.711 A-law and mu-law <-> 16-bit linear PCM, by lookup table.

Why our own code: ``audioop`` is gone in Python 3.13 and ``audioop-lts`` is one more
C extension for 60 lines of table arithmetic. The tables follow ITU-T G.711 (the same
algorithm as Sun's reference g711.c used by sox); tests check them byte for byte
against vectors produced by sox, not against this encoder.
"""

from __future__ import annotations

import numpy as np

_SEG_END = np.array([0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF], dtype=np.int32)


def _alaw_to_linear(code: int) -> int:
    code ^= 0x55
    magnitude = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        magnitude += 8
    elif segment == 1:
        magnitude += 0x108
    else:
        magnitude = (magnitude + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


def _ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return (0x84 - magnitude) if code & 0x80 else (magnitude - 0x84)


def _alaw_encode_table(samples: np.ndarray) -> np.ndarray:
    pcm = samples.astype(np.int32) >> 3  # A-law works on 13 bits
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    pcm = np.where(negative, -pcm - 1, pcm)
    segment = np.searchsorted(_SEG_END >> 3, pcm)
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((pcm >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _ulaw_encode_table(samples: np.ndarray) -> np.ndarray:
    pcm = samples.astype(np.int32) >> 2  # mu-law works on 14 bits
    negative = pcm < 0
    mask = np.where(negative, 0x7F, 0xFF)
    pcm = np.minimum(np.abs(pcm), 8159) + 0x21  # clip, then add the bias (33)
    segment = np.searchsorted(_SEG_END >> 2, pcm)
    code = (np.minimum(segment, 7) << 4) | ((pcm >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


_ALAW_DECODE = np.array([_alaw_to_linear(c) for c in range(256)], dtype="<i2")
_ULAW_DECODE = np.array([_ulaw_to_linear(c) for c in range(256)], dtype="<i2")
# Encoding tables indexed by the 16-bit sample reinterpreted as unsigned (0..65535).
_ALL_SAMPLES = np.arange(65536, dtype=np.uint16).astype(np.int16)
_ALAW_ENCODE = _alaw_encode_table(_ALL_SAMPLES)
_ULAW_ENCODE = _ulaw_encode_table(_ALL_SAMPLES)


def alaw_decode(payload: bytes) -> bytes:
    """A-law bytes -> 16-bit little-endian PCM (twice as long)."""
    return _ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)].tobytes()


def ulaw_decode(payload: bytes) -> bytes:
    """mu-law bytes -> 16-bit little-endian PCM (twice as long)."""
    return _ULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)].tobytes()


def _as_uint16(pcm: bytes) -> np.ndarray:
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM must have an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<u2")


def alaw_encode(pcm: bytes) -> bytes:
    """16-bit little-endian PCM -> A-law bytes."""
    return _ALAW_ENCODE[_as_uint16(pcm)].tobytes()


def ulaw_encode(pcm: bytes) -> bytes:
    """16-bit little-endian PCM -> mu-law bytes."""
    return _ULAW_ENCODE[_as_uint16(pcm)].tobytes()
