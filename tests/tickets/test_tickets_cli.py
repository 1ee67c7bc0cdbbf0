"""The commands: users, migrations, reconcile, and the embedded Redis fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command

from hotline.cli import main
from hotline.settings import load_settings
from tickets.db import alembic_config, current_revision, head_revision, make_engine
from tickets.redis_embedded import reachable, redis_url_for


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HOTLINE_CONFIG", raising=False)
    return tmp_path


def test_users_add_list_and_clear_errors(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "users",
                "add",
                "li",
                "--role",
                "manager",
                "--password",
                "long-enough-1",
                "--seat",
                "seat-101",
                "--skills",
                "general,real_estate",
            ]
        )
        == 0
    )
    assert main(["users", "list"]) == 0
    out = capsys.readouterr().out
    assert "li\tmanager\tseat-101\tgeneral,real_estate" in out
    # The old form: digits name telephony_config's endpoint, so pops and calls find it.
    assert main(["users", "add", "ma", "--password", "long-enough-1", "--extension", "102"]) == 0
    assert main(["users", "list"]) == 0
    out = capsys.readouterr().out
    assert "endpoint seat-102 (use --seat)" in out and "ma\toperator\tseat-102\t" in out
    # An operator added with the docs' old --extension 8001 (no such endpoint) is moved.
    assert main(["users", "seat", "li", "seat-103"]) == 0
    assert main(["users", "seat", "nobody", "seat-104"]) == 2
    assert main(["users", "list"]) == 0
    assert "li\tmanager\tseat-103\t" in capsys.readouterr().out
    assert main(["users", "add", "li", "--password", "long-enough-1"]) == 2
    assert main(["users", "add", "wu", "--password", "short"]) == 2
    err = capsys.readouterr().err
    assert "已存在" in err and "至少 8 位" in err and "Traceback" not in err
    assert main(["users", "passwd", "nobody", "--password", "long-enough-1"]) == 2
    assert (data_dir / "tickets.db").exists()


def test_migrations_go_down_and_up_again(data_dir: Path) -> None:
    assert main(["tickets", "migrate"]) == 0
    engine = make_engine(f"sqlite:///{data_dir / 'tickets.db'}")
    assert current_revision(engine) == head_revision()
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert current_revision(engine) is None
    assert main(["tickets", "migrate"]) == 0
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_console_starts_its_own_redis_when_none_answers(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_TICKETS__REDIS_URL", "redis://127.0.0.1:1/0")
    settings = load_settings()
    with redis_url_for(settings) as url:
        assert url != "redis://127.0.0.1:1/0" and reachable(url)
    assert not reachable(url)  # stopped with the command
    monkeypatch.setenv("HOTLINE_TICKETS__EMBEDDED_REDIS", "never")
    with redis_url_for(load_settings()) as url:
        assert url == "redis://127.0.0.1:1/0"  # as configured, even if down
