"""Scale-out as users run it: two ``hotline run`` nodes registered to the same Asterisk as
``hotline-bot``, sharing one Redis (embedded, private to the test) and one PostgreSQL
database. Calls spread over both; one node is killed with SIGKILL mid-call by day and by
night: Asterisk takes the caller on (human queue; the closed message at night), the
survivor files the dead node's call exactly once with the bot's classification, and new
calls go to the survivor."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from ivr.ami import AmiClient
from ops.drills import DrillSkipped, drill_database, postgres_server, wait_for
from testkit.bench import CallClip
from testkit.callers import Caller
from tests.asterisk.local import BOT_USER, Asterisk, free_port
from tests.asterisk.nodes import AUDIO, Node, clip, clips, ticket_service, tickets_of
from tests.asterisk.peers import Phone, place_call, seat
from tickets.models import TicketRow
from tickets.redis_embedded import EmbeddedRedis
from tickets.service import TicketService

pytestmark = [
    pytest.mark.asterisk,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (sip-tester)"),
    pytest.mark.skipif(not (AUDIO / "transcripts.tsv").is_file(),
                       reason="../shared/audio/calls-dev (recorded callers) not available"),
]  # fmt: skip


@dataclass
class Pair:
    asterisk: Asterisk
    nodes: dict[str, Node]
    service: TicketService
    work: Path
    clips: list[CallClip]
    seat101: Phone

    def clip(self, label: str, nth: int = 0) -> CallClip:
        return clip(self.clips, label, nth)

    def node_of(self, number: str) -> Node:
        """The node whose log shows the call from ``number`` (numbers are masked there)."""
        masked = f"from {number[:3]}****{number[-4:]} answered"
        found = [n for n in self.nodes.values() if masked in n.log()]
        assert len(found) == 1, f"call {number} on {len(found)} nodes"
        return found[0]

    def other(self, node: Node) -> Node:
        return next(n for n in self.nodes.values() if n is not node)


def bot_contacts(asterisk: Asterisk) -> int:
    return asterisk.cli(f"pjsip show aor {BOT_USER}").count(f"Contact:  {BOT_USER}/")


@pytest.fixture(scope="module")
def pair(asterisk: Asterisk, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if not asterisk.local:
        pytest.skip("kills controllers and reads the log of the Asterisk started here")
    work = tmp_path_factory.mktemp("pair")
    try:
        database = drill_database(postgres_server(), f"hotline_ast_{free_port()}")
        url = database.__enter__()
    except DrillSkipped as exc:
        pytest.skip(str(exc))
    try:
        with EmbeddedRedis(work / "redis") as redis:
            db = url.render_as_string(hide_password=False)
            nodes = {name: Node(name, asterisk, work / name, redis.url, db)
                     for name in ("a", "b")}  # fmt: skip

            async def start_both() -> None:
                await nodes["a"].start()  # migrates the database first
                await nodes["b"].start()

            service = ticket_service(work, redis.url, db)
            phone = seat(asterisk, work, "101")
            try:
                asyncio.run(start_both())
                deadline = time.monotonic() + 20
                while bot_contacts(asterisk) < 2:
                    assert time.monotonic() < deadline, asterisk.cli(f"pjsip show aor {BOT_USER}")
                    time.sleep(0.3)
                yield Pair(asterisk, nodes, service, work, clips(work / "clips"), phone)
            finally:
                phone.stop()
                for node in nodes.values():
                    asyncio.run(node.stop())
                service.store.dispose()
                service.queue.redis.close()
    finally:
        database.__exit__(None, None, None)


def presence(asterisk: Asterisk, day: bool, timeout_s: float = 20.0) -> None:
    async def watch() -> None:
        client = AmiClient(asterisk.ami_url)
        await client.start(wait_s=10)
        try:
            deadline = time.monotonic() + timeout_s
            while client.seats_available("general") != day:
                assert time.monotonic() < deadline, "seat presence never changed"
                await asyncio.sleep(0.3)
        finally:
            await client.stop()

    asyncio.run(watch())
    time.sleep(0.5)  # the nodes' AMI clients saw the same events


def seconds_after(moment: datetime, logged: str) -> float:
    """Seconds from ``moment`` to an Asterisk log time (``2026-11-28 21:57:35.609``)."""
    return (datetime.strptime(logged, "%Y-%m-%d %H:%M:%S.%f") - moment).total_seconds()


def filed(pair: Pair, number: str, timeout_s: float = 30.0) -> list[TicketRow]:
    """The work orders of ``number`` once one is there (orphans are filed by a timer)."""

    async def found() -> list[TicketRow]:
        return tickets_of(pair.service, number)

    rows: list[TicketRow] = asyncio.run(wait_for(found, timeout_s, 0.5)) or []
    assert len(rows) == 1, rows
    return rows


def short_call(number: str, ms: int = 2500) -> Caller:
    return Caller(free_port(), caller=number).wait(ms).hang_up()


def test_calls_spread_over_both_nodes(pair: Pair) -> None:
    numbers = [f"1390000000{i}" for i in range(4)]

    async def place_all() -> list[int]:
        codes = []
        for number in numbers:  # one after another: each finds both nodes idle
            codes.append(await place_call(pair.asterisk, short_call(number), pair.work / "calls"))
        return codes

    assert asyncio.run(place_all()) == [0, 0, 0, 0]
    on = {name: sum(f"from {n[:3]}****{n[-4:]} answered" in node.log() for n in numbers)
          for name, node in pair.nodes.items()}  # fmt: skip
    assert sum(on.values()) == 4 and min(on.values()) >= 1, on


async def _complaint_then_kill(
    pair: Pair, number: str, after_s: float
) -> tuple[Node, int, datetime]:
    """A caller tells a complaint; its node dies by SIGKILL once the bot has asked back.
    Returns the dead node, the mark in Asterisk's log and when the kill happened."""
    complaint = pair.clip("complaint")
    call = Caller(free_port(), caller=number).wait(1500).speak(complaint.raw)
    call.hang_up_unless_bye(int((complaint.seconds + after_s) * 1000))
    mark = pair.asterisk.mark()
    placed = asyncio.create_task(place_call(pair.asterisk, call, pair.work / "calls", 120))
    await asyncio.to_thread(pair.asterisk.wait_log, r"PJSIP/hotline-bot-\w+ answered", mark)
    await asyncio.sleep(1.5 + complaint.seconds + 3.0)  # spoken, recognised, asked back
    dead = pair.node_of(number)
    dead.kill()
    killed = datetime.now()  # Asterisk's log times are local wall-clock times
    await placed
    return dead, mark, killed


def test_node_killed_by_day_caller_reaches_a_seat_and_the_survivor_files_once(pair: Pair) -> None:
    pair.seat101.register()
    pair.seat101.answer(hold_s=90)
    presence(pair.asterisk, day=True)
    number = "13900000011"
    dead, mark, killed = asyncio.run(_complaint_then_kill(pair, number, after_s=25))
    survivor = pair.other(dead)
    log = pair.asterisk.log_since(mark)
    # Asterisk ends the dead bot leg (rtp_timeout) and queues the caller for a person ...
    assert re.search(
        r"Disconnecting channel 'PJSIP/hotline-bot-\w+' for lack of (audio )?RTP activity", log
    ), log
    assert re.search(r'Goto\("PJSIP/trunk-\w+", "hotline-queues,hotline-general,1"\)', log)
    answered = re.search(r"\[([\d-]+ [\d:.]+)\].*PJSIP/seat-101-\w+ answered PJSIP/trunk-", log)
    assert answered, log[-3000:]
    # The caller's silence: Asterisk's rtp_timeout (4 s), then the queue rings the seat.
    assert seconds_after(killed, answered.group(1)) < 8.0, (killed, answered.group(1))
    # ... and the survivor filed the dead node's call once, as the complaint it was.
    found = filed(pair, number)
    assert found[0].type == "complaint" and not found[0].callback_promised, found[0]
    assert found[0].number in survivor.log() and found[0].number not in dead.log()
    # The seat that took the fallback call got the work order on screen.
    pop = pair.service.pending_pop(pair.service.seat_for_phone("seat-101"))
    assert pop is not None and pop["ticket"] == found[0].number, pop
    assert pair.seat101.wait(30) >= 1
    # New calls go to the survivor (the dead contact fails its qualify).
    later = "13900000012"
    assert asyncio.run(place_call(pair.asterisk, short_call(later), pair.work / "calls")) == 0
    assert pair.node_of(later) is survivor
    asyncio.run(dead.start())  # as the service manager would restart it


def test_node_killed_by_night_caller_hears_the_closed_message_and_gets_a_callback_ticket(
    pair: Pair,
) -> None:
    pair.seat101.stop()
    pair.seat101.unregister()
    presence(pair.asterisk, day=False)
    number = "13900000021"
    _, mark, killed = asyncio.run(_complaint_then_kill(pair, number, after_s=12))
    log = pair.asterisk.log_since(mark)
    assert re.search(r'Playback\("PJSIP/trunk-\w+", "hotline/night-callback"\)', log), log
    playing = re.search(
        r"\[([\d-]+ [\d:.]+)\].*Playing 'hotline/night-callback\.\w+' \(language 'zh'\)", log
    )
    assert playing, log
    assert seconds_after(killed, playing.group(1)) < 8.0, (killed, playing.group(1))
    assert "night-callback missing" not in log
    found = filed(pair, number)
    assert found[0].type == "complaint" and found[0].callback_promised, found[0]
