"""Migration 0005 (承办单位 as users) on a database that already holds accounts, on SQLite
and PostgreSQL: up keeps them (with no unit), down and up again work."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from tickets.db import alembic_config, current_revision, head_revision, make_engine


def _to(url: str, revision: str, down: bool = False) -> None:
    engine = make_engine(url)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)
    engine.dispose()


def test_0005_keeps_existing_accounts_and_goes_down_and_up(database_url: str) -> None:
    _to(database_url, "0004")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (username, display_name, password_hash, role, extension,"
                " skills, active, created_at) VALUES ('old-op', '老话务员', 'x', 'operator',"
                " '8009', '[]', :yes, :now)"
            ),
            {"yes": True, "now": "2026-11-01 08:00:00"},
        )
    _to(database_url, "head")
    assert current_revision(engine) == head_revision() == "0005"
    with engine.connect() as connection:
        found = connection.execute(text("SELECT department FROM users")).scalar_one()
    assert found == ""
    tables = set(inspect(engine).get_table_names())
    assert {"ticket_assists", "ticket_attachments"} <= tables
    engine.dispose()
    _to(database_url, "0004", down=True)
    engine = make_engine(database_url)
    assert "ticket_assists" not in set(inspect(engine).get_table_names())
    assert "department" not in {c["name"] for c in inspect(engine).get_columns("users")}
    engine.dispose()
    _to(database_url, "head")
