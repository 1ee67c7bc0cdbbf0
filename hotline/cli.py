"""The ``hotline`` command. Each package adds its own subcommands in ``<package>/cli.py``.

Every command prints one clear line for a failure and exits non-zero; no traceback
reaches an administrator's terminal unless ``hotline --debug`` asks for it. Exit status:
0 done, 1 the command found problems (``lint-asterisk``, a drill that lost calls) or failed
unexpectedly (a bug: ``--debug`` shows where), 2 bad input (a setting, a file, an
argument), 3 a service it needs does not answer (database, Redis), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

# Packages that contribute commands: each module has register(commands, bench).
COMMAND_MODULES = (
    "asr.cli",
    "bot.cli",
    "voice.cli",
    "ops.run",
    "ivr.tts_bench",
    "tickets.cli",
    "console.cli",
    "manage.cli",
    "ops.cli",
    "ops.clips",
)

EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3


WHERE_TO_START = """\
where to start:
  hotline demo          everything on this machine (embedded Redis, SQLite, sipp as
                        Asterisk), under a minute: three Mandarin calls at once (answered,
                        work order, put through to a person), then the console and logins
  hotline run           answer calls for Asterisk; settings from ./hotline.yaml or
                        HOTLINE_CONFIG (example: config/hotline.example.yaml), else
                        defaults: SIP on 127.0.0.1:5070, no registration, no AMI
  hotline console       the operators' and managers' web console (127.0.0.1:8345)
  hotline COMMAND -h    a command's options
docs: README.md and docs/ (telephony, deploy, asr, voice, bot, tickets, manager, security)"""


class CommandError(Exception):
    """A user-facing failure: printed as 'hotline: <message>', exit status 2 by default."""

    exit_status = EXIT_BAD_INPUT

    def __init__(self, message: str, exit_status: int | None = None) -> None:
        super().__init__(message)
        if exit_status is not None:
            self.exit_status = exit_status


class ServiceUnreachable(CommandError):
    """A service the command needs (database, Redis) does not answer: exit status 3."""

    exit_status = EXIT_UNREACHABLE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotline",
        description="12345 hotline voice bot",
        epilog=WHERE_TO_START,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the epilog's lines
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of a failure"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench_parser = commands.add_parser("bench", help="benchmarks that print JSON")
    bench = bench_parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        return _report(exc, args.debug)
    return int(result or 0)


def _report(exc: Exception, debug: bool) -> int:
    """One line on stderr for ``exc``; the exit status it deserves."""
    from hotline.logs import mask_text

    status, message = explain(exc)
    if status == EXIT_UNEXPECTED and not debug:
        message += " (run 'hotline --debug ...' to see where)"
    print(f"hotline: {mask_text(_one_line(message))}", file=sys.stderr)
    return status


def _one_line(message: str) -> str:
    return " ".join(message.split())


def explain(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, CommandError):
        return int(getattr(exc, "exit_status", EXIT_BAD_INPUT)), str(exc)
    if _is_user_error(exc):
        return EXIT_BAD_INPUT, str(exc)
    unreachable = _unreachable_service(exc)
    if unreachable:
        return EXIT_UNREACHABLE, unreachable
    if isinstance(exc, OSError) and exc.filename:  # a path from a setting or an argument
        return EXIT_BAD_INPUT, f"{exc.filename}: {exc.strerror or exc}"
    return EXIT_UNEXPECTED, f"unexpected {type(exc).__name__}: {exc}"


def _unreachable_service(exc: Exception) -> str:
    """A database or Redis that went away after the start-up checks passed."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return f"Redis does not answer: {exc} (is redis-server running? see tickets.redis_url)"
    if isinstance(exc, OperationalError | InterfaceError):
        cause = str(exc.orig or exc).strip().splitlines()[0]
        return f"the database does not answer: {cause} (see tickets.database_url)"
    return ""


def _is_user_error(exc: Exception) -> bool:
    from hotline.errors import UserFacingError

    return isinstance(exc, UserFacingError)


if __name__ == "__main__":
    # ``python -m hotline.cli``: run the importable module's main, so CommandError raised by
    # other packages (``from hotline.cli import CommandError``) is the class caught here.
    from hotline.cli import main as _main

    sys.exit(_main())
