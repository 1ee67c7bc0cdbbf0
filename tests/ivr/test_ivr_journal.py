"""The call journal's recovery pieces against a real Redis: orphan claims that are given
back when nothing could file them, and the controller's own downtime from its beat."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis.asyncio as aioredis

from ivr.journal import ACTIVE, NODE_BEAT, downtime_before_start, heartbeat, recover_orphans
from tests.tickets.support import redis_server  # noqa: F401 (fixture)
from tickets.draft import TicketDraft


def test_an_orphan_that_cannot_be_filed_is_claimed_again_later(redis_server: str) -> None:  # noqa: F811
    call_id = f"orphan-{uuid.uuid4().hex[:8]}"
    filed: list[str] = []

    async def scenario() -> tuple[bool, list[str]]:
        client = aioredis.from_url(redis_server)
        stale = json.dumps({"node": "dead", "beat": time.time() - 120})
        await client.hset(ACTIVE, call_id, stale)

        async def sql_away(draft: TicketDraft) -> str:
            raise RuntimeError("SQL and the spool both away")

        async def sql_back(draft: TicketDraft) -> str:
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
