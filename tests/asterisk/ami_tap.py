"""Record real AMI sessions: a TCP relay between AMI clients and the real Asterisk that
keeps every message both ways, and turns them into the transcript the fast tests replay
(``testkit/data/asterisk20-session.txt``, read by ``testkit.ami_replay``).

As panoramisk's ``testing.py`` replays recorded wire text instead of hand-written
replies, the unit tests answer with what Asterisk 20.20.1 really sent: the ActionID
becomes ``{id}``, the ticket number in AgentConnect becomes ``2024000042`` (the tests'
placeholder); nothing else is changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Actions the controller and the consoles send; the replay answers these.
ACTIONS = ("Login", "QueueStatus", "Ping", "Setvar", "Redirect", "Originate")
# Unsolicited events the tests push (ticket placeholder of tests/ivr/ami_replay.py).
EVENTS = ("AgentConnect", "QueueMemberStatus")
TICKET_PLACEHOLDER = "2024000042"


def messages(text: str) -> list[dict[str, str]]:
    """AMI wire text -> messages (header order kept; a repeated header keeps its first)."""
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.split("\n") if ": " in line or line.endswith(":")]
        if lines:
            found.append({"_raw": "\n".join(lines)})
            for line in lines:
                name, _, value = line.partition(":")
                found[-1].setdefault(name, value.strip())
    return found


@dataclass
class AmiTap:
    """``url`` (ami://user:secret@127.0.0.1:PORT) reaches ``target`` through the tap."""

    target_host: str
    target_port: int
    sent: list[str] = field(default_factory=list)  # client -> Asterisk, per connection
    received: list[str] = field(default_factory=list)  # Asterisk -> client, per connection
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None

    def start(self) -> AmiTap:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._relay, "127.0.0.1", 0)
            )
            self.port = int(self._server.sockets[0].getsockname()[1])
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="ami-tap", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def url(self, user: str, secret: str) -> str:
        return f"ami://{user}:{secret}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.sent)
        self.sent.append("")
        self.received.append("")
        up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, log: list[str]
        ) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    log[index] += data.decode(errors="replace")
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, self.sent),
                             pipe(up_reader, writer, self.received))  # fmt: skip

    # ---- the transcript ----
    def replies(self) -> dict[str, list[dict[str, str]]]:
        """Action name -> every recorded answer: the Response and the events carrying its
        ActionID (QueueStatus' list, Originate's OriginateResponse)."""
        answers: dict[str, list[dict[str, str]]] = {}
        for sent, received in zip(self.sent, self.received, strict=True):
            incoming = messages(received)
            for action in messages(sent):
                name, action_id = action.get("Action", ""), action.get("ActionID", "")
                if name not in ACTIONS or not action_id:
                    continue
                mine = [m for m in incoming if m.get("ActionID") == action_id]
                if mine:
                    answers.setdefault(name, []).append({"_raw": _block(mine, action_id)})
        return answers

    def events(self) -> dict[str, str]:
        """Event name -> the first recorded one (wire text)."""
        found: dict[str, str] = {}
        for received in self.received:
            for message in messages(received):
                name = message.get("Event", "")
                if name in EVENTS and name not in found:
                    found[name] = message["_raw"] + "\n\n"
        return found

    def transcript(self) -> str:
        replies, events = self.replies(), self.events()
        missing = [a for a in ACTIONS if a not in replies] + [e for e in EVENTS if e not in events]
        if missing:
            raise AssertionError(f"the recorded AMI sessions lack {missing}")
        parts = [HEADER]
        for name in ACTIONS:
            parts.append(f">> {name}\n{_anonymise(_pick(name, replies[name]))}")
        for name in EVENTS:
            parts.append(f">> Event {name}\n{_anonymise(events[name])}")
        return "".join(parts)


HEADER = """\
# Recorded from a real Asterisk 20.20.1 (../shared/asterisk) by tests/asterisk
# (HOTLINE_RECORD_AMI=1 rewrites this file): the replies to the actions the controller
# and the consoles send, and the events the tests push; {id} is the action's ActionID.
"""


def _block(mine: list[dict[str, str]], action_id: str) -> str:
    text = "\n\n".join(m["_raw"] for m in mine) + "\n\n"
    return text.replace(f"ActionID: {action_id}", "ActionID: {id}")


def _pick(name: str, recorded: list[dict[str, str]]) -> str:
    """QueueStatus: one taken while a seat was logged in (day), as the replay tests start
    from; Originate: one that succeeded; else the first."""
    texts = [r["_raw"] for r in recorded]
    if name == "QueueStatus":
        day = [t for t in texts if re.search(r"^Status: [12]$", t, re.MULTILINE)]
        texts = day or texts
    if name == "Originate":
        texts = [t for t in texts if "Response: Success\n" in t.split("Event:")[-1]] or texts
    return texts[0]


def _anonymise(event: str) -> str:
    return re.sub(r"HOTLINE_TICKET=\S+", f"HOTLINE_TICKET={TICKET_PLACEHOLDER}", event)


def write_transcript(tap: AmiTap, path: Path) -> Path:
    path.write_text(tap.transcript(), encoding="utf-8")
    return path
