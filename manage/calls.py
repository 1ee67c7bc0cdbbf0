"""Call records in SQL: what the dashboard and the knowledge-base pages read.

The call session writes one JSON record per call (``ivr.journal.CallRecord`` under
``<data_dir>/calls/<day>/<call id>.json``). The controller hands the same record to
:func:`record_call` when the call ends; :func:`import_records` loads the JSON files
(``hotline calls import``) for calls the controller could not record (database away) or
that predate this table. Both are idempotent per ``call_id``.

Record fields used (all but ``call_id`` and ``started_at`` optional)::

    call_id, caller, started_at, ended_at (ISO 8601), answered_ms,
    outcome (answered | ticket | transfer | abandoned | cancelled | timeout | error),
    ticket, transfer_queue, satisfaction (1 满意, 2 基本满意, 3 不满意),
    seat_wait_s     seconds from the transfer until a seat answered (AMI), if known
    type, topic, district   override what is looked up from the ticket / KB entry
    turns: [{input: speech|dtmf, text, confidence, state, intent, kb_id, kb_confidence,
             answered, unanswered}, ...]      # bot.dialogue.Dialogue.turns
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tickets.models import CallRow, CallTurnRow, KbEntryVersionRow, TicketRow
from tickets.ticket import mask_phone

log = logging.getLogger(__name__)

TO_PERSON = ("transfer", "ticket")


class CallRecordError(ValueError):
    """A call record that cannot be stored; the message names the field."""


@dataclass
class ImportResult:
    imported: int = 0
    known: int = 0
    errors: list[str] = field(default_factory=list)


def _when(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise CallRecordError(f"field {name!r} is not an ISO 8601 time: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def handled_by(outcome: str, turns: list[dict[str, Any]], ticket: str) -> str:
    """bot: answered from the knowledge base with no person; person: transferred or a work
    order made; abandoned: neither (hung up, silence, error)."""
    if outcome in TO_PERSON or ticket:
        return "person"
    if outcome == "answered" or any(t.get("answered") for t in turns):
        return "bot"
    return "abandoned"


def record_call(store: Any, record: Any, timezone: str = "Asia/Shanghai") -> bool:
    """Store one call record (a ``CallRecord`` or its dict); False if it was already there."""
    data: dict[str, Any] = asdict(record) if is_dataclass(record) else dict(record)  # type: ignore[arg-type]
    call_id = str(data.get("call_id") or "").strip()
    if not call_id:
        raise CallRecordError("field 'call_id' is missing")
    started = _when(data.get("started_at"), "started_at")
    if started is None:
        raise CallRecordError("field 'started_at' is missing")
    ended = _when(data.get("ended_at"), "ended_at")
    turns = [t for t in data.get("turns") or [] if isinstance(t, dict)]
    outcome = str(data.get("outcome") or "")
    ticket = str(data.get("ticket") or "")
    local = started.astimezone(ZoneInfo(timezone))
    kind, topic, district = _classify(store, data, ticket, turns)
    satisfaction = data.get("satisfaction")
    wait = data.get("seat_wait_s")
    kept = {k: v for k, v in data.items() if k != "caller"}
    kept["caller"] = mask_phone(str(data.get("caller") or ""))
    row = CallRow(
        call_id=call_id[:100],
        caller=mask_phone(str(data.get("caller") or ""))[:40],
        started_at=started,
        ended_at=ended,
        local_day=local.strftime("%Y-%m-%d"),
        local_hour=local.hour,
        answered_ms=float(data.get("answered_ms") or 0.0),
        outcome=outcome[:20],
        handled_by=handled_by(outcome, turns, ticket),
        transfer_queue=str(data.get("transfer_queue") or "")[:40],
        ticket=ticket[:20],
        type=kind[:20],
        topic=topic[:100],
        district=district[:60],
        satisfaction=int(satisfaction) if satisfaction in (1, 2, 3, "1", "2", "3") else None,
        seat_wait_s=float(wait) if isinstance(wait, int | float) else None,
        record=json.loads(json.dumps(kept, default=str)),
    )
    try:
        with store.writing() as s:
            if s.scalar(select(CallRow.id).where(CallRow.call_id == row.call_id)) is not None:
                return False
            s.add(row)
            for seq, turn in enumerate(turns):
                after = turns[seq + 1] if seq + 1 < len(turns) else {}
                s.add(CallTurnRow(
                    call_id=row.call_id, seq=seq, started_at=started,
                    text=str(turn.get("text") or "")[:2000],
                    intent=str(turn.get("intent") or "")[:20],
                    kb_id=str(turn.get("kb_id") or "")[:64] if turn.get("answered") else "",
                    kb_confidence=float(turn.get("kb_confidence") or 0.0),
                    unanswered=bool(turn.get("unanswered")),
                    followed_by_human=bool(turn.get("answered")) and after.get("intent") == "human",
                ))  # fmt: skip
    except IntegrityError:  # another node stored it at the same moment
        return False
    return True


def _classify(
    store: Any, data: dict[str, Any], ticket: str, turns: list[dict[str, Any]]
) -> tuple[str, str, str]:
    kind, topic, district = (str(data.get(k) or "") for k in ("type", "topic", "district"))
    if ticket and not (kind and topic and district):
        with store.reading() as s:
            row = s.scalar(select(TicketRow).where(TicketRow.number == ticket))
        if row is not None:
            kind = kind or row.type
            topic = topic or row.topic
            address = (row.elements or {}).get("address") or {}
            district = district or str(address.get("district") or "")
    answered = [t.get("kb_id") for t in turns if t.get("answered") and t.get("kb_id")]
    if answered and not ticket:
        kind = kind or "consultation"
        if not topic:
            with store.reading() as s:
                data_row = s.scalar(
                    select(KbEntryVersionRow.data)
                    .where(KbEntryVersionRow.entry_id == answered[0])
                    .order_by(KbEntryVersionRow.revision.desc())
                    .limit(1)
                )
            topic = str((data_row or {}).get("topic") or "")
    return kind, topic, district


def import_records(store: Any, folder: Path, timezone: str = "Asia/Shanghai") -> ImportResult:
    result = ImportResult()
    for path in sorted(folder.rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise CallRecordError("expected a JSON object")
            if record_call(store, record, timezone):
                result.imported += 1
            else:
                result.known += 1
        except (OSError, ValueError) as exc:
            result.errors.append(f"{path}: {exc}")
    return result


def count_calls(store: Any) -> int:
    with store.reading() as s:
        return int(s.scalar(select(func.count(CallRow.id))) or 0)
