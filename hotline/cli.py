"""The ``hotline`` command. Each package adds its own subcommands in ``<package>/cli.py``.

Every command prints a clear one-line error and exits non-zero on bad input; no
traceback reaches a manager's terminal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Packages that contribute commands: each module has register(commands, bench).
COMMAND_MODULES = (
    "asr.cli",
    "bot.cli",
    "ivr.cli",
    "tickets.cli",
    "console.cli",
    "manage.cli",
    "ops.cli",
)


WHERE_TO_START = """\
where to start:
  hotline demo          everything on this machine (embedded Redis, SQLite, sipp as
                        Asterisk): three Mandarin calls, then the console with demo logins
  hotline run           answer calls for Asterisk; settings from ./hotline.yaml or
                        HOTLINE_CONFIG (example: config/hotline.example.yaml), else
                        defaults: SIP on 127.0.0.1:5070, no registration, no AMI
  hotline console       the operators' and managers' web console (127.0.0.1:8345)
  hotline COMMAND -h    a command's options
docs: README.md and docs/ (telephony, deploy, asr, bot, tickets, manager, security)"""


class CommandError(Exception):
    """A user-facing failure: printed as 'hotline: <message>', exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotline",
        description="12345 hotline voice bot",
        epilog=WHERE_TO_START,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the epilog's lines
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
    except Exception as exc:  # user-facing errors from any package
        if _is_user_error(exc):
            print(f"hotline: {exc}", file=sys.stderr)
            return 2
        raise
    return int(result or 0)


def _is_user_error(exc: Exception) -> bool:
    from asr.base import AsrError
    from bot.brain import BOT_DATA_ERRORS
    from bot.evaluate import EvalError
    from hotline.audio.wav import AudioFormatError
    from hotline.cli import CommandError as ImportedCommandError  # also under python -m
    from hotline.settings import SettingsError
    from manage.config import ConfigError
    from tickets.redis_embedded import EmbeddedRedisError

    known = (
        CommandError,
        ImportedCommandError,
        AsrError,
        AudioFormatError,
        SettingsError,
        EvalError,
        ConfigError,
        EmbeddedRedisError,
        *BOT_DATA_ERRORS,
    )
    return isinstance(exc, known)


if __name__ == "__main__":
    # ``python -m hotline.cli``: run the importable module's main, so CommandError raised by
    # other packages (``from hotline.cli import CommandError``) is the class caught here.
    from hotline.cli import main as _main

    sys.exit(_main())
