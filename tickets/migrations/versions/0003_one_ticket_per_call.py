"""one work order per call: a unique call id (filing is idempotent, so a retry, a spooled
draft filed later or an orphan recovered after a crash never make a second one)

Revision ID: 0003
Revises: 0002
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)


def upgrade() -> None:
    duplicated = op.get_bind().execute(sa.text(
        "SELECT call_id FROM tickets WHERE call_id != '' GROUP BY call_id HAVING COUNT(*) > 1"
    )).first()  # fmt: skip
    if duplicated is not None:
        # Older databases may hold a call filed twice; those stay as they are (an operator
        # merges them as duplicates), and the store's own check still prevents new ones.
        log.warning("tickets: a call id is on more than one work order; the unique index "
                    "on call_id is not created")  # fmt: skip
        return
    op.create_index(
        "ux_tickets_call_id", "tickets", ["call_id"], unique=True,
        sqlite_where=sa.text("call_id != ''"), postgresql_where=sa.text("call_id != ''"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ux_tickets_call_id", table_name="tickets", if_exists=True)
