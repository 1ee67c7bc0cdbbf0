"""managers' data: configuration versions, knowledge-base revisions, prompt recordings,
call records and turns

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tickets.models import UTCDateTime

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
    )
    op.create_index(
        "ux_config_versions_kind_version", "config_versions", ["kind", "version"], unique=True
    )
    op.create_table(
        "kb_entry_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("author", sa.String(length=80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
    )
    op.create_index("ix_kb_entry_versions_entry_id", "kb_entry_versions", ["entry_id"])
    op.create_index(
        "ux_kb_entry_revision", "kb_entry_versions", ["entry_id", "revision"], unique=True
    )
    op.create_table(
        "prompt_recordings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("prompt_id", sa.String(length=64), nullable=False),
        sa.Column("wav", sa.LargeBinary(), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_prompt_recordings_prompt_id", "prompt_recordings", ["prompt_id"])
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.String(length=100), nullable=False, unique=True),
        sa.Column("caller", sa.String(length=40), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("local_day", sa.String(length=10), nullable=False),
        sa.Column("local_hour", sa.Integer(), nullable=False),
        sa.Column("answered_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("handled_by", sa.String(length=20), nullable=False),
        sa.Column("transfer_queue", sa.String(length=40), nullable=False),
        sa.Column("ticket", sa.String(length=20), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("district", sa.String(length=60), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("seat_wait_s", sa.Float(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_local_day", "calls", ["local_day"])
    op.create_index("ix_calls_ticket", "calls", ["ticket"])
    op.create_table(
        "call_turns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(length=20), nullable=False),
        sa.Column("kb_id", sa.String(length=64), nullable=False),
        sa.Column("kb_confidence", sa.Float(), nullable=False),
        sa.Column("unanswered", sa.Boolean(), nullable=False),
        sa.Column("followed_by_human", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_call_turns_call_id", "call_turns", ["call_id"])
    op.create_index("ix_call_turns_started_at", "call_turns", ["started_at"])
    op.create_index("ix_call_turns_kb_id", "call_turns", ["kb_id"])


def downgrade() -> None:
    for table in (
        "call_turns",
        "calls",
        "prompt_recordings",
        "kb_entry_versions",
        "config_versions",
    ):
        op.drop_table(table)
