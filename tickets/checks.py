"""Start-up checks of the ticket store and the seat queue (``hotline check``, ``run``)."""

from __future__ import annotations

from hotline.checks import (
    CONNECT_TIMEOUT_S,
    Caution,
    first_line,
    ping_redis,
    shown,
)
from hotline.cli import CommandError, ServiceUnreachable
from hotline.settings import Settings


def check_database(settings: Settings) -> str:
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    from tickets.db import current_revision, default_database_url, head_revision, make_engine

    url = settings.tickets.database_url or default_database_url(settings.data_dir)
    where = f"tickets.database_url {shown(url)}"
    try:
        engine = make_engine(url, connect_timeout_s=CONNECT_TIMEOUT_S)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise CommandError(
            f"{where} is not a database URL this installation can use ({first_line(exc)}):"
            " write sqlite:///path/tickets.db or postgresql://user:password@host/dbname"
        ) from exc
    except OSError as exc:  # SQLite's folder cannot be made
        raise CommandError(f"{where}: {exc.strerror or exc}: name a writable path") from exc
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        cause = first_line(getattr(exc, "orig", None) or exc)
        if engine.url.get_backend_name() == "sqlite":
            raise CommandError(
                f"{where} cannot be opened as a database ({cause}): name a writable SQLite file"
            ) from exc
        raise ServiceUnreachable(
            f"{where} does not answer ({cause}): start the database or correct the URL"
        ) from exc
    finally:
        engine.dispose()
    head = head_revision()
    if revision is not None and not known_revision(revision):
        raise CommandError(
            f"{where}: its schema is at revision {revision}, which this version of hotline"
            " does not know (a newer version migrated it): run that version, or restore a"
            " backup taken before the upgrade"
        )
    if revision != head:  # not a warning: every start migrates
        return (
            f"{shown(url)} answers; schema at {revision or 'nothing'}, newest {head}:"
            " 'hotline run' and 'hotline tickets migrate' upgrade it"
        )
    return f"{shown(url)} answers, schema is up to date"


def known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError as AlembicError

    from tickets.db import MIGRATIONS_DIR

    try:
        return ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(revision) is not None
    except AlembicError:
        return False


def check_seat_queue(settings: Settings, *, embedded_allowed: bool = True) -> str:
    cfg = settings.tickets
    setting = "tickets.redis_url"
    why = ping_redis(cfg.redis_url, setting)
    if cfg.embedded_redis == "always" and embedded_allowed:
        return _embedded_redis_note(settings, "tickets.embedded_redis is always")
    if not why:
        return f"{shown(cfg.redis_url)} answers"
    if cfg.embedded_redis == "auto" and embedded_allowed:
        return _embedded_redis_note(settings, f"{shown(cfg.redis_url)} does not answer")
    fix = "start Redis there or correct the URL"
    if embedded_allowed:
        fix += " (or set tickets.embedded_redis: auto to let hotline start its own)"
    raise ServiceUnreachable(
        f"{setting} {shown(cfg.redis_url)} does not answer ({why}): the seat queue and the"
        f" call journal need it; {fix}"
    )


def _embedded_redis_note(settings: Settings, reason: str) -> str:
    from tickets.redis_embedded import redis_binary

    redis_binary()  # raises the one-line EmbeddedRedisError when there is none
    return Caution(f"{reason}: a private Redis is started in {settings.data_dir / 'redis'}")
