"""A local TCP server replaying Asterisk 20's recorded AMI replies (tests only)."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
