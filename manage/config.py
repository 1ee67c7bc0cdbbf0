"""Versioned configuration in the SQL database, materialised to the files the bot loads.

Kinds: ``menu`` and ``prompts`` are whole YAML documents, one row per saved version;
the knowledge base is kept per entry (``kb_entry_versions``: each edit or retirement of
one entry is a new revision), so a city's 5,000 entries do not copy themselves on every
edit; recordings of prompts are WAV blobs, newest per prompt wins.

Every save is validated first with the bot's own loaders (a version that would not load
is never stored), then materialised to ``<data_dir>/config/{menu,prompts,kb}.yaml`` and
``<prompts_dir>/<id>.wav``, then announced on Redis (``<key_prefix>:config``) so every
controller node materialises it too and refreshes its :class:`bot.brain.BrainCache`
(see :mod:`manage.reload`). Rollback saves an old version's content as the newest
version: history is append-only and says who rolled back when.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import redis
import yaml
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.brain import BotPaths
from bot.kb import FIELDS as KB_FIELDS
from bot.kb import KnowledgeBaseError, load_kb, parse_entries
from bot.menu import MenuError, MenuProblem, menu_problems, read_menu_text
from bot.prompts import PromptsError, parse_prompts
from hotline.errors import UserFacingError
from hotline.settings import Settings
from manage.spreadsheet import escape_cell, unescape_cell
from tickets.models import ConfigVersionRow, KbEntryVersionRow, PromptRecordingRow, utcnow
from tickets.store import TicketStore

log = logging.getLogger(__name__)

DOCUMENTS = ("menu", "prompts")
SYSTEM = "system"


class ConfigError(UserFacingError, ValueError):
    """A configuration change that cannot be saved; the message says what and where."""


class MenuInvalid(ConfigError):
    def __init__(self, problems: list[MenuProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Version:
    kind: str
    version: int
    content: str
    author: str
    created_at: datetime
    note: str


@dataclass(frozen=True)
class KbState:
    """The newest revision of one knowledge-base entry."""

    entry_id: str
    revision: int
    data: dict[str, Any]
    retired: bool
    author: str
    created_at: datetime
    note: str


def channel(settings: Settings) -> str:
    return f"{settings.tickets.key_prefix}:config"


def config_dir(settings: Settings) -> Path:
    return settings.data_dir / "config"


def validate_document(kind: str, content: str) -> None:
    """Raise :class:`ConfigError` (``MenuInvalid`` listing every menu problem)."""
    if kind == "menu":
        try:
            raw = read_menu_text(content, "menu")
        except MenuError as exc:
            raise ConfigError(str(exc)) from exc
        problems = menu_problems(raw)
        if problems:
            raise MenuInvalid(problems)
    elif kind == "prompts":
        try:
            parse_prompts(yaml.safe_load(content), "prompts")
        except yaml.YAMLError as exc:
            raise ConfigError(f"prompts: not valid YAML: {exc}") from exc
        except PromptsError as exc:
            raise ConfigError(str(exc)) from exc
    else:
        raise ConfigError(f"unknown configuration kind {kind!r}")


def kb_entry_data(entry: Any) -> dict[str, Any]:
    return {
        "id": entry.id,
        "topic": entry.topic,
        "department": entry.department,
        "question": entry.question,
        "also": list(entry.also),
        "answer": entry.answer,
    }


class ConfigStore:
    def __init__(
        self, store: TicketStore, settings: Settings, redis_client: redis.Redis | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.redis = redis_client
        self.dir = config_dir(settings)
        self.prompts_dir = Path(settings.ivr.prompts_dir)

    # ---- whole documents: menu, prompts ----

    def versions(self, kind: str, limit: int = 50) -> list[Version]:
        with self.store.reading() as s:
            rows = s.scalars(
                select(ConfigVersionRow)
                .where(ConfigVersionRow.kind == kind)
                .order_by(ConfigVersionRow.version.desc())
                .limit(limit)
            ).all()
            return [_version(r) for r in rows]

    def active(self, kind: str) -> Version | None:
        found = self.versions(kind, limit=1)
        return found[0] if found else None

    def version(self, kind: str, number: int) -> Version:
        with self.store.reading() as s:
            row = s.scalar(
                select(ConfigVersionRow).where(
                    ConfigVersionRow.kind == kind, ConfigVersionRow.version == number
                )
            )
            if row is None:
                raise ConfigError(f"{kind}: no version {number}")
            return _version(row)

    def save(self, kind: str, content: str, author: str, note: str = "") -> Version:
        validate_document(kind, content)
        for attempt in range(3):  # two saves at once: the loser takes the next number
            try:
                with self.store.writing() as s:
                    last = (
                        s.scalar(
                            select(func.max(ConfigVersionRow.version)).where(
                                ConfigVersionRow.kind == kind
                            )
                        )
                        or 0
                    )
                    row = ConfigVersionRow(
                        kind=kind,
                        version=last + 1,
                        content=content,
                        author=author,
                        created_at=utcnow(),
                        note=note[:200],
                    )
                    s.add(row)
                    s.flush()
                    saved = _version(row)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        self.publish(kind, saved.version, author)
        return saved

    def rollback(self, kind: str, number: int, author: str) -> Version:
        old = self.version(kind, number)
        return self.save(kind, old.content, author, note=f"回滚到版本 {number}")

    # ---- the knowledge base, entry by entry ----

    def kb_states(self, include_retired: bool = False) -> list[KbState]:
        with self.store.reading() as s:
            newest = (
                select(
                    KbEntryVersionRow.entry_id, func.max(KbEntryVersionRow.revision).label("rev")
                )
                .group_by(KbEntryVersionRow.entry_id)
                .subquery()
            )
            rows = s.scalars(
                select(KbEntryVersionRow)
                .join(
                    newest,
                    (KbEntryVersionRow.entry_id == newest.c.entry_id)
                    & (KbEntryVersionRow.revision == newest.c.rev),
                )
                .order_by(KbEntryVersionRow.id)
            ).all()
            states = [_kb_state(r) for r in rows]
        return [k for k in states if include_retired or not k.retired]

    def kb_state(self, entry_id: str) -> KbState | None:
        history = self.kb_history(entry_id, limit=1)
        return history[0] if history else None

    def kb_history(self, entry_id: str, limit: int = 50) -> list[KbState]:
        with self.store.reading() as s:
            rows = s.scalars(
                select(KbEntryVersionRow)
                .where(KbEntryVersionRow.entry_id == entry_id)
                .order_by(KbEntryVersionRow.revision.desc())
                .limit(limit)
            ).all()
            return [_kb_state(r) for r in rows]

    def kb_search(self, query: str, include_retired: bool = False) -> list[KbState]:
        words = query.strip().lower().split()
        out = []
        for state in self.kb_states(include_retired):
            hay = json.dumps(state.data, ensure_ascii=False).lower()
            if all(w in hay for w in words):
                out.append(state)
        return out

    def kb_save(
        self,
        items: Iterable[dict[str, Any]],
        author: str,
        note: str = "",
        retire: Iterable[str] = (),
    ) -> int:
        """Add or change entries (and retire others) as one validated change; returns how
        many entries got a new revision (unchanged entries are skipped)."""
        items = list(items)
        retire = set(retire)
        current = {k.entry_id: k for k in self.kb_states(include_retired=True)}
        try:
            incoming = (
                parse_entries(
                    [(f"entry {d.get('id', i + 1)}", d) for i, d in enumerate(items)],
                    "knowledge base",
                )
                if items
                else ()
            )
        except KnowledgeBaseError as exc:
            raise ConfigError(str(exc)) from exc
        changes: list[tuple[str, dict[str, Any], bool]] = []
        for entry in incoming:
            data = kb_entry_data(entry)
            old = current.get(entry.id)
            if old is None or old.retired or old.data != data:
                changes.append((entry.id, data, False))
        for entry_id in retire:
            old = current.get(entry_id)
            if old is None:
                raise ConfigError(f"knowledge base: no entry {entry_id!r} to retire")
            if not old.retired:
                changes.append((entry_id, old.data, True))
        # The whole resulting knowledge base must load (e.g. not every entry retired).
        after = {k: v.data for k, v in current.items() if not v.retired}
        for entry_id, data, retired in changes:
            if retired:
                after.pop(entry_id, None)
            else:
                after[entry_id] = data
        try:
            parse_entries([(f"entry {k}", v) for k, v in after.items()], "knowledge base")
        except KnowledgeBaseError as exc:
            raise ConfigError(str(exc)) from exc
        if not changes:
            return 0
        with self.store.writing() as s:
            for entry_id, data, retired in changes:
                last = (
                    s.scalar(
                        select(func.max(KbEntryVersionRow.revision)).where(
                            KbEntryVersionRow.entry_id == entry_id
                        )
                    )
                    or 0
                )
                s.add(
                    KbEntryVersionRow(
                        entry_id=entry_id,
                        revision=last + 1,
                        data=data,
                        retired=retired,
                        author=author,
                        created_at=utcnow(),
                        note=note[:200],
                    )
                )
        self.publish("kb", len(changes), author)
        return len(changes)

    def kb_restore(self, entry_id: str, revision: int, author: str) -> int:
        for state in self.kb_history(entry_id, limit=10_000):
            if state.revision == revision:
                return self.kb_save([state.data], author, note=f"恢复到第 {revision} 版")
        raise ConfigError(f"knowledge base: entry {entry_id!r} has no revision {revision}")

    def kb_documents(self) -> list[dict[str, Any]]:
        return [k.data for k in self.kb_states()]

    def kb_yaml(self) -> str:
        return yaml.safe_dump(self.kb_documents(), allow_unicode=True, sort_keys=False, width=1000)

    def kb_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(KB_FIELDS), lineterminator="\n")
        writer.writeheader()
        for data in self.kb_documents():
            row = {**data, "also": "|".join(data.get("also", []))}
            writer.writerow({name: escape_cell(value) for name, value in row.items()})
        return out.getvalue()

    # ---- recordings ----

    def save_recording(self, prompt_id: str, wav: bytes, info: dict[str, Any], author: str) -> None:
        with self.store.writing() as s:
            s.add(
                PromptRecordingRow(
                    prompt_id=prompt_id,
                    wav=wav,
                    removed=False,
                    info=info,
                    author=author,
                    created_at=utcnow(),
                )
            )
        self.publish("recording", 0, author)

    def remove_recording(self, prompt_id: str, author: str) -> None:
        with self.store.writing() as s:
            s.add(
                PromptRecordingRow(
                    prompt_id=prompt_id,
                    wav=b"",
                    removed=True,
                    info={},
                    author=author,
                    created_at=utcnow(),
                )
            )
        self.publish("recording", 0, author)

    def recordings(self) -> dict[str, PromptRecordingRow]:
        """The newest recording of each prompt that has one (removed ones left out)."""
        with self.store.reading() as s:
            rows = s.scalars(select(PromptRecordingRow).order_by(PromptRecordingRow.id)).all()
        newest: dict[str, PromptRecordingRow] = {}
        for row in rows:
            newest[row.prompt_id] = row
        return {k: v for k, v in newest.items() if not v.removed}

    # ---- seeding, materialising, announcing ----

    def seed(self) -> None:
        """First start: the files the deployment uses today become version 1."""
        bot = self.settings.bot
        defaults = {
            "menu": bot.menu or _packaged("data/menu.yaml"),
            "prompts": bot.prompts or _packaged("data/prompts.yaml"),
        }
        for kind, path in defaults.items():
            if self.active(kind) is None and Path(path).resolve() != self._target(kind):
                self.save(kind, Path(path).read_text(encoding="utf-8"), SYSTEM, "初始版本")
        if not self.kb_states(include_retired=True):
            kb = load_kb(bot.kb or _packaged("data/kb.yaml"))
            self.kb_save([kb_entry_data(e) for e in kb], SYSTEM, "初始版本")

    def _target(self, kind: str) -> Path:
        return (self.dir / f"{kind}.yaml").resolve()

    def materialise(self) -> bool:
        """Write the newest versions where the bot reads them; True when a file changed."""
        changed = False
        for kind in DOCUMENTS:
            version = self.active(kind)
            if version is not None:
                changed |= _write_if_changed(self.dir / f"{kind}.yaml", version.content)
        if self.kb_states():
            changed |= _write_if_changed(self.dir / "kb.yaml", self.kb_yaml())
        changed |= self._materialise_recordings()
        return changed

    def _materialise_recordings(self) -> bool:
        manifest = self.prompts_dir / ".managed.json"
        try:
            managed = set(json.loads(manifest.read_text()))
        except (OSError, ValueError):
            managed = set()
        recordings = self.recordings()
        if not recordings and not managed:
            return False
        changed = False
        self.prompts_dir.mkdir(parents=True, exist_ok=True)
        for prompt_id, row in recordings.items():
            changed |= _write_if_changed(self.prompts_dir / f"{prompt_id}.wav", row.wav)
        for prompt_id in managed - set(recordings):
            (self.prompts_dir / f"{prompt_id}.wav").unlink(missing_ok=True)
            changed = True
        _write_if_changed(manifest, json.dumps(sorted(recordings)))
        return changed

    def bot_paths(self) -> BotPaths:
        """Where the bot loads from: the materialised versions, the rest from settings."""
        b = self.settings.bot
        return BotPaths(
            kb=self.dir / "kb.yaml",
            cues=b.cues,
            gazetteer=b.gazetteer,
            menu=self.dir / "menu.yaml",
            prompts=self.dir / "prompts.yaml",
            synonyms=b.synonyms,
            semantic=b.semantic,
            corpus=b.corpus,
            unanswered=b.unanswered,
        )

    def publish(self, kind: str, version: int, author: str) -> None:
        self.materialise()
        if self.redis is None:
            return
        message = json.dumps({"kind": kind, "version": version, "author": author})
        try:
            self.redis.publish(channel(self.settings), message)
        except redis.RedisError as exc:  # nodes still pick it up on their periodic sync
            log.warning("could not announce the new %s version: %s", kind, exc)


def _packaged(name: str) -> Path:
    return Path(str(resources.files("bot").joinpath(name)))


def _write_if_changed(path: Path, content: str | bytes) -> bool:
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a reader sees the old file or the new one, never half
    return True


def _version(row: ConfigVersionRow) -> Version:
    return Version(row.kind, row.version, row.content, row.author, row.created_at, row.note)


def _kb_state(row: KbEntryVersionRow) -> KbState:
    return KbState(
        row.entry_id,
        row.revision,
        dict(row.data),
        row.retired,
        row.author,
        row.created_at,
        row.note,
    )


def parse_kb_upload(name: str, raw: bytes) -> list[dict[str, Any]]:
    """Entries of an uploaded .yaml/.yml/.csv file, validated like the bot loads them."""
    import tempfile

    suffix = Path(name).suffix.lower()
    if suffix not in (".yaml", ".yml", ".csv"):
        raise ConfigError(f"{name}: use a .yaml, .yml or .csv file")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(raw)
        try:
            kb = load_kb(path)
        except KnowledgeBaseError as exc:
            raise ConfigError(str(exc).replace(str(path), name)) from exc
    entries = [kb_entry_data(e) for e in kb]
    return [_unescaped(e) for e in entries] if suffix == ".csv" else entries


def _unescaped(data: dict[str, Any]) -> dict[str, Any]:
    """An entry read from CSV without the quotes our export put before formula-like text."""
    return {
        name: [unescape_cell(v) for v in value]
        if isinstance(value, list)
        else unescape_cell(value)
        if isinstance(value, str)
        else value
        for name, value in data.items()
    }


def iter_levels(menu_raw: dict[str, Any]) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """(node name, prompt, options) of the main menu and each inline submenu."""
    yield "menu", str(menu_raw.get("prompt") or ""), list(menu_raw.get("options") or [])
    for option in menu_raw.get("options") or []:
        if isinstance(option, dict) and isinstance(option.get("submenu"), list):
            yield (
                f"{option.get('key')}:{option.get('label')}",
                str(option.get("prompt") or ""),
                option["submenu"],
            )
