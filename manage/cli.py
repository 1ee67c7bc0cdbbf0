"""``hotline menu validate FILE``, ``hotline calls import DIR``, ``hotline report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hotline.cli import CommandError


def register(commands: Any, bench: Any) -> None:
    menu = commands.add_parser("menu", help="the keypad menu: validate a menu file")
    sub = menu.add_subparsers(dest="menu_command", metavar="ACTION", required=True)
    validate = sub.add_parser("validate", help="check a menu file; non-zero exit on problems")
    validate.add_argument("file", help="menu YAML file")
    validate.set_defaults(handler=_validate)

    calls = commands.add_parser("calls", help="call records: import JSON records into SQL")
    csub = calls.add_subparsers(dest="calls_command", metavar="ACTION", required=True)
    imp = csub.add_parser("import", help="import <data_dir>/calls/**/*.json (idempotent)")
    imp.add_argument("dir", nargs="?", help="default: <data_dir>/calls")
    imp.set_defaults(handler=_import)

    report = commands.add_parser("report", help="figures of a day, week or month (CSV)")
    report.add_argument("--period", choices=["day", "week", "month"], default="day")
    report.add_argument("--date", help="a day in the period (YYYY-MM-DD); default: today")
    report.set_defaults(handler=_report)


def _validate(args: argparse.Namespace) -> int:
    from bot.menu import MenuError, menu_problems, read_menu_text

    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"menu {path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"menu {path}: cannot read it as UTF-8 text ({exc})") from exc
    try:
        raw = read_menu_text(text, str(path))
    except MenuError as exc:
        raise CommandError(str(exc)) from exc
    problems = menu_problems(raw)
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if problems:
        print(f"{path}: {len(problems)} problem(s); the menu cannot be used", file=sys.stderr)
        return 1
    print(f"{path}: menu is valid")
    return 0


def _import(args: argparse.Namespace) -> int:
    from hotline.checks import require
    from hotline.settings import load_settings
    from manage.calls import import_records
    from tickets.checks import check_database
    from tickets.store import TicketStore

    settings = load_settings()
    folder = Path(args.dir) if args.dir else settings.data_dir / "calls"
    if not folder.is_dir():
        raise CommandError(f"{folder}: no such directory")
    require(settings, check_database)
    store = TicketStore.from_settings(settings)
    result = import_records(store, folder, settings.tickets.timezone)
    print(
        f"imported {result.imported}, already known {result.known}, unreadable {len(result.errors)}"
    )
    for error in result.errors[:20]:
        print(f"  {error}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from datetime import date

    from hotline.checks import require
    from hotline.settings import load_settings
    from manage.figures import Figures, period_bounds
    from tickets.checks import check_database
    from tickets.store import TicketStore

    settings = load_settings()
    try:
        day = date.fromisoformat(args.date) if args.date else None
    except ValueError as exc:
        raise CommandError(f"--date {args.date!r}: use YYYY-MM-DD") from exc
    start, end = period_bounds(args.period, day, settings.tickets.timezone)
    require(settings, check_database)
    store = TicketStore.from_settings(settings)
    figures = Figures(store, settings.tickets.timezone).compute(start, end)
    sys.stdout.write(figures.csv())
    return 0
