"""Orphaned calls keep the bot's classification, and the seat that takes the dialplan's
fallback call gets the ticket popped, once, however many controllers listen. Against a
real Redis and the real ticket service (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from hotline.draft import RequestType
from ivr.journal import (
    ACTIVE,
    STREAM,
    CallJournal,
    JournalEvent,
    draft_from_journal,
    recover_orphans,
)
from ivr.orphans import POPPED, FallbackPops
from ivr.wiring import ServiceSink, seat_endpoint
from tests.tickets.support import (  # noqa: F401 (fixtures)
    database_url,
    key_prefix,
    make_draft,
    pg_server_url,
    queue,
    redis_server,
    service,
    settings,
    store,
)
from tickets.accounts import AccountStore, Role
from tickets.service import TicketService


def _entries(*items: tuple[str, dict[str, Any]]) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return [(f"{i}-0".encode(), {b"kind": kind.encode(), b"data": json.dumps(data).encode(),
                                 b"at": b"1700000000.0"})
            for i, (kind, data) in enumerate(items)]  # fmt: skip


def _decision(**fields: Any) -> tuple[str, dict[str, Any]]:
    return "decision", {"event": "Utterance", "state": "x", "actions": [], **fields}


COMPLAINT = make_draft(1).model_dump(mode="json")  # a complaint the bot took down


def test_a_transferred_complaint_keeps_type_queue_and_no_callback_by_day() -> None:
    orphan = draft_from_journal("c1", _entries(
        ("started", {"caller": "13800138000", "channel": "PJSIP/trunk-1"}),
        ("seats", {"available": True}),
        ("utterance", {"text": "我要投诉社保窗口", "confidence": 0.9}),
        _decision(ticket=COMPLAINT, queue="social_insurance"),
    ))  # fmt: skip
    assert orphan.skill == "social_insurance"
    assert orphan.draft.type == RequestType.COMPLAINT
    assert not orphan.draft.callback_promised
    assert orphan.draft.caller.number == "13800138000" and orphan.draft.call_id == "c1"
    assert orphan.draft.caller_words == ["我要投诉社保窗口"]
    assert orphan.draft.handover_reason == "the call controller stopped mid-call"


def test_at_night_the_orphan_carries_the_callback_the_dialplan_promises() -> None:
    orphan = draft_from_journal("c2", _entries(
        ("started", {"caller": "13800138000", "channel": "PJSIP/trunk-2"}),
        ("seats", {"available": False}),
        ("utterance", {"text": "路灯坏了", "confidence": 0.9}),
    ))  # fmt: skip
    assert orphan.draft.callback_promised and orphan.skill == "general"
    assert orphan.draft.type == RequestType.HUMAN  # nothing classified yet: a person decides


def test_a_work_order_still_being_taken_down_keeps_its_type() -> None:
    partial = make_draft(2, type=RequestType.HELP).model_dump(mode="json")
    orphan = draft_from_journal("c3", _entries(
        ("started", {"caller": "1", "channel": ""}),
        _decision(partial=partial),
        _decision(callback_promised=True, ticket=COMPLAINT),
        _decision(partial=partial),  # a later partial never undoes a decided work order
    ))  # fmt: skip
    assert orphan.draft.type == RequestType.COMPLAINT and orphan.draft.callback_promised


def _journal_of_a_dead_call(client: Any, call_id: str, channel: str) -> Any:
    async def write() -> None:
        journal = CallJournal(client, call_id, "dead-node")
        journal.start("13800138000", channel)
        journal.write(JournalEvent.SEATS, {"available": True})
        journal.write(JournalEvent.UTTERANCE, {"text": "小区旁边工地夜里施工", "confidence": 0.9})
        journal.write(JournalEvent.DECISION, {"ticket": COMPLAINT, "queue": "real_estate"})
        await journal.close("x", for_recovery=True)  # leaves the entry as a crash does
        stale = json.dumps({"node": "dead-node", "beat": time.time() - 120})
        await client.hset(ACTIVE, call_id, stale)

    return write()


def test_the_seat_taking_the_fallback_call_gets_the_pop_once(
    service: TicketService,  # noqa: F811
    redis_server: str,  # noqa: F811
) -> None:
    accounts = AccountStore(service.store, timedelta(hours=1))
    accounts.add("wang", "long-enough-1", Role.OPERATOR, extension="seat-101")
    sink = ServiceSink(service)
    call_id = f"orphan-{uuid.uuid4().hex[:8]}"
    channel = f"PJSIP/trunk-{uuid.uuid4().hex[:8]}"
    pops: list[tuple[str, str]] = []

    def screen_pop(ticket: str, interface: str, queue_name: str) -> None:
        pops.append((ticket, interface))
        sink._pop(ticket, seat_endpoint(interface))  # what ServiceSink.screen_pop runs

    async def scenario() -> list[str | None]:
        client = aioredis.from_url(redis_server)
        try:
            await _journal_of_a_dead_call(client, call_id, channel)
            # Two controllers hear the same AgentConnect.
            both = [FallbackPops(client, sink.intake, screen_pop, service.store.number_for_call,
                                 grace_s=0.05, find_s=3) for _ in range(2)]  # fmt: skip
            answers = (p.handle(channel, "PJSIP/seat-101", "hotline-general") for p in both)
            return list(await asyncio.gather(*answers))
        finally:
            await client.hdel(ACTIVE, call_id)
            await client.delete(STREAM.format(call_id), POPPED.format(call_id))
            await client.aclose()

    handled = asyncio.run(scenario())
    number = service.store.number_for_call(call_id)
    assert number and handled.count(number) == 1 and handled.count(None) == 1
    assert pops == [(number, "PJSIP/seat-101")]
    ticket = service.store.get(number)
    assert ticket.type == RequestType.COMPLAINT and ticket.skill == "real_estate"
    assert (ticket.assigned_to, ticket.seat) == ("wang", "seat-101")
    assert service.pending_pop("seat-101")["ticket"] == number  # type: ignore[index]


def test_no_pop_for_a_call_still_live_nor_one_without_a_journal(
    service: TicketService,  # noqa: F811
    redis_server: str,  # noqa: F811
) -> None:
    call_id = f"live-{uuid.uuid4().hex[:8]}"
    channel = f"PJSIP/trunk-{uuid.uuid4().hex[:8]}"
    filed: list[str] = []

    async def intake(draft: Any, skill: str) -> str:
        filed.append(draft.call_id)
        return "x"

    async def scenario() -> tuple[Any, Any]:
        client = aioredis.from_url(redis_server)
        try:
            await _journal_of_a_dead_call(client, call_id, channel)
            pops = FallbackPops(client, intake, lambda *a: filed.append("pop"),
                                service.store.number_for_call, live=lambda: {call_id},
                                grace_s=0.01)  # fmt: skip
            live = await pops.handle(channel, "PJSIP/seat-101", "hotline-general")
            unknown = await pops.handle("PJSIP/trunk-never", "PJSIP/seat-101", "hotline-general")
            return live, unknown
        finally:
            await client.hdel(ACTIVE, call_id)
            await client.delete(STREAM.format(call_id))
            await client.aclose()

    assert asyncio.run(scenario()) == (None, None)
    assert filed == []


def test_the_orphan_scan_files_with_the_bots_skill(redis_server: str) -> None:  # noqa: F811
    call_id = f"scan-{uuid.uuid4().hex[:8]}"
    filed: list[tuple[str, str, str]] = []

    async def intake(draft: Any, skill: str) -> str:
        filed.append((draft.call_id, draft.type.value, skill))
        return "n"

    async def scenario() -> list[str]:
        client = aioredis.from_url(redis_server)
        try:
            await _journal_of_a_dead_call(client, call_id, "PJSIP/trunk-scan")
            return await recover_orphans(client, intake, stale_s=10)
        finally:
            await client.hdel(ACTIVE, call_id)
            await client.delete(STREAM.format(call_id))
            await client.aclose()

    assert asyncio.run(scenario()) == ["n"]
    assert [f for f in filed if f[0] == call_id] == [(call_id, "complaint", "real_estate")]


def test_what_the_session_journals_is_what_recovery_reads() -> None:
    """The session's decision entries (``CallSession._journal_entry``) carry the work
    order, the skill queue and the promise in the form ``draft_from_journal`` reads."""
    from types import SimpleNamespace

    from bot.events import CreateTicket, Decision, Transfer, Utterance
    from ivr.session import CallSession

    session = CallSession.__new__(CallSession)  # only the journal entry is exercised
    taking_down = make_draft(3, type=RequestType.REPORT)
    session.dialogue = SimpleNamespace(ticket=taking_down)
    said = Utterance("有人在小区里卖假药")
    asking = session._journal_entry(said, Decision([], "ask:where"))
    promised = session._journal_entry(
        said, Decision([CreateTicket(make_draft(4), callback_promised=True)], "done")
    )
    transfer = session._journal_entry(
        said, Decision([Transfer("business_environment", "specialist", make_draft(5))], "t")
    )

    def orphan(*decisions: dict[str, Any]) -> Any:
        return draft_from_journal("c9", _entries(*(("decision", d) for d in decisions)))

    assert orphan(asking).draft.type == RequestType.REPORT  # still being taken down
    assert orphan(asking, promised).draft.callback_promised
    moved = orphan(asking, transfer)
    assert (moved.draft.type, moved.skill) == (RequestType.COMPLAINT, "business_environment")
    assert not moved.draft.callback_promised
