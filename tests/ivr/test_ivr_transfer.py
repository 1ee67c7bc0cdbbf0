"""The transfer to a person alone (``ivr.transfer``), against a fake switchboard (the
``Switchboard`` protocol ``ivr.ami`` implements) and a real ``TicketFiler``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.events import Transfer
from hotline.draft import RequestType, TicketDraft
from ivr.filing import TicketFiler
from ivr.journal import CallRecord
from ivr.transfer import CallTransfer, Switchboard, TransferOutcome

CHANNEL = "PJSIP/trunk-00000001"


@dataclass
class FakeSwitchboard:
    connected: bool = True
    accepts: bool = True  # what AMI's Redirect answers
    transfers: list[tuple[str, str, str]] = field(default_factory=list)

    async def transfer(self, channel: str, queue: str, ticket: str) -> bool:
        self.transfers.append((channel, queue, ticket))
        return self.accepts

    async def mark_done(self, channel: str) -> None:
        raise AssertionError("a transfer never marks the call done")

    def seats_available(self, queue: str = "general") -> bool:
        return True


@dataclass
class Leg:
    asterisk_channel: str = CHANNEL
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class Sink:
    def __init__(self) -> None:
        self.filed: list[tuple[str, str]] = []

    async def intake(self, draft: TicketDraft, skill: str) -> str:
        self.filed.append((draft.call_id, skill))
        return f"20261129-{len(self.filed):04d}"


class Journal:
    def write(self, kind: object, data: dict[str, Any]) -> None:
        pass


@dataclass
class Call:
    """One transfer's collaborators and what happened to them, in order."""

    switchboard: Switchboard | None
    leg: Leg = field(default_factory=Leg)
    sink: Sink = field(default_factory=Sink)
    record: CallRecord = field(
        default_factory=lambda: CallRecord("c1", "13800138000", "2026-11-29T00:00:00")
    )
    happened: list[str] = field(default_factory=list)

    def transfer(self, bye_wait_s: float = 5.0) -> CallTransfer:
        def evidence(draft: TicketDraft) -> TicketDraft:
            draft.call_id = self.record.call_id
            return draft

        async def hang_up_unmarked() -> None:
            self.happened.append("hung up unmarked")

        filer = TicketFiler(self.sink, Journal(), self.record)  # type: ignore[arg-type]
        return CallTransfer(
            self.switchboard, filer, self.record, self.leg, evidence=evidence,
            on_redirected=lambda: self.happened.append("redirected"),
            hang_up_unmarked=hang_up_unmarked, bye_wait_s=bye_wait_s,
        )  # fmt: skip


TO_SPECIALIST = Transfer("business_environment", "人工", TicketDraft(type=RequestType.COMPLAINT))


def test_a_redirected_caller_waits_for_asterisks_bye_and_our_leg_is_not_hung_up() -> None:
    async def scenario() -> tuple[Call, CallTransfer, TransferOutcome]:
        call = Call(FakeSwitchboard())
        transfer = call.transfer()

        def bye() -> None:
            call.happened.append("bye")
            call.leg.ended.set()

        asyncio.get_running_loop().call_later(0.05, bye)
        outcome = await transfer.to_person(TO_SPECIALIST)
        call.happened.append("returned")
        return call, transfer, outcome

    call, transfer, outcome = asyncio.run(scenario())
    assert outcome is TransferOutcome.REDIRECTED
    assert call.happened == ["redirected", "bye", "returned"]
    # Filed first, with the transfer's queue, so the seat's screen pop has the number.
    assert call.sink.filed == [("c1", "business_environment")]
    assert call.switchboard.transfers == [  # type: ignore[union-attr]
        (CHANNEL, "business_environment", "20261129-0001")
    ]
    assert (call.record.outcome, call.record.transfer_queue) == ("transfer", "business_environment")
    assert transfer.requested


def test_without_a_bye_the_wait_ends_and_the_leg_is_still_asterisks() -> None:
    async def scenario() -> tuple[Call, TransferOutcome, float]:
        call = Call(FakeSwitchboard())
        started = asyncio.get_running_loop().time()
        outcome = await call.transfer(bye_wait_s=0.1).to_person(TO_SPECIALIST)
        return call, outcome, asyncio.get_running_loop().time() - started

    call, outcome, waited = asyncio.run(scenario())
    assert outcome is TransferOutcome.REDIRECTED and waited >= 0.09  # (timer resolution)
    assert call.happened == ["redirected"]  # no hang-up of our own over the Redirect


@pytest.mark.parametrize(
    "switchboard, channel",
    [
        (None, CHANNEL),  # no AMI configured
        (FakeSwitchboard(connected=False), CHANNEL),  # AMI down
        (FakeSwitchboard(), ""),  # the call came without X-Hotline-Channel
        (FakeSwitchboard(accepts=False), CHANNEL),  # Asterisk refused the Redirect
    ],
)
def test_without_a_redirect_the_bot_hangs_up_unmarked_for_the_dialplan_to_queue(
    switchboard: FakeSwitchboard | None, channel: str
) -> None:
    call = Call(switchboard, Leg(asterisk_channel=channel))
    transfer = call.transfer()
    outcome = asyncio.run(transfer.to_person(TO_SPECIALIST))
    assert outcome is TransferOutcome.LEFT_TO_DIALPLAN
    assert call.happened == ["hung up unmarked"]
    # The work order is filed all the same: the seat the dialplan finds still sees it.
    assert call.sink.filed == [("c1", "business_environment")]
    assert call.record.outcome == "transfer" and transfer.requested


def test_a_work_order_already_filed_is_not_filed_again() -> None:
    call = Call(FakeSwitchboard())
    transfer = call.transfer(bye_wait_s=0.01)
    transfer.filer.number = "20261129-0042"  # the bot's CreateTicket earlier in the call
    asyncio.run(transfer.to_person(TO_SPECIALIST))
    assert call.sink.filed == []
    assert call.switchboard.transfers == [  # type: ignore[union-attr]
        (CHANNEL, "business_environment", "20261129-0042")
    ]


def test_a_transfer_with_no_work_order_files_nothing_and_pops_no_number() -> None:
    call = Call(FakeSwitchboard())
    asyncio.run(call.transfer(bye_wait_s=0.01).to_person(Transfer("general", "按0")))
    assert call.sink.filed == []
    assert call.switchboard.transfers == [(CHANNEL, "general", "")]  # type: ignore[union-attr]
    assert call.record.transfer_queue == "general"
