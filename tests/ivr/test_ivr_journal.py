"""The call journal's recovery pieces against a real Redis: orphan claims that are given
back when nothing could file them, and the controller's own downtime from its beat."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis.asyncio as aioredis

from hotline.draft import TicketDraft
from ivr.journal import (
    ACTIVE,
    NODE_BEAT,
    CallJournal,
    JournalEvent,
    downtime_before_start,
    heartbeat,
    recover_orphans,
)
from tests.tickets.support import redis_server  # noqa: F401 (fixture)


def test_an_orphan_that_cannot_be_filed_is_claimed_again_later(redis_server: str) -> None:  # noqa: F811
    call_id = f"orphan-{uuid.uuid4().hex[:8]}"
    filed: list[str] = []

    async def scenario() -> tuple[bool, list[str]]:
        client = aioredis.from_url(redis_server)
        stale = json.dumps({"node": "dead", "beat": time.time() - 120})
        await client.hset(ACTIVE, call_id, stale)

        async def sql_away(draft: TicketDraft, skill: str) -> str:
            raise RuntimeError("SQL and the spool both away")

        async def sql_back(draft: TicketDraft, skill: str) -> str:
            filed.append(draft.call_id)
            return "20261128-0001"

        try:
            with pytest.raises(RuntimeError):
                await recover_orphans(client, sql_away, stale_s=30)
            kept = bool(await client.hexists(ACTIVE, call_id))  # claim given back
            await recover_orphans(client, sql_back, stale_s=30)
            return kept, filed
        finally:
            await client.hdel(ACTIVE, call_id)
            await client.aclose()

    kept, filed = asyncio.run(scenario())
    assert kept
    assert filed == [call_id]


def test_the_controller_knows_how_long_it_was_down(redis_server: str) -> None:  # noqa: F811
    node = f"node-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[float, float, float]:
        client = aioredis.from_url(redis_server)
        try:
            first = await downtime_before_start(client, node)  # never ran: nothing to say
            beating = asyncio.create_task(heartbeat(client, lambda: [], node))
            await asyncio.sleep(0.2)
            beating.cancel()
            quick = await downtime_before_start(client, node)  # a restart right away
            await client.set(NODE_BEAT.format(node), time.time() - 40)  # its last beat, 40 s ago
            down = await downtime_before_start(client, node)
            return first, quick, down
        finally:
            await client.delete(NODE_BEAT.format(node))
            await client.aclose()

    first, quick, down = asyncio.run(scenario())
    assert first == 0.0 and quick == 0.0
    assert 39 <= down <= 45


def test_thousands_of_short_calls_leave_no_orphan_to_invent(redis_server: str) -> None:  # noqa: F811
    """The heartbeat runs flat out while 2,000 calls start, write and close; afterwards
    recovery must find nothing: a heartbeat that wrote back a call whose journal had just
    closed made recovery file tickets for calls that ended normally."""
    node = f"node-{uuid.uuid4().hex[:8]}"
    live: set[str] = set()
    invented: list[str] = []

    async def scenario() -> int:
        client = aioredis.from_url(redis_server)
        beating = asyncio.create_task(heartbeat(client, lambda: sorted(live), node, every_s=0))

        async def one_call(n: int) -> None:
            call_id = f"{node}-{n}"
            live.add(call_id)  # in controller.sessions until run() returns
            journal = CallJournal(client, call_id, node)
            journal.start("13800000000", "")
            journal.write(JournalEvent.UTTERANCE, {"text": "你好"})
            await asyncio.sleep(0)
            await journal.close("answered")
            live.discard(call_id)

        async def record(draft: TicketDraft, skill: str) -> str:
            invented.append(draft.call_id)
            return ""

        try:
            for start in range(0, 2000, 50):
                await asyncio.gather(*(one_call(n) for n in range(start, start + 50)))
            await asyncio.sleep(0.05)
            beating.cancel()
            await recover_orphans(client, record, stale_s=0)
            return len([c for c in invented if c.startswith(node)])
        finally:
            beating.cancel()
            for key in await client.hkeys(ACTIVE):
                if key.decode().startswith(node):
                    await client.hdel(ACTIVE, key)
            await client.aclose()

    assert asyncio.run(scenario()) == 0


def test_recovery_skips_the_calls_this_controller_is_still_on(redis_server: str) -> None:  # noqa: F811
    call_id = f"live-{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[str]:
        client = aioredis.from_url(redis_server)
        old = json.dumps({"node": "here", "beat": time.time() - 120})  # a slow beat
        await client.hset(ACTIVE, call_id, old)
        filed: list[str] = []

        async def record(draft: TicketDraft, skill: str) -> str:
            filed.append(draft.call_id)
            return "x"

        try:
            await recover_orphans(client, record, stale_s=30, live=lambda: {call_id})
            return filed
        finally:
            await client.hdel(ACTIVE, call_id)
            await client.aclose()

    assert asyncio.run(scenario()) == []


def test_a_discarded_journal_leaves_nothing_in_redis(redis_server: str) -> None:  # noqa: F811
    """An INVITE whose 200 OK nobody acknowledged: its journal is deleted, not kept for a
    week (each such call kept ~4.7 KB) nor left for recovery."""
    call_id = f"noack-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[bool, int]:
        client = aioredis.from_url(redis_server)
        try:
            journal = CallJournal(client, call_id, "node")
            journal.start("13800000000", "")
            journal.write(JournalEvent.SAY, {"text": "您好"})
            await asyncio.sleep(0.05)
            await journal.discard()
            return bool(await client.hexists(ACTIVE, call_id)), int(
                await client.exists(f"hotline:call:{call_id}")
            )
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == (False, 0)


def test_the_journal_codec_reads_what_it_writes_and_skips_what_it_does_not_know() -> None:
    from ivr.journal import JournalEntry

    entry = JournalEntry(JournalEvent.UTTERANCE, {"text": "我要投诉", "confidence": 0.8}, 1.5)
    wire = {k.encode(): v.encode() for k, v in entry.encode().items()}  # as Redis returns it
    assert JournalEntry.decode(wire) == entry
    newer = {b"kind": b"emotion", b"data": b"{}", b"at": b"2.0"}  # a newer controller's kind
    assert JournalEntry.decode(newer) is None
