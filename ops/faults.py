"""Fault injection and measurement for the drills (ops/drills.py), no drill logic here.

- ``OptionsProbe``: SIP OPTIONS every 100 ms from its own thread while a fault runs,
  so "the controller kept answering" is a ratio and a latency, not one lucky ping.
- ``bad_offers`` / ``send_invite``: INVITEs whose SDP no media stack should accept.
- ``TcpOutage``: a TCP relay in front of PostgreSQL that the drill can cut and restore;
  to the ticket store that is PostgreSQL stopping (connections reset, new ones refused)
  and starting again on the same address, without stopping a server other tests share.
- ``fill_disk``: a file that takes a file system's space, to leave a chosen amount.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def options_request(host: str, port: int, local: int, tag: str) -> bytes:
    """An OPTIONS to the controller from 127.0.0.1:``local``; ``tag`` names its
    transaction (branch, From tag, Call-ID), so a reply can be told from a late one."""
    return (
        f"OPTIONS sip:hotline@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{tag}\r\n"
        f"From: <sip:probe@127.0.0.1:{local}>;tag={tag}\r\n"
        f"To: <sip:hotline@{host}:{port}>\r\nCall-ID: {tag}@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@dataclass
class OptionsProbe:
    """OPTIONS at ``every_s`` to the controller; a reply later than ``timeout_s`` is lost."""

    port: int
    every_s: float = 0.1
    timeout_s: float = 1.0
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> OptionsProbe:
        self._thread = threading.Thread(target=self._run, name="options-probe", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            local = sock.getsockname()[1]
            while not self._stop.is_set():
                self._one(sock, local)
                self._stop.wait(self.every_s)

    def _one(self, sock: socket.socket, local: int) -> None:
        tag = f"probe{random.randrange(10**9)}"
        request = options_request("127.0.0.1", self.port, local, tag)
        self.sent += 1
        start = time.monotonic()
        deadline = start + self.timeout_s
        with contextlib.suppress(OSError):
            sock.sendto(request, ("127.0.0.1", self.port))
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                reply, _ = sock.recvfrom(4096)
                if tag.encode() in reply:  # not a late reply to an earlier probe
                    self.latencies_ms.append((time.monotonic() - start) * 1000)
                    return

    def summary(self) -> dict[str, Any]:
        answered = len(self.latencies_ms)
        ordered = sorted(self.latencies_ms) or [0.0]
        return {
            "sent": self.sent, "answered": answered,
            "answered_ratio": round(answered / self.sent, 4) if self.sent else 0.0,
            "median_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 1),
            "max_ms": round(ordered[-1], 1),
        }  # fmt: skip


# ---- INVITEs with SDP nobody should accept ----------------------------------------------

_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n{c}t=0 0\r\n{m}"
_AUDIO = "m=audio {port} RTP/AVP {pts}\r\n"


def bad_offers() -> dict[str, str]:
    """SDP bodies by what is wrong with them (the issue's port 99999 first)."""
    conn = "c=IN IP4 127.0.0.1\r\n"

    def sdp(c: str = conn, port: str = "40000", pts: str = "8 0 101") -> str:
        return _SDP.format(c=c, m=_AUDIO.format(port=port, pts=pts))

    return {
        "port-99999": sdp(port="99999"),
        "port-0": sdp(port="0"),
        "port-negative": sdp(port="-5"),
        "port-text": sdp(port="http"),
        "no-g711": sdp(pts="18"),  # G.729 only: no codec in common
        "hostname": sdp(c="c=IN IP4 media.attacker.example\r\n"),
        "multicast": sdp(c="c=IN IP4 239.1.1.1\r\n"),
        "no-connection": sdp(c=""),
        "no-audio": _SDP.format(c=conn, m="m=video 40000 RTP/AVP 96\r\n"),
        "garbage": "\x00\xff not sdp at all " * 20,
    }


def send_invite(port: int, sdp: str, timeout_s: float = 3.0) -> int:
    """One INVITE with ``sdp`` to the controller; the final status code (0: no answer).
    A 2xx would be a defect; the call is then ended with a BYE so it does not linger."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout_s)
        local = sock.getsockname()[1]
        tag = f"bad{random.randrange(10**9)}"
        body = sdp.encode("latin-1", errors="replace")
        head = (
            f"INVITE sip:12345@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{tag}\r\n"
            f"From: <sip:13800990999@127.0.0.1:{local}>;tag={tag}\r\n"
            f"To: <sip:12345@127.0.0.1:{port}>\r\nCall-ID: {tag}@127.0.0.1\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:13800990999@127.0.0.1:{local}>\r\n"
            "Max-Forwards: 70\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendto(head + body, ("127.0.0.1", port))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                reply, _ = sock.recvfrom(65535)
            except OSError:
                return 0
            code = int(reply.split(b" ", 2)[1]) if reply.startswith(b"SIP/2.0 ") else 0
            if code >= 200:
                return code
    return 0


# ---- PostgreSQL that stops and starts ----------------------------------------------------


class TcpOutage:
    """A relay 127.0.0.1:<port> -> ``upstream``; ``cut()`` resets every connection and stops
    listening (connection refused), ``restore()`` listens on the same port again.

    Hand-written (a few asyncio lines) because what the drill needs is exactly this
    on/off switch; a general proxy (toxiproxy) would be another service to install."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.refused_while_cut = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):  # RST, as a stopped server's kernel sends
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            writer.close()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer),
                             return_exceptions=True)  # fmt: skip
        self._writers -= {writer, up_writer}


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


# ---- a disk that fills up ---------------------------------------------------------------


def fill_disk(folder: Path, leave_bytes: int, name: str = "filler.bin") -> Path:
    """Grow ``folder/name`` until the file system has ``leave_bytes`` free (0: full)."""
    path = folder / name
    chunk = b"\0" * (1 << 16)
    with open(path, "ab", buffering=0) as handle:
        while True:
            stats = os.statvfs(folder)
            free = stats.f_bavail * stats.f_frsize
            if free <= leave_bytes:
                break
            try:
                handle.write(chunk[: max(1, min(len(chunk), free - leave_bytes))])
                handle.flush()
            except OSError:
                break
        with contextlib.suppress(OSError):
            os.fsync(handle.fileno())
    return path
