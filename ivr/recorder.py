"""A call's stereo recording: the caller on the left, what the bot played on the right.

Recordings are the first thing a filling data disk refuses (``reserve_bytes``), so the
space left keeps taking work orders (SQLite and the spool live on the same disk); a
recording that cannot be written is counted and logged, and the call ends normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hotline.metrics import METRICS

log = logging.getLogger(__name__)


def recording_file_name(call_id: str) -> str:
    """The call id made path-safe (letters and digits kept, the rest ``_``, at most 100)."""
    return "".join(c if c.isalnum() else "_" for c in call_id)[:100] + ".wav"


def recording_path(data_dir: Path, day: str, call_id: str) -> Path:
    """``<data_dir>/recordings/<day>/<call id, path-safe>.wav``: the console finds a
    call's recording here by its call id (``console.recordings``)."""
    return data_dir / "recordings" / day / recording_file_name(call_id)


class CallRecorder:
    def __init__(self, path: Path, call_id: str, *, enabled: bool, reserve_bytes: int) -> None:
        self.path = path
        self.call_id = call_id
        self.enabled = enabled
        self.reserve_bytes = reserve_bytes
        self._caller = bytearray()
        self._bot = bytearray()

    def caller(self, pcm8k: bytes) -> None:
        if self.enabled:
            self._caller += pcm8k

    def bot(self, pcm8k: bytes) -> None:
        """What the bot played, prompts back to back (their timing is the caller's)."""
        if self.enabled:
            self._bot += pcm8k

    async def save(self) -> str:
        """The recording's path once written; "" when off, refused or failed."""
        if not self.enabled or not self._room_left():
            return ""
        await save_or_report("recording", self.call_id, write_stereo, self.path,
                             bytes(self._caller), bytes(self._bot))  # fmt: skip
        return str(self.path) if self.path.exists() else ""

    def _room_left(self) -> bool:
        data_dir = self.path.parents[2]
        try:
            free = shutil.disk_usage(data_dir).free
        except OSError:
            return True  # no data dir yet: the write itself reports what is wrong
        if free >= self.reserve_bytes:
            return True
        METRICS.recording_failures.labels(reason="reserve").inc()
        log.error("call %s: recording not saved: %.0f MB free on the data disk, below the "
                  "%.0f MB kept for work orders; the call and its ticket are unaffected",
                  self.call_id, free / 1e6, self.reserve_bytes / 1e6)  # fmt: skip
        return False


async def save_or_report(what: str, call_id: str, write: Callable[..., Any], *args: Any) -> None:
    """Disk full or read-only: say so clearly, count it, and let the call end normally.
    ``args[0]`` is the file written: a half-written recording is removed."""
    try:
        await asyncio.to_thread(write, *args)
    except OSError as exc:
        reason = errno.errorcode.get(exc.errno or 0, "OSError")
        METRICS.recording_failures.labels(reason=reason).inc()
        log.error("call %s: %s not saved (%s: %s); the call and its ticket are unaffected",
                  call_id, what, reason, exc.strerror or exc)  # fmt: skip
        if what == "recording" and isinstance(args[0], Path):
            with contextlib.suppress(OSError):
                args[0].unlink(missing_ok=True)


def write_stereo(path: Path, caller: bytes, bot: bytes) -> None:
    """Left: the caller; right: what the bot played (prompts back to back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(len(caller), len(bot)) // 2
    left = np.zeros(n, dtype="<i2")
    right = np.zeros(n, dtype="<i2")
    left[: len(caller) // 2] = np.frombuffer(caller, dtype="<i2")
    right[: len(bot) // 2] = np.frombuffer(bot, dtype="<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(np.column_stack([left, right]).astype("<i2").tobytes())
