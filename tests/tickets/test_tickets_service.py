"""The entry point the call session uses: intake, screen pop, seat work, click to call."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hotline.draft import RequestType, Urgency
from tests.tickets.support import make_draft
from tickets.accounts import Account, Role
from tickets.dialer import DialerError, RecordingDialer, load_dialer
from tickets.redis_embedded import EmbeddedRedis
from tickets.service import TicketService, pop_channel
from tickets.ticket import Satisfaction, Status

OPERATOR = Account(
    id=0, username="li", display_name="李", role=Role.OPERATOR, extension="8001", skills=["general"]
)


def test_intake_records_and_queues_on_the_skill_lane(service: TicketService) -> None:
    urgent = service.intake(make_draft(1, urgency=Urgency.URGENT), skill="real_estate")
    normal = service.intake(make_draft(2), skill="nonexistent", callback_promised=True)
    assert normal.skill == "general" and normal.callback_promised
    lanes = {e.ticket: (e.skill, e.priority) for e in service.queue.entries()}
    assert lanes == {urgent.number: ("real_estate", "urgent"), normal.number: ("general", "normal")}
    assert service.store.get(normal.number).callback_promised


def test_screen_pop_reaches_the_seat_channel_and_assigns(service: TicketService) -> None:
    ticket = service.intake(make_draft(1))
    pubsub = service.queue.redis.pubsub()
    pubsub.subscribe(pop_channel(service.queue.prefix, "8001"))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    service.screen_pop(ticket.number, "8001", OPERATOR)
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    assert message is not None
    event = json.loads(message["data"])
    assert event["ticket"] == ticket.number and event["seat"] == "8001"
    assert service.pending_pop("8001")["ticket"] == ticket.number  # type: ignore[index]
    record = service.store.get(ticket.number)
    assert (record.assigned_to, record.seat) == ("li", "8001")
    assert record.history[-1].action == "assigned"
    # The ticket is now that seat's: nobody else can claim it.
    other = Account(id=0, username="wu", display_name="", role=Role.OPERATOR, extension="8002")
    assert service.claim_next(other) is None


def test_claim_skips_tickets_already_handled(service: TicketService) -> None:
    first = service.intake(make_draft(1))
    second = service.intake(make_draft(2))
    service.store.dispatch(first.number, "市水务局", "api")  # handled outside the queue
    claimed = service.claim_next(OPERATOR)
    assert claimed is not None and claimed.number == second.number
    assert claimed.assigned_to == "li"
    assert not service.queue.is_queued(first.number)


def test_dispatch_and_close_take_the_ticket_off_the_queue(service: TicketService) -> None:
    a = service.intake(make_draft(1))
    b = service.intake(make_draft(2, type=RequestType.CONSULTATION))
    service.claim_next(OPERATOR)
    service.dispatch(a.number, "市城市管理局", OPERATOR)
    service.close(b.number, Satisfaction.NOT_NEEDED, OPERATOR, "电话中已答复")
    assert service.queue.entries() == []
    assert service.store.get(b.number).status == Status.CLOSED


def test_click_to_call_goes_through_the_dialer(service: TicketService) -> None:
    # An in-process dialer that records requests: the AMI one lives with the telephony code.
    ticket = service.intake(
        make_draft(
            1, caller=make_draft().caller.model_copy(update={"callback_number": "13800002222"})
        )
    )
    with pytest.raises(DialerError):
        service.call_back(ticket.number, OPERATOR)  # no dialer configured
    service.dialer = RecordingDialer()
    service.call_back(ticket.number, OPERATOR)
    assert service.dialer.calls == [("8001", "13800002222", ticket.number)]
    assert service.store.get(ticket.number).history[-1].action == "call_placed"
    no_extension = Account(id=0, username="x", display_name="", role=Role.OPERATOR, extension="")
    with pytest.raises(DialerError):
        service.call_back(ticket.number, no_extension)


def test_dialer_is_loaded_from_settings_by_name() -> None:
    assert load_dialer("", None) is None
    dialer = load_dialer("tests.tickets.test_tickets_service:make_dialer", None)
    assert isinstance(dialer, RecordingDialer)
    with pytest.raises(DialerError):
        load_dialer("no.such.module:thing", None)
    with pytest.raises(DialerError):
        load_dialer("json:dumps", None)  # not a Dialer factory result


def make_dialer(settings: object) -> RecordingDialer:
    return RecordingDialer()


def test_embedded_redis_starts_with_aof_and_stops(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "r") as server:
        import redis

        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.connection_pool.connection_kwargs["host"] == "127.0.0.1"
        client.close()
        pid = server.process.pid if server.process else 0
    assert pid and server.process is None
    time.sleep(0.1)
    assert any((tmp_path / "r").rglob("*.aof*"))
