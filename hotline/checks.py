"""Start-up checks: what ``hotline run`` verifies before it accepts its first call, and
what ``hotline check`` prints as a table.

A controller that starts with a broken setting fails later, mid-call, with a traceback
(or worse, takes calls it cannot keep safe: no journal, no seat queue). Each check here
either passes with a short note or raises :class:`~hotline.cli.CommandError` carrying
one line: the setting, its value (secrets masked), what is wrong and the fix; its exit
status is 2 for bad input, 3 for a service that does not answer.
"""

from __future__ import annotations

import errno
import logging
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hotline.cli import EXIT_UNREACHABLE, CommandError, ServiceUnreachable, explain
from hotline.logs import mask_text
from hotline.settings import Settings

log = logging.getLogger("hotline")
CONNECT_TIMEOUT_S = 3.0

Status = Literal["ok", "warn", "bad", "down"]


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str


class Caution(str):
    """A passing check's note the administrator must read: the controller will run
    degraded (as configured) or do something on its own (start a private Redis)."""


def shown(value: Any) -> str:
    """A setting's value as an error line may show it: credentials in URLs masked."""
    return mask_text(str(value))


# ---- folders ----


def check_data_dir(settings: Settings) -> str:
    folder = settings.data_dir
    where = f"data_dir {shown(folder)}"
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{where} is a file, not a folder: name a folder (it is created)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A real write: a read-only mount or a folder owned by someone else passes mkdir.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hotline-check-"):
            pass
    except OSError as exc:
        raise CommandError(
            f"{where} is not writable ({exc.strerror or exc}): recordings, the draft spool"
            " and SQLite live there; name a folder this user may write"
        ) from exc
    return f"{folder} is writable"


# ---- database ----


def check_database(settings: Settings) -> str:
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    from tickets.db import current_revision, default_database_url, head_revision, make_engine

    url = settings.tickets.database_url or default_database_url(settings.data_dir)
    where = f"tickets.database_url {shown(url)}"
    try:
        engine = make_engine(url, connect_timeout_s=CONNECT_TIMEOUT_S)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise CommandError(
            f"{where} is not a database URL this installation can use ({_first_line(exc)}):"
            " write sqlite:///path/tickets.db or postgresql://user:password@host/dbname"
        ) from exc
    except OSError as exc:  # SQLite's folder cannot be made
        raise CommandError(f"{where}: {exc.strerror or exc}: name a writable path") from exc
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        cause = _first_line(getattr(exc, "orig", None) or exc)
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


# ---- Redis ----


def ping_redis(url: str, setting: str) -> str:
    """'' when Redis at ``url`` answers, else why not; a malformed URL raises."""
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
        )
    except ValueError as exc:
        raise CommandError(
            f"{setting} {shown(url)} is not a Redis URL ({exc}): write"
            " redis://[:password@]host:6379/0"
        ) from exc
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise CommandError(
            f"{setting} {shown(url)}: Redis refuses the password ({exc}): correct it in the URL"
        ) from exc
    except (redis.RedisError, OSError) as exc:
        return _first_line(exc)
    finally:
        client.close()
    return ""


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


def check_journal(settings: Settings) -> str:
    """The write-ahead call journal (crash safety of live calls)."""
    url = settings.ivr.redis_url
    if not url:
        return Caution(
            "ivr.redis_url is empty: NO call journal, a controller crash loses the calls in"
            " progress and their work orders (degraded, as configured)"
        )
    if url == settings.tickets.redis_url:
        return "shares the seat queue's Redis"
    why = ping_redis(url, "ivr.redis_url")
    if why:
        raise ServiceUnreachable(
            f"ivr.redis_url {shown(url)} does not answer ({why}): the call journal keeps live"
            " calls safe across a crash; start Redis there, correct the URL, or set it to the"
            " same URL as tickets.redis_url"
        )
    return f"{shown(url)} answers"


# ---- ports ----


SIP_PORT = "sip.bind_host/sip.bind_port (UDP)"
SIP_PORT_HINT = "; a second controller on this machine: `hotline run --port N`"


def check_sip_port(settings: Settings) -> str:
    sip = settings.sip
    _bind(socket.SOCK_DGRAM, sip.bind_host, sip.bind_port, SIP_PORT, hint=SIP_PORT_HINT)
    return f"UDP {sip.bind_host}:{sip.bind_port} is free"


def check_metrics_port(settings: Settings) -> str:
    obs = settings.observability
    if not obs.metrics_port:
        return "observability.metrics_port is 0: no exporter"
    where = "observability.metrics_host/metrics_port (TCP)"
    _bind(socket.SOCK_STREAM, obs.metrics_host, obs.metrics_port, where)
    return f"TCP {obs.metrics_host}:{obs.metrics_port} is free"


def check_console_port(settings: Settings) -> str:
    con = settings.console
    _bind(socket.SOCK_STREAM, con.host, con.port, "console.host/console.port (TCP)")
    return f"TCP {con.host}:{con.port} is free"


def _bind(kind: socket.SocketKind, host: str, port: int, setting: str, hint: str = "") -> None:
    try:
        family = socket.getaddrinfo(host, port, type=kind)[0][0]
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:  # as the HTTP server does: TIME_WAIT is no user
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise port_error(setting, host, port, exc, hint) from exc


def port_error(setting: str, host: str, port: int, exc: OSError, hint: str = "") -> CommandError:
    """One line for a port that cannot be bound (``setting`` names where it was chosen);
    ``hint`` is added when the port is taken."""
    in_use = exc.errno == errno.EADDRINUSE
    return CommandError(f"{setting} {host}:{port}: {_bind_problem(exc)}{hint if in_use else ''}")


def _bind_problem(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "already in use by another program: stop it or choose another port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "no such address on this machine: use one of its addresses, or 0.0.0.0"
    if exc.errno == errno.EACCES:
        return "needs privileges (ports below 1024): choose a port above 1023"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror}): use an address or a name this machine resolves"
    return f"{exc.strerror or exc}: choose another address or port"


# ---- AMI and bot data ----


def check_ami(settings: Settings) -> str:
    from ivr.ami import AmiError, parse_url

    if not settings.ami.url:
        return "ami.url is empty: no AMI (no transfers to seats, no screen pops)"
    try:
        parts = parse_url(settings.ami.url)
    except AmiError as exc:
        raise CommandError(
            f"ami.url {shown(settings.ami.url)} is not an AMI URL: write"
            " ami://user:secret@host:5038 (the user and secret of manager.conf)"
        ) from exc
    return f"{parts['host']}:{parts['port']} as {parts['username']}"


def check_bot_data(settings: Settings) -> str:
    """The knowledge base, menu and prompts load (a missing or broken file is named)."""
    from bot.kb import KnowledgeBaseError, load_kb
    from bot.menu import load_menu
    from bot.prompts import load_prompts

    bot = settings.bot
    optional_files = {"bot.cues": bot.cues, "bot.gazetteer": bot.gazetteer,
                      "bot.synonyms": bot.synonyms}  # fmt: skip
    for setting, path in optional_files.items():
        if path is not None and not Path(path).is_file():
            raise CommandError(f"{setting} {path}: file not found: correct the path or remove it")
    if bot.corpus is not None and not Path(bot.corpus).is_dir():
        raise CommandError(f"bot.corpus {bot.corpus}: folder not found: correct it or remove it")
    try:
        kb = load_kb(bot.kb) if bot.kb is not None else None
    except KnowledgeBaseError as exc:
        raise CommandError(f"bot.kb: {exc}: correct the path or the file") from exc
    load_menu(bot.menu)  # MenuError / PromptsError: one line naming the file and the place
    load_prompts(bot.prompts)
    entries = f"{len(kb.entries)} knowledge-base entries" if kb else "sample knowledge base"
    return f"{entries}; menu and prompts load"


def _first_line(exc: object) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ---- running them ----

# What ``hotline run`` needs, in the order a fix is most useful.
RUN_CHECKS: dict[str, Callable[[Settings], str]] = {
    "data folder": check_data_dir,
    "database": check_database,
    "seat queue (Redis)": check_seat_queue,
    "call journal (Redis)": check_journal,
    "SIP port": check_sip_port,
    "metrics port": check_metrics_port,
    "AMI": check_ami,
    "bot data": check_bot_data,
}


def run_checks(settings: Settings) -> list[Finding]:
    """Every check, failures included (``hotline check``); settings that do not load
    never get here (one line, exit 2), so their row only says where they came from."""
    from hotline.settings import config_path

    source = config_path()
    loaded = f"{source} and HOTLINE_* variables" if source else "HOTLINE_* variables, defaults"
    findings = [Finding("settings", "ok", loaded)]
    for name, check in RUN_CHECKS.items():
        try:
            note = check(settings)
        except Exception as exc:  # the table shows every failure, as the command would
            code, message = explain(exc)
            status: Status = "down" if code == EXIT_UNREACHABLE else "bad"
            findings.append(Finding(name, status, mask_text(message)))
            continue
        findings.append(Finding(name, "warn" if isinstance(note, Caution) else "ok", note))
    return findings


def require(settings: Settings, *checks: Callable[[Settings], str]) -> None:
    """Run ``checks`` in order; the first failure raises its one-line CommandError. A
    caution is logged as a warning: the administrator must see it, and it stops nothing."""
    for check in checks:
        note = check(settings)
        if isinstance(note, Caution):
            log.warning("start-up check: %s", note)


def exit_status(findings: list[Finding]) -> int:
    """2 when a setting is wrong (fix that first), else 3 when a service is down, else 0."""
    statuses = {f.status for f in findings}
    return 2 if "bad" in statuses else 3 if "down" in statuses else 0


def table(findings: list[Finding]) -> str:
    width = max(len(f.check) for f in findings)
    rows = [f"{'CHECK'.ljust(width)}  STATUS  DETAIL"]
    rows += [f"{f.check.ljust(width)}  {f.status.ljust(6)}  {f.detail}" for f in findings]
    return "\n".join(rows)
