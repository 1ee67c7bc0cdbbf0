"""A ticket's call recording, found by its call id where the controller wrote it.

The call controller (``ivr.recorder.recording_path``) writes each call to
``<data_dir>/recordings/<UTC day the call started, YYYY-MM-DD>/<call id>.wav``, every
character of the call id that is not a letter or digit replaced by ``_``, at most 100.
The console derives that name from the ticket's call id and start. It never opens the
ticket's stored ``recording_path``: a client could have written any path there, the SQL
database's included. Whatever the name leads to must still resolve, symlinks followed, to
a ``.wav`` file inside the recordings folder.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from ivr.recorder import recording_file_name

RECORDINGS = "recordings"
DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def find_recording(data_dir: Path, call_id: str, started_at: datetime | None) -> Path | None:
    """The recording of this call, or None when there is none the console may serve."""
    if not call_id:
        return None
    root = (data_dir / RECORDINGS).resolve()
    name = recording_file_name(call_id)
    for day in _days_to_search(root, started_at):
        found = _confined(root, day / name)
        if found is not None:
            return found
    return None


def _days_to_search(root: Path, started_at: datetime | None) -> list[Path]:
    """The call's own day; every day folder, newest first, when the start is not known."""
    if started_at is not None:
        return [root / started_at.astimezone(UTC).date().isoformat()]
    try:
        days = [p for p in root.iterdir() if DAY_FOLDER.match(p.name)]
    except OSError:  # no recordings folder (yet)
        return []
    return sorted(days, key=lambda p: p.name, reverse=True)


def _confined(root: Path, candidate: Path) -> Path | None:
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if not real.is_relative_to(root) or real.suffix.lower() != ".wav" or not real.is_file():
        return None
    return real
