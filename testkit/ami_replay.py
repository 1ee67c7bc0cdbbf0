"""A stand-in Asterisk AMI server that answers with replies recorded from Asterisk 20.

Used by the AMI client's tests and by the ami-drop fault drill: a TCP server on 127.0.0.1
that replays a wire transcript (the caller passes it: usually ``ASTERISK20_SESSION``),
records the actions it received, pushes events, and can drop its connections or stop
answering pings.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

# Recorded from a real Asterisk 20 by tests/asterisk/test_calls.py. Package data (not under
# tests/): ``hotline drill ami-drop`` replays it in an installed copy too (the Docker image
# has no tests folder). Named, not a default: the drill and the tests say which one they use.
ASTERISK20_SESSION = Path(__file__).resolve().parent / "data" / "asterisk20-session.txt"


class ReplayError(Exception):
    """The recorded replies are not available (the transcript file is missing)."""


def load_replies(path: Path) -> dict[str, str]:
    """Action name (lower case) -> the recorded reply, with ``{id}`` for the ActionID."""
    if not path.is_file():
        raise ReplayError(f"{path} (recorded AMI replies) is missing")
    replies: dict[str, str] = {}
    current, lines = "", list[str]()
    for line in path.read_text(encoding="utf-8").splitlines():
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
    """``stop`` then ``start`` is Asterisk restarting (same port); ``drop`` cuts the sockets."""

    def __init__(self, transcript: Path, password: str = "s3cret") -> None:
        self.replies = load_replies(transcript)
        self.password = password
        self.actions: list[dict[str, str]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.silent_ping = False  # True: a half-open link (pings go unanswered)
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Asterisk goes away: the listener closes and every AMI socket is cut."""
        if self.server is not None:
            self.server.close()
        self.drop()
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None

    def drop(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    def push(self, text: str) -> None:
        for writer in self.writers:
            writer.write(text.replace("\n", "\r\n").encode())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                action = dict(line.split(": ", 1) for line in block.decode().split("\r\n")
                              if ": " in line)  # fmt: skip
                self.actions.append(action)
                name = action.get("Action", "").lower()
                if name == "ping" and self.silent_ping:
                    continue
                if name == "login" and action.get("Secret") != self.password:
                    reply = "Response: Error\nActionID: {id}\nMessage: Authentication failed\n\n"
                else:
                    reply = self.replies.get(name, "Response: Error\nActionID: {id}\n"
                                             "Message: Invalid/unknown command\n\n")  # fmt: skip
                reply = reply.replace("{id}", action.get("ActionID", ""))
                writer.write(reply.replace("\n", "\r\n").encode())
