"""Work-order drafts that could not be filed, kept on local disk until SQL takes them.

When the database is away (stopped, failing over, its disk full) a caller's complaint
must not be lost with the call: the draft is written here, one JSON file per call, and
filed again when SQL answers. A file is written to a temporary name, fsync'd, renamed and
the folder fsync'd, so a power cut leaves either the whole draft or nothing. Filing is
idempotent per call id (``TicketStore.create_from_draft``), so a draft filed twice (a
crash between filing and removing the file) still makes one work order.

Hand-written rather than a queue library: the durable queue this needs is a folder of
files, and the rename-and-fsync steps are the whole of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from hotline.draft import TicketDraft

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpooledDraft:
    path: Path
    draft: TicketDraft
    skill: str


class DraftSpool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, draft: TicketDraft, skill: str) -> Path:
        """Keep a draft durably (raises OSError when even this disk refuses it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{_file_key(draft)}.json"
        payload = {"skill": skill, "draft": draft.model_dump(mode="json")}
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        _fsync_folder(self.folder)
        return path

    def pending(self) -> list[SpooledDraft]:
        """The drafts waiting, oldest first; a file that cannot be read is set aside."""
        if not self.folder.is_dir():
            return []
        out: list[SpooledDraft] = []
        files = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for path in files:
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
                draft = TicketDraft.model_validate(payload["draft"])
                out.append(SpooledDraft(path, draft, str(payload.get("skill") or "general")))
            except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
                log.error("spooled draft %s unreadable (%s): moved aside for an operator",
                          path.name, exc)  # fmt: skip
                with contextlib.suppress(OSError):
                    path.replace(path.with_suffix(".unreadable"))
        return out

    def __len__(self) -> int:
        return len(list(self.folder.glob("*.json"))) if self.folder.is_dir() else 0

    def file_all(self, file: Callable[[TicketDraft, str], str]) -> list[str]:
        """File every waiting draft through ``file`` (the ticket service); stop at the
        first failure (SQL still away). Returns the work-order numbers filed."""
        filed: list[str] = []
        for spooled in self.pending():
            number = file(spooled.draft, spooled.skill)  # raises while SQL is away
            spooled.path.unlink(missing_ok=True)
            _fsync_folder(self.folder)
            filed.append(number)
        return filed


def _file_key(draft: TicketDraft) -> str:
    # The call id names the file (one draft per call); it may hold characters a file
    # name must not, so it is hashed.
    key = draft.call_id or draft.model_dump_json()
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
