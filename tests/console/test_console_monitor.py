"""The 班长's monitor: seats online and what they hold, queue lengths and the oldest
waiting caller, live bot calls from the controllers' active list, today's figures."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from hotline.settings import Settings
from ivr.journal import ACTIVE, STREAM
from manage.calls import record_call
from tests.console.helpers import ConsoleEnv, make_env, web_client
from tests.tickets.support import make_draft
from tickets.service import TicketService

# The controllers' active list is one Redis key for all (no prefix): ids of this run only.
LIVE, DEAD = f"mon-{uuid.uuid4().hex}", f"mon-{uuid.uuid4().hex}"


@pytest.fixture
def env(settings: Settings, service: TicketService) -> Iterator[ConsoleEnv]:
    env = make_env(settings, service)
    yield env
    env.service.queue.redis.hdel(ACTIVE, LIVE, DEAD)
    env.service.queue.redis.delete(STREAM.format(LIVE))


def cell(page: str, element: str) -> str:
    found = re.search(rf'id="{element}">([^<]*)<', page)
    assert found, element
    return found.group(1)


def test_monitor_shows_seats_queues_live_calls_and_today(
    env: ConsoleEnv, settings: Settings
) -> None:
    service = env.service
    op = env.accounts.get("op")
    assert op is not None
    service.intake(make_draft(51), skill="general")
    service.intake(make_draft(52, urgency="urgent"), skill="general")
    service.intake(make_draft(53), skill="social_insurance")
    held = service.claim_next(op)
    assert held is not None
    record_call(
        service.store,
        {"call_id": "mon-1", "caller": "13800000000", "started_at": held.created_at.isoformat(),
         "answered_ms": 800, "outcome": "answered"},
        settings.tickets.timezone,
    )  # fmt: skip
    client = service.queue.redis
    now = time.time()
    client.hset(ACTIVE, LIVE, json.dumps({"node": "node-a", "beat": now}))
    client.hset(ACTIVE, DEAD, json.dumps({"node": "node-b", "beat": now - 600}))
    client.xadd(
        STREAM.format(LIVE),
        {"kind": "started", "data": json.dumps({"caller": "13912345678"}), "at": f"{now - 65}"},
    )
    with web_client(env.app, "boss") as boss, web_client(env.app, "op") as operator:
        assert operator.get("/monitor").status_code == 403  # the 班长's page
        # op's console holds its live stream open: the seat is online (as /events marks it)
        client.set(f"{service.queue.prefix}:presence:{op.seat}", "op", ex=30)
        page = boss.get("/monitor").text
        seats = re.search(r'id="monitor-seats">(.*?)</table>', page, re.S).group(1)  # type: ignore[union-attr]
        row_of_op = re.search(r"<tr class=\"seat-busy\"><td>8001</td>.*?</tr>", seats, re.S)
        assert row_of_op and held.number in row_of_op.group(0)
        assert 'seat-offline"><td>8002' in seats  # boss has no console stream open
        queues = re.search(r'id="monitor-queues">(.*?)</table>', page, re.S).group(1)  # type: ignore[union-attr]
        assert re.search(r"<td>综合</td><td>1</td><td>0</td>", queues)  # the urgent one was taken
        assert re.search(r"<td>社保</td><td>1</td><td>0</td>", queues)
        assert cell(page, "monitor-live-count") == "1"  # the stale call is not live
        assert "139****5678" in page and "13912345678" not in page
        assert re.search(r"<td>1 分 ([5-9]|1[0-9]) 秒</td>", page)  # started 65 s ago
        assert cell(page, "kpi-calls") == "1" and cell(page, "kpi-created") == "3"
        assert 'hx-trigger="every 5s"' in page
        fragment = boss.get("/fragments/monitor")
        assert fragment.status_code == 200 and "<html" not in fragment.text
        client.delete(f"{service.queue.prefix}:presence:{op.seat}")
        assert 'seat-offline"><td>8001' in boss.get("/fragments/monitor").text
