"""call ids as long as SIP allows: a Call-ID has no length limit in RFC 3261 and the SIP
receive path accepts header lines up to 2,048 characters (ivr.sip.MAX_HEADER_LINE), so
varchar(100) lost the work order of a call with a longer one on PostgreSQL (SQLite does
not enforce lengths, which is why only PostgreSQL failed)

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("tickets", "calls", "call_turns")


def upgrade() -> None:
    _resize(sa.String(100), sa.String(2048))


def downgrade() -> None:
    _resize(sa.String(2048), sa.String(100))


def _resize(old: sa.String, new: sa.String) -> None:
    # SQLite does not enforce the length, but the declared schema should still match the
    # models; batch mode rebuilds its tables (indexes included), PostgreSQL alters in place.
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("call_id", type_=new, existing_type=old, existing_nullable=False)
