"""``hotline users ...`` and ``hotline tickets ...``: accounts, migrations, reconcile."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import timedelta
from typing import Any

from hotline.checks import require
from hotline.cli import CommandError
from hotline.settings import load_settings
from tickets.accounts import AccountError, AccountStore, Role
from tickets.checks import check_database, check_seat_queue
from tickets.store import TicketStore


def register(commands: Any, bench: Any) -> None:
    users = commands.add_parser("users", help="console users (operators, managers, admins)")
    users_cmd = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = users_cmd.add_parser("add", help="add a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.OPERATOR.value)
    add.add_argument("--password", help="the password (default: asked twice on the terminal)")
    add.add_argument("--display-name", default="")
    add.add_argument(
        "--seat", default="",
        help="the operator's seat phone: its PJSIP endpoint in pjsip.conf, e.g. seat-101 "
        "(screen pops and click-to-call both use it)",
    )  # fmt: skip
    add.add_argument(
        "--extension", default="",
        help="old form of --seat: digits name the endpoint seat-<digits> (101 -> seat-101)",
    )  # fmt: skip
    add.add_argument("--skills", default="", help="skill queues, comma separated")
    add.set_defaults(handler=_add_user)
    passwd = users_cmd.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password")
    passwd.set_defaults(handler=_set_password)
    seat = users_cmd.add_parser(
        "seat", help="set a user's seat phone (PJSIP endpoint, e.g. seat-101); logs them out"
    )
    seat.add_argument("name")
    seat.add_argument("seat", help="the endpoint in pjsip.conf; digits mean seat-<digits>")
    seat.set_defaults(handler=_set_seat)
    listing = users_cmd.add_parser("list", help="list users")
    listing.set_defaults(handler=_list_users)

    tickets = commands.add_parser("tickets", help="the ticket store and seat queue")
    tickets_cmd = tickets.add_subparsers(dest="tickets_command", metavar="ACTION", required=True)
    tickets_cmd.add_parser("migrate", help="create or upgrade the database schema").set_defaults(
        handler=_migrate
    )
    tickets_cmd.add_parser(
        "reconcile", help="re-queue tickets Redis lost, drop finished ones from the queue"
    ).set_defaults(handler=_reconcile)


def _accounts() -> AccountStore:
    settings = load_settings()
    require(settings, check_database)
    store = TicketStore.from_settings(settings)
    return AccountStore(store, timedelta(minutes=settings.console.session_lifetime_min))


def _password(given: str | None) -> str:
    if given:
        return given
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for the password: pass --password")
    first = getpass.getpass("密码 / password: ")
    if first != getpass.getpass("再次输入 / again: "):
        raise CommandError("the two passwords differ")
    return first


def seat_of(seat: str, extension: str) -> str:
    """``--seat`` as given; the old ``--extension 101`` means endpoint ``seat-101``
    (telephony_config's naming), so screen pops and click-to-call find the phone."""
    if seat and extension:
        raise CommandError("give --seat or --extension, not both")
    if extension.isdigit():
        return f"seat-{extension}"
    return seat or extension


def _add_user(args: argparse.Namespace) -> int:
    skills = [s.strip() for s in args.skills.split(",") if s.strip()]
    seat = seat_of(args.seat, args.extension)
    if args.extension and seat != args.extension:
        print(f"--extension {args.extension}: the seat is PJSIP endpoint {seat} (use --seat)")
    try:
        account = _accounts().add(
            args.name,
            _password(args.password),
            Role(args.role),
            display_name=args.display_name,
            extension=seat,
            skills=skills,
        )
    except AccountError as exc:
        raise CommandError(str(exc)) from exc
    print(f"added {account.username} ({account.role.value})")
    return 0


def _set_password(args: argparse.Namespace) -> int:
    try:
        _accounts().set_password(args.name, _password(args.password))
    except AccountError as exc:
        raise CommandError(str(exc)) from exc
    print(f"password of {args.name} changed; their sessions were closed")
    return 0


def _set_seat(args: argparse.Namespace) -> int:
    seat = seat_of("", args.seat)
    try:
        _accounts().set_seat(args.name, seat)
    except AccountError as exc:
        raise CommandError(str(exc)) from exc
    print(f"{args.name}: seat {seat}; screen pops and click-to-call use PJSIP/{seat}")
    return 0


def _list_users(args: argparse.Namespace) -> int:
    for a in _accounts().list():
        print(
            f"{a.username}\t{a.role.value}\t{a.extension}\t{','.join(a.skills)}"
            f"\t{'active' if a.active else 'disabled'}"
        )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    require(settings, check_database)
    TicketStore.from_settings(settings)
    print("schema is up to date")
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    from tickets.service import TicketService

    settings = load_settings()
    # Against the configured Redis only: a private embedded one would hold no queue.
    require(settings, check_database, lambda s: check_seat_queue(s, embedded_allowed=False))
    report = TicketService.from_settings(settings).reconcile()
    print(
        f"requeued {len(report.requeued)}, acked {len(report.acked)}, "
        f"returned {len(report.returned)}"
    )
    return 0
