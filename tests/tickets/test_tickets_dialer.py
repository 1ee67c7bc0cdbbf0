"""Click-to-call from settings alone: ``console.dialer: ivr.dialer:ami_dialer`` opens
its own AMI connection and rings the operator's seat phone (PJSIP/seat-101), the same
identity the queue's screen pop carries. Against the replayed Asterisk 20 AMI server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from hotline.settings import AmiSettings, Settings
from ivr.ami import AmiClient
from ivr.dialer import AmiDialer
from tests.ivr.ami_replay import AGENT_CONNECT, AGENT_CONNECT_CHANNEL, replayed_asterisk
from tickets.accounts import AccountStore, Role
from tickets.dialer import DialerError, load_dialer, seat_channel
from tickets.service import TicketService


def test_the_seat_names_the_channel_rung() -> None:
    assert seat_channel("seat-101") == "PJSIP/seat-101"
    assert seat_channel("101") == "PJSIP/seat-101"  # an account made with --extension 101
    assert seat_channel("SIP/desk-7") == "SIP/desk-7"


def _settings(url: str) -> Settings:
    return Settings.model_construct(ami=AmiSettings.model_validate({"url": url}))


def test_click_to_call_from_settings_rings_the_seat_then_the_citizen() -> None:
    async def body() -> list[dict[str, str]]:
        ast = replayed_asterisk()
        port = await ast.start()
        spec, settings = "ivr.dialer:ami_dialer", _settings(
            f"ami://hotline:s3cret@127.0.0.1:{port}")  # fmt: skip
        dialer = await asyncio.to_thread(load_dialer, spec, settings)
        assert isinstance(dialer, AmiDialer)
        try:
            await asyncio.to_thread(dialer.originate, "seat-101", "13907551234", "2026000001")
            await asyncio.to_thread(dialer.originate, "102", "13907551234", "2026000001")
            return [a for a in ast.actions if a["Action"] == "Originate"]
        finally:
            await asyncio.to_thread(dialer.close)
            await ast.stop()

    sent = asyncio.run(asyncio.wait_for(body(), 30))
    assert [a["Channel"] for a in sent] == ["PJSIP/seat-101", "PJSIP/seat-102"]
    assert sent[0]["Exten"] == "13907551234" and sent[0]["Context"] == "hotline-callback"
    assert sent[0]["Variable"] == "HOTLINE_TICKET=2026000001"


def test_no_ami_is_a_clear_error_for_the_operator() -> None:
    with pytest.raises(DialerError, match=r"ami\.url"):
        load_dialer("ivr.dialer:ami_dialer", _settings(""))

    class Away:
        connected = False

    dialer = AmiDialer(Away(), asyncio.new_event_loop())
    with pytest.raises(DialerError, match="未连接"):
        dialer.originate("seat-101", "13907551234", "2026000001")
    dialer.loop.close()


def test_a_seat_answering_without_a_ticket_is_reported_as_a_fallback() -> None:
    """A seat answering a caller whom no controller Redirected (an orphaned call): the
    event carries no HOTLINE_TICKET, and the caller's channel goes to the fallback hook."""

    async def body() -> tuple[list[Any], list[Any]]:
        ast = replayed_asterisk()
        port = await ast.start()
        client = AmiClient(f"ami://hotline:s3cret@127.0.0.1:{port}", ping_interval_s=0.5)
        pops: list[Any] = []
        fallbacks: list[Any] = []
        client.on_screen_pop = lambda *a: pops.append(a)
        client.on_fallback_connect = lambda *a: fallbacks.append(a)
        try:
            assert await client.start()
            ast.push(AGENT_CONNECT.replace("ChanVariable: HOTLINE_TICKET=2024000042\n",
                                           "ChanVariable: HOTLINE_TICKET=\n"))  # fmt: skip
            for _ in range(50):
                if fallbacks:
                    break
                await asyncio.sleep(0.02)
            return pops, fallbacks
        finally:
            await client.stop()
            await ast.stop()

    pops, fallbacks = asyncio.run(asyncio.wait_for(body(), 30))
    assert pops == []
    assert fallbacks == [(AGENT_CONNECT_CHANNEL, "PJSIP/seat-101", "hotline-general")]


def test_the_pop_finds_the_operator_by_seat_and_by_the_old_extension(
    service: TicketService,
) -> None:
    accounts = AccountStore(service.store, timedelta(hours=1))
    accounts.add("wang", "long-enough-1", Role.OPERATOR, extension="seat-101")
    accounts.add("zhao", "long-enough-1", Role.OPERATOR, extension="102")  # made before
    assert service.seat_for_phone("seat-101") == "seat-101"
    assert service.seat_for_phone("seat-102") == "102"
    assert service.seat_for_phone("seat-109") == "seat-109"  # nobody: the endpoint itself
