import pytest

from tests.tickets.support import (  # noqa: F401  (fixtures)
    key_prefix,
    pg_server_url,
    queue,
    redis_server,
    service,
    settings,
    sqlite_url,
    store,
)


@pytest.fixture
def database_url(sqlite_url: str) -> str:  # noqa: F811
    """Operations tests are about processes, not SQL dialects: SQLite is enough here."""
    return sqlite_url
