"""The knowledge base (知识库): question-and-answer entries a city's managers keep.

Format (YAML list or CSV with a header row), one entry per item/row:

    id          unique, letters/digits/-/_ (e.g. ``gjj-rent``)
    topic       the topic shown in reports (住房公积金)
    department  the responsible unit (市住房公积金管理中心)
    question    the standard question
    also        other ways to ask: a YAML list, or in CSV one cell separated by ``|`` or ``；``
    answer      what the bot says

Loading validates every entry and raises :class:`KnowledgeBaseError` naming the file,
the entry and the field, so a manager can fix the file without reading code.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hotline.errors import UserFacingError

FIELDS = ("id", "topic", "department", "question", "also", "answer")
REQUIRED = ("id", "topic", "department", "question", "answer")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CSV_SPLIT = re.compile(r"[|｜;；\n]")


class KnowledgeBaseError(UserFacingError, ValueError):
    """A knowledge-base file that cannot be used; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    topic: str
    department: str
    question: str
    also: tuple[str, ...]
    answer: str

    def phrasings(self) -> tuple[str, ...]:
        return (self.question, *self.also)


class KnowledgeBase:
    """Validated entries, looked up by id; immutable after loading."""

    def __init__(self, entries: tuple[Entry, ...], source: str = "") -> None:
        self.entries = entries
        self.source = source
        self._by_id = {e.id: e for e in entries}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def get(self, entry_id: str) -> Entry | None:
        return self._by_id.get(entry_id)


def load_kb(path: str | Path) -> KnowledgeBase:
    """Load a ``.yaml``/``.yml`` or ``.csv`` knowledge base and validate it."""
    path = Path(path)
    if not path.is_file():
        raise KnowledgeBaseError(f"knowledge base {path}: file not found")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KnowledgeBaseError(f"knowledge base {path}: not UTF-8 text ({exc.reason})") from exc
    if suffix in (".yaml", ".yml"):
        items = _yaml_items(path, text)
    elif suffix == ".csv":
        items = _csv_items(path, text)
    else:
        raise KnowledgeBaseError(f"knowledge base {path}: use a .yaml, .yml or .csv file")
    return parse_entries(items, source=str(path))


def parse_entries(items: Sequence[tuple[str, Any]], source: str = "") -> KnowledgeBase:
    """Validate raw items (``(where, mapping)`` pairs) into a knowledge base."""
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for where, item in items:
        entry = _entry(source, where, item)
        if entry.id in seen:
            raise KnowledgeBaseError(
                f"{source}: {where} (id {entry.id!r}): field 'id' duplicates {seen[entry.id]}"
            )
        seen[entry.id] = where
        entries.append(entry)
    if not entries:
        raise KnowledgeBaseError(f"{source}: the knowledge base has no entries")
    return KnowledgeBase(tuple(entries), source)


def _yaml_items(path: Path, text: str) -> list[tuple[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KnowledgeBaseError(f"knowledge base {path}: not valid YAML: {exc}") from exc
    if isinstance(data, dict) and "entries" in data:
        data = data["entries"]
    if not isinstance(data, list):
        raise KnowledgeBaseError(f"knowledge base {path}: expected a list of entries")
    return [(f"entry {i + 1}", item) for i, item in enumerate(data)]


def _csv_items(path: Path, text: str) -> list[tuple[str, Any]]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [f for f in REQUIRED if f not in header]
    if missing:
        raise KnowledgeBaseError(
            f"knowledge base {path}: CSV header lacks column(s) {', '.join(missing)}"
            f" (expected {','.join(FIELDS)})"
        )
    items: list[tuple[str, Any]] = []
    for row in reader:
        row = {k: v for k, v in row.items() if k is not None}
        also = row.get("also") or ""
        row["also"] = [p.strip() for p in _CSV_SPLIT.split(also) if p.strip()]
        items.append((f"row {reader.line_num}", row))
    return items


def _entry(source: str, where: str, item: Any) -> Entry:
    if not isinstance(item, dict):
        raise KnowledgeBaseError(
            f"{source}: {where}: expected a mapping with fields {', '.join(FIELDS)}"
        )
    label = f"{source}: {where}" + (
        f" (id {item['id']!r})" if isinstance(item.get("id"), str) else ""
    )
    unknown = sorted(set(map(str, item)) - set(FIELDS))
    if unknown:
        raise KnowledgeBaseError(
            f"{label}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})"
        )
    values: dict[str, str] = {}
    for name in REQUIRED:
        value = item.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise KnowledgeBaseError(f"{label}: field {name!r} is missing or empty")
        if not isinstance(value, str | int):
            raise KnowledgeBaseError(f"{label}: field {name!r} must be text")
        values[name] = str(value).strip()
    if not _ID.match(values["id"]):
        raise KnowledgeBaseError(
            f"{label}: field 'id' must be letters, digits, '-', '_' or '.' (got {values['id']!r})"
        )
    also_raw = item.get("also") or []
    if isinstance(also_raw, str):
        also_raw = [also_raw]
    if not isinstance(also_raw, list) or not all(isinstance(a, str) for a in also_raw):
        raise KnowledgeBaseError(f"{label}: field 'also' must be a list of questions")
    also = tuple(a.strip() for a in also_raw if a.strip())
    return Entry(
        values["id"],
        values["topic"],
        values["department"],
        values["question"],
        also,
        values["answer"],
    )
