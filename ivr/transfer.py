"""Handing the caller to a person.

The work order is filed first, so the seat that takes the call gets it as a screen pop
(``HOTLINE_TICKET``). Asterisk then redirects the caller to the skill queue over AMI and
ends the bot's leg with a BYE. Without AMI (not connected, no channel, or the redirect
refused), the bot hangs up without marking the call done, and the dialplan sends the
caller to the human queue (extensions.conf, after Dial).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.events import Transfer
from hotline.draft import TicketDraft
from ivr.filing import TicketFiler
from ivr.journal import CallRecord

BYE_WAIT_S = 5.0  # how long the bot waits for the BYE of Asterisk's Redirect


class Switchboard(Protocol):
    """What the session asks of Asterisk (ivr.ami)."""

    connected: bool

    async def transfer(self, channel: str, queue: str, ticket: str) -> bool: ...

    async def mark_done(self, channel: str) -> None: ...

    def seats_available(self, queue: str = "general") -> bool: ...


class CallLeg(Protocol):
    """The bot's side of the call, as the transfer sees it (``ivr.sip.IncomingCall``)."""

    asterisk_channel: str
    ended: asyncio.Event


class TransferOutcome(enum.Enum):
    REDIRECTED = "redirected"  # Asterisk took the caller to the skill queue
    LEFT_TO_DIALPLAN = "left-to-dialplan"  # hung up unmarked: the dialplan queues them


class CallTransfer:
    def __init__(
        self,
        switchboard: Switchboard | None,
        filer: TicketFiler,
        record: CallRecord,
        leg: CallLeg,
        *,
        evidence: Callable[[TicketDraft], TicketDraft],  # the call's facts put on a draft
        on_redirected: Callable[[], None],  # our leg now ends by Asterisk's BYE
        hang_up_unmarked: Callable[[], Awaitable[None]],
        bye_wait_s: float = BYE_WAIT_S,
    ) -> None:
        self.switchboard = switchboard
        self.filer = filer
        self.record = record
        self.leg = leg
        self.evidence = evidence
        self.on_redirected = on_redirected
        self.hang_up_unmarked = hang_up_unmarked
        self.bye_wait_s = bye_wait_s
        self.requested = False  # the bot sent the caller to a person: no survey, no thanks

    async def to_person(self, action: Transfer) -> TransferOutcome:
        number = self.filer.number
        if action.ticket is not None and not number:
            draft = self.evidence(action.ticket.model_copy(deep=True))
            number = await self.filer.file(draft, action.queue)
        self.record.outcome = "transfer"
        self.record.transfer_queue = action.queue
        self.requested = True
        if await self._redirect(action.queue, number):
            self.on_redirected()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.leg.ended.wait(), self.bye_wait_s)
            return TransferOutcome.REDIRECTED
        await self.hang_up_unmarked()
        return TransferOutcome.LEFT_TO_DIALPLAN

    async def _redirect(self, queue: str, ticket: str) -> bool:
        sb, channel = self.switchboard, self.leg.asterisk_channel
        if sb is None or not sb.connected or not channel:
            return False
        return await sb.transfer(channel, queue, ticket)
