"""Malformed SIP and garbage RTP for the ``sip-flood`` drill (ops/drills.py).

Standard library only: the drill runs it in its own process (``python -c``), which must
start at once and not share the controller's interpreter, as a real attacker would not.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time

ATTACKER_HOST = "127.0.0.2"  # loopback, but another address than the caller's media


def garbage_sip(rng: random.Random) -> bytes:
    kinds = (
        lambda: rng.randbytes(rng.randint(1, 1400)),
        lambda: b"INVITE sip:12345@127.0.0.1 SIP/2.0\r\nVia: \r\n\r\n",
        lambda: b"SIP/2.0 200\r\nCSeq: x\r\n\r\n",
        lambda: b"OPTIONS sip:\xff\xfe SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
        lambda: b"\r\n\r\n",
        lambda: "BYE sip:我@127.0.0.1 SIP/2.0\r\nCall-ID: \r\n\r\n".encode(),
    )
    return rng.choice(kinds)()


def garbage_rtp(rng: random.Random) -> bytes:
    """Random bytes, and well-formed RTP carrying noise or telephone-events (keys)."""
    if rng.random() < 0.5:
        return rng.randbytes(rng.randint(1, 400))
    pt = rng.choice((0, 8, 101, 13, 96))
    header = bytes([0x80, pt]) + rng.randbytes(10)
    return header + rng.randbytes(160 if pt in (0, 8) else 4)


def flood(target: tuple[str, int], rtp_target: tuple[str, int] | None, count: int,
          spread_s: float) -> int:  # fmt: skip
    """``count`` malformed SIP datagrams (and as many garbage RTP packets) over
    ``spread_s`` seconds, from another address than the caller's."""
    rng = random.Random(12345)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((ATTACKER_HOST, 0))
        burst = 200
        for start in range(0, count, burst):
            for _ in range(min(burst, count - start)):
                with contextlib.suppress(OSError):
                    sock.sendto(garbage_sip(rng), target)
                    sent += 1
                if rtp_target is not None:
                    with contextlib.suppress(OSError):
                        sock.sendto(garbage_rtp(rng), rtp_target)
            time.sleep(spread_s * burst / count)
    return sent
