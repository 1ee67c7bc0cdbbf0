"""承办单位 as users: a department user's unit, 协办 departments, 延期 requests and the
files a department sends with its 反馈

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tickets.models import UTCDateTime

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN works in place on both backends; the server default fills existing rows.
    op.add_column(
        "users", sa.Column("department", sa.String(40), nullable=False, server_default="")
    )
    op.add_column("tickets", sa.Column("extension_request", sa.JSON(), nullable=True))
    op.create_table(
        "ticket_assists",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
    )
    op.create_index("ix_ticket_assists_ticket_id", "ticket_assists", ["ticket_id"])
    op.create_index("ix_ticket_assists_department", "ticket_assists", ["department"])
    op.create_table(
        "ticket_attachments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("author", sa.String(80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_ticket_attachments_ticket_id", "ticket_attachments", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("ticket_attachments")
    op.drop_table("ticket_assists")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("extension_request")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("department")
