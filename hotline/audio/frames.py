"""20 ms framing: the packet size of RTP telephony and the VAD's frame."""

from __future__ import annotations

from collections.abc import Iterator

FRAME_MS = 20
SAMPLE_WIDTH = 2  # bytes per 16-bit sample


def frame_bytes(sample_rate: int, frame_ms: int = FRAME_MS) -> int:
    """Bytes in one frame of 16-bit mono PCM (640 at 16 kHz, 320 at 8 kHz)."""
    return sample_rate * frame_ms // 1000 * SAMPLE_WIDTH


def iter_frames(pcm: bytes, sample_rate: int, frame_ms: int = FRAME_MS) -> Iterator[bytes]:
    """Split PCM into whole frames; a short last frame is padded with silence."""
    size = frame_bytes(sample_rate, frame_ms)
    for start in range(0, len(pcm), size):
        frame = pcm[start : start + size]
        if len(frame) < size:
            frame = frame + b"\x00" * (size - len(frame))
        yield frame


class FrameBuffer:
    """Re-chunks arbitrary-length PCM writes into whole frames (RTP jitter, odd sizes)."""

    def __init__(self, sample_rate: int, frame_ms: int = FRAME_MS) -> None:
        self.size = frame_bytes(sample_rate, frame_ms)
        self._pending = bytearray()

    def push(self, pcm: bytes) -> list[bytes]:
        self._pending.extend(pcm)
        whole = len(self._pending) // self.size * self.size
        out = [bytes(self._pending[i : i + self.size]) for i in range(0, whole, self.size)]
        del self._pending[:whole]
        return out
