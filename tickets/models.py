"""SQL tables of the ticket record (SQLAlchemy 2, typed). Migrations: tickets/migrations.

Caller and five-element details are kept whole as JSON (they grow with the bot), with the
columns that searches and duplicate checks need copied out and indexed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    event,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ticket store; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# As long as a SIP Call-ID the controller accepts (a header line of up to 2,048 characters,
# ivr.sip.MAX_HEADER_LINE); migration 0004 widened it from 100.
CALL_ID_MAX = 2048


class Base(DeclarativeBase):
    pass


class TicketRow(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), index=True)
    type: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str] = mapped_column(String(100), default="")
    department: Mapped[str] = mapped_column(String(100), default="")
    urgency: Mapped[str] = mapped_column(String(20), default="normal")
    skill: Mapped[str] = mapped_column(String(40), default="general")
    caller: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    elements: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Copies for search and duplicate checks (kept in step by tickets.store).
    caller_number: Mapped[str] = mapped_column(String(40), default="", index=True)
    callback_number: Mapped[str] = mapped_column(String(40), default="", index=True)
    place_key: Mapped[str] = mapped_column(String(200), default="")
    search_text: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    handover_reason: Mapped[str] = mapped_column(Text, default="")
    kb_answers: Mapped[list[str]] = mapped_column(JSON, default=list)
    caller_words: Mapped[list[str]] = mapped_column(JSON, default=list)
    call_id: Mapped[str] = mapped_column(String(CALL_ID_MAX), default="", index=True)
    call_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    call_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    menu_path: Mapped[list[str]] = mapped_column(JSON, default=list)
    dtmf: Mapped[str] = mapped_column(String(100), default="")
    transcript: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    recording_path: Mapped[str] = mapped_column(String(500), default="")
    callback_promised: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    assigned_to: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    seat: Mapped[str | None] = mapped_column(String(40), nullable=True)
    duplicate_of: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    department_reply: Mapped[str] = mapped_column(Text, default="")
    follow_up_result: Mapped[str] = mapped_column(Text, default="")
    satisfaction: Mapped[str] = mapped_column(String(20), default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A 承办单位's pending 延期 request {days, reason, by, at}; None when none waits
    # (migration 0005).
    extension_request: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )

    __table_args__ = (
        Index("ix_tickets_topic_place", "topic", "place_key"),
        # One work order per call (migration 0003); calls without an id are not keyed.
        Index("ux_tickets_call_id", "call_id", unique=True,
              sqlite_where=text("call_id != ''"), postgresql_where=text("call_id != ''")),
    )  # fmt: skip


class TicketAssistRow(Base):
    """A 协办 department of a work order (the 主办 is ``tickets.department``); replaced
    on each 转办 (migration 0005)."""

    __tablename__ = "ticket_assists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    department: Mapped[str] = mapped_column(String(100), index=True)


class TicketAttachmentRow(Base):
    """A file a 承办单位 sent with its 反馈 (a photo of the repaired road, a letter)."""

    __tablename__ = "ticket_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    author: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TicketEventRow(Base):
    """The append-only history: who did what when. Never updated, never deleted."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str] = mapped_column(String(20), default="")
    to_status: Mapped[str] = mapped_column(String(20), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@event.listens_for(TicketEventRow, "before_update")
@event.listens_for(TicketEventRow, "before_delete")
def _history_is_append_only(mapper: Any, connection: Any, target: TicketEventRow) -> None:
    raise PermissionError("ticket history is append-only")


class TicketCounterRow(Base):
    """Per-day sequence behind human-readable numbers (20261122-0042)."""

    __tablename__ = "ticket_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(80), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    extension: Mapped[str] = mapped_column(String(40), default="")
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The 承办单位 (its code in tickets.departments) a department user works for.
    department: Mapped[str] = mapped_column(String(40), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SessionRow(Base):
    """A login: the browser or API client holds the token, we keep only its SHA-256."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # web | api
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# ---- managers' data (manage/): versioned configuration and call records ----


class ConfigVersionRow(Base):
    """One saved version of a whole configuration document (menu, prompts). Append-only:
    a rollback saves an old version's content again as the newest version."""

    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (Index("ux_config_versions_kind_version", "kind", "version", unique=True),)


class KbEntryVersionRow(Base):
    """One revision of one knowledge-base entry (edits and retirements are new rows)."""

    __tablename__ = "kb_entry_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(64), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (Index("ux_kb_entry_revision", "entry_id", "revision", unique=True),)


class PromptRecordingRow(Base):
    """A manager's recording of a named prompt (8 kHz 16-bit mono WAV), newest wins."""

    __tablename__ = "prompt_recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt_id: Mapped[str] = mapped_column(String(64), index=True)
    wav: Mapped[bytes] = mapped_column(LargeBinary)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    author: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CallRow(Base):
    """One call as the figures need it (the full JSON record is kept in ``record``)."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(CALL_ID_MAX), unique=True)
    caller: Mapped[str] = mapped_column(String(40), default="")  # masked
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    local_day: Mapped[str] = mapped_column(String(10), index=True)
    local_hour: Mapped[int] = mapped_column(Integer)
    answered_ms: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(20), default="")
    handled_by: Mapped[str] = mapped_column(String(20), default="")  # bot | person | abandoned
    transfer_queue: Mapped[str] = mapped_column(String(40), default="")
    ticket: Mapped[str] = mapped_column(String(20), default="", index=True)
    type: Mapped[str] = mapped_column(String(20), default="")
    topic: Mapped[str] = mapped_column(String(100), default="")
    district: Mapped[str] = mapped_column(String(60), default="")
    satisfaction: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seat_wait_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CallTurnRow(Base):
    """One caller turn and the bot's decision on it: what the knowledge-base pages read."""

    __tablename__ = "call_turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(CALL_ID_MAX), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    intent: Mapped[str] = mapped_column(String(20), default="")
    kb_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    kb_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    unanswered: Mapped[bool] = mapped_column(Boolean, default=False)
    followed_by_human: Mapped[bool] = mapped_column(Boolean, default=False)
