"""Start-up checks of the controller: AMI, and the list ``hotline run`` goes through."""

from __future__ import annotations

from collections.abc import Callable

from bot.checks import check_bot_data
from hotline.checks import (
    check_data_dir,
    check_journal,
    check_metrics_port,
    check_sip_port,
    shown,
)
from hotline.cli import CommandError
from hotline.settings import Settings
from tickets.checks import check_database, check_seat_queue


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
