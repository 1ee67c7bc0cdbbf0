"""The AMI client against replayed Asterisk 20 AMI sessions (a local TCP server speaking the
recorded wire format), and against a live Asterisk when HOTLINE_AMI_URL is set."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hotline.settings import AmiSettings
from ivr.ami import AmiClient, AmiError, parse_url

QUEUES = AmiSettings().queues  # skill -> queues.conf name, as `hotline run` passes them

TRANSCRIPT = Path(__file__).parent / "ami" / "asterisk20-session.txt"

QUEUE_MEMBER_STATUS = """Event: QueueMemberStatus
Privilege: agent,all
Queue: hotline-general
MemberName: seat-101
Interface: PJSIP/seat-101
StateInterface: PJSIP/seat-101
Membership: static
Penalty: 0
CallsTaken: 0
LastCall: 0
LastPause: 0
LoginTime: 1700000000
InCall: 0
Status: {status}
Paused: {paused}
PausedReason:
Ringinuse: 0
Wrapuptime: 0

"""
AGENT_CONNECT = """Event: AgentConnect
Privilege: agent,all
Channel: PJSIP/trunk-00000007
ChannelState: 6
ChannelStateDesc: Up
CallerIDNum: 13800138000
CallerIDName: <unknown>
ConnectedLineNum: <unknown>
ConnectedLineName: <unknown>
Language: zh
AccountCode:
Context: hotline-queues
Exten: hotline-general
Priority: 4
Uniqueid: 1700000200.14
Linkedid: 1700000200.14
ChanVariable: HOTLINE_TICKET=2024000042
DestChannel: PJSIP/seat-101-00000009
DestChannelState: 6
DestChannelStateDesc: Up
DestCallerIDNum: 101
DestCallerIDName: seat-101
DestConnectedLineNum: 13800138000
DestConnectedLineName: <unknown>
DestLanguage: zh
DestAccountCode:
DestContext: seats
DestExten: hotline-general
DestPriority: 1
DestUniqueid: 1700000210.16
DestLinkedid: 1700000200.14
Queue: hotline-general
Interface: PJSIP/seat-101
MemberName: seat-101
HoldTime: 3
RingTime: 2

"""


def load_replies() -> dict[str, str]:
    replies: dict[str, str] = {}
    current = None
    lines: list[str] = []
    for line in TRANSCRIPT.read_text().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(">> "):
            if current:
                replies[current] = "\n".join(lines).strip("\n") + "\n\n"
            current, lines = line[3:].strip().lower(), []
        else:
            lines.append(line)
    if current:
        replies[current] = "\n".join(lines).strip("\n") + "\n\n"
    return replies


class ReplayAsterisk:
    """A TCP server replaying Asterisk 20's replies; records the actions it received."""

    def __init__(self, password: str = "s3cret") -> None:
        self.replies = load_replies()
        self.password = password
        self.actions: list[dict[str, str]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.silent_ping = False

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.drop()
        self.server.close()
        await self.server.wait_closed()

    def drop(self) -> None:
        for w in self.writers:
            w.close()
        self.writers.clear()

    def push(self, text: str) -> None:
        for w in self.writers:
            w.write(text.replace("\n", "\r\n").encode())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                action = dict(line.split(": ", 1) for line in block.decode().strip().split("\r\n")
                              if ": " in line)  # fmt: skip
                self.actions.append(action)
                name = action["Action"].lower()
                if name == "ping" and self.silent_ping:
                    continue
                if name == "login" and action.get("Secret") != self.password:
                    reply = "Response: Error\nActionID: {id}\nMessage: Authentication failed\n\n"
                else:
                    reply = self.replies[name]
                writer.write(
                    reply.replace("{id}", action.get("ActionID", "")).replace("\n", "\r\n").encode()
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_transfer_screen_pop_and_night_mode() -> None:
    async def body() -> None:
        ast = ReplayAsterisk()
        port = await ast.start()
        client = AmiClient(f"ami://hotline:s3cret@127.0.0.1:{port}", ping_interval_s=0.5,
                           queues=QUEUES)
        pops: list[tuple[str, str, str]] = []
        client.on_screen_pop = lambda *a: pops.append(a)
        try:
            assert await client.start()
            assert client.seats_available("general")  # seat-101 logged in (Status 1)
            assert await client.transfer("PJSIP/trunk-00000007", "general", "2024000042")
            sent = [a for a in ast.actions if a["Action"] in ("Setvar", "Redirect")]
            assert sent[0] == {**sent[0], "Channel": "PJSIP/trunk-00000007",
                               "Variable": "HOTLINE_TICKET", "Value": "2024000042"}  # fmt: skip
            assert sent[1]["Context"] == "hotline-queues" and sent[1]["Exten"] == "hotline-general"
            ast.push(AGENT_CONNECT)
            for _ in range(50):
                if pops:
                    break
                await asyncio.sleep(0.02)
            assert pops == [("2024000042", "PJSIP/seat-101", "hotline-general")]
            # The seat logs off (device unavailable): night mode.
            ast.push(QUEUE_MEMBER_STATUS.format(status=5, paused=0))
            await asyncio.sleep(0.2)
            assert not client.seats_available("general")
            ast.push(QUEUE_MEMBER_STATUS.format(status=1, paused=1))
            await asyncio.sleep(0.2)
            assert not client.seats_available("general")  # paused is not present either
            action_id = await client.originate("PJSIP/seat-101", "13800138000", "2024000042")
            originate = [a for a in ast.actions if a["Action"] == "Originate"][-1]
            assert originate["ActionID"] == action_id
            assert originate["Variable"] == "HOTLINE_TICKET=2024000042"
            assert originate["Context"] == "hotline-callback"
        finally:
            await client.stop()
            await ast.stop()

    run(body())


def test_reconnects_and_resyncs_state() -> None:
    async def body() -> None:
        ast = ReplayAsterisk()
        port = await ast.start()
        client = AmiClient(f"ami://hotline:s3cret@127.0.0.1:{port}", ping_interval_s=0.3,
                           queues=QUEUES)
        try:
            assert await client.start()
            ast.push(QUEUE_MEMBER_STATUS.format(status=5, paused=0))
            await asyncio.sleep(0.2)
            assert not client.seats_available("general")
            ast.drop()  # Asterisk restarts
            for _ in range(100):
                if client.logins >= 2 and client.connected:
                    break
                await asyncio.sleep(0.05)
            assert client.logins == 2
            # QueueStatus after the new login restored seat-101 as present.
            assert client.seats_available("general")
            assert [a["Action"] for a in ast.actions].count("QueueStatus") == 2
        finally:
            await client.stop()
            await ast.stop()

    run(body())


def test_half_open_connection_detected_by_ping() -> None:
    async def body() -> None:
        ast = ReplayAsterisk()
        port = await ast.start()
        client = AmiClient(f"ami://hotline:s3cret@127.0.0.1:{port}", ping_interval_s=0.2,
                           queues=QUEUES)
        try:
            assert await client.start()
            ast.silent_ping = True
            for _ in range(200):
                if not client.connected:
                    break
                await asyncio.sleep(0.05)
            assert not client.connected
        finally:
            await client.stop()
            await ast.stop()

    run(body())


def test_wrong_secret_and_bad_url() -> None:
    async def body() -> None:
        ast = ReplayAsterisk()
        port = await ast.start()
        client = AmiClient(f"ami://hotline:wrong@127.0.0.1:{port}", queues=QUEUES)
        try:
            assert not await client.start(wait_s=1.0)
            assert not await client.transfer("PJSIP/x", "general", "1")
        finally:
            await client.stop()
            await ast.stop()

    run(body())
    with pytest.raises(AmiError):
        parse_url("http://asterisk")


@pytest.mark.asterisk
@pytest.mark.skipif(not os.environ.get("HOTLINE_AMI_URL"), reason="HOTLINE_AMI_URL not set")
def test_live_asterisk_login_and_queue_status() -> None:
    async def body() -> None:
        client = AmiClient(os.environ["HOTLINE_AMI_URL"], queues=QUEUES)
        try:
            assert await client.start(wait_s=10)
            assert "hotline-general" in client.queues
        finally:
            await client.stop()

    run(body())
