"""The test's RTP capture: a UDP socket the scenario's SDP points at.

sipp streams the caller's audio from its own media port; what the bot sends lands here.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from ivr.rtp import parse_rtp


@dataclass
class Captured:
    arrival: float
    payload_type: int
    marker: bool
    seq: int
    payload: bytes


@dataclass
class RtpCapture:
    sock: socket.socket = field(init=False)
    packets: list[Captured] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            pkt = parse_rtp(data)
            if pkt is not None:
                self.packets.append(Captured(time.monotonic(), pkt.payload_type, pkt.marker,
                                             pkt.sequence, pkt.payload))  # fmt: skip

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()
