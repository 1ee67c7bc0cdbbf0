"""Start-up checks: what ``hotline run`` verifies before it accepts its first call, and
what ``hotline check`` prints as a table. The checks of what every part shares (the data
folder, ports, the journal's Redis) and the machinery live here; each package checks its
own part (``tickets.checks``, ``bot.checks``, ``ivr.checks``), since ``hotline`` imports
no other package of the project.

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
        return first_line(exc)
    finally:
        client.close()
    return ""


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


def first_line(exc: object) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ---- running them ----


def run_checks(settings: Settings, checks: dict[str, Callable[[Settings], str]]) -> list[Finding]:
    """Every check, failures included (``hotline check``); settings that do not load
    never get here (one line, exit 2), so their row only says where they came from."""
    from hotline.settings import config_path

    source = config_path()
    loaded = f"{source} and HOTLINE_* variables" if source else "HOTLINE_* variables, defaults"
    findings = [Finding("settings", "ok", loaded)]
    for name, check in checks.items():
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
