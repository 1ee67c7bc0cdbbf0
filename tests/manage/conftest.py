from __future__ import annotations

from pathlib import Path

import pytest

from hotline.settings import Settings
from tests.tickets.support import (  # noqa: F401  (fixtures)
    database_url,
    key_prefix,
    make_settings,
    pg_server_url,
    queue,
    redis_server,
    service,
    sqlite_url,
    store,
)


@pytest.fixture
def settings(
    tmp_path: Path,
    database_url: str,  # noqa: F811
    redis_server: str,  # noqa: F811
    key_prefix: str,  # noqa: F811
) -> Settings:
    """Ticket settings plus the managers' parts: words-only bot (fast to rebuild), offline
    voice, prompts and config under the test's directory."""
    base = make_settings(tmp_path, database_url, redis_server, key_prefix)
    bot = base.bot.model_copy(update={"semantic": False})
    ivr = base.ivr.model_copy(update={"tts_engine": "espeak", "prompts_dir": tmp_path / "prompts"})
    return base.model_copy(update={"bot": bot, "ivr": ivr})
