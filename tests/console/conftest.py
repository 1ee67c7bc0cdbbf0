from tests.tickets.support import (  # noqa: F401  (fixtures)
    database_url,
    key_prefix,
    pg_server_url,
    queue,
    redis_server,
    service,
    settings,
    sqlite_url,
    store,
)
