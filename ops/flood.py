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


def bomb_datagrams() -> list[tuple[str, bytes]]:
    """What made the controller deaf or slow before its input limits: each as large as a
    UDP datagram gets (~60 KB), shaped to hit a different parser cost."""
    letters = (b"abcdefghijklmnopqrstuvwxyz" * 2400)[:60_000]
    many_headers = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: a\r\n" * 9_900 + b"\r\n"
    long_header = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: " + b"a" * 59_000 + b"\r\n\r\n"
    secret_like = b"INVITE sip:a@b SIP/2.0\r\nX: redis://" + b"a:" * 29_000 + b"\r\n\r\n"
    large = [("letters", letters), ("header-lines", many_headers),
             ("header-length", long_header), ("url-like", secret_like)]  # fmt: skip
    # The same shapes under the size limit (8 KB), for the header and line limits.
    under = [(f"{name}-8k", data[:7_990] + b"\r\n\r\n") for name, data in large]
    return large + under


def sip_bomb(target: tuple[str, int], duration_s: float, every_s: float) -> int:
    """One of ``bomb_datagrams`` every ``every_s`` for ``duration_s``, from another address
    than the callers'; returns how many were sent."""
    kinds = bomb_datagrams()
    sent = 0
    end = time.monotonic() + duration_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.bind((ATTACKER_HOST, 0))
        while time.monotonic() < end:
            with contextlib.suppress(OSError):
                sock.sendto(kinds[sent % len(kinds)][1], target)
                sent += 1
            time.sleep(every_s)
    return sent


def unacked_invite(target: tuple[str, int], local: tuple[str, int], n: int) -> bytes:
    """A well-formed INVITE (audio offer to ``local``) whose 200 OK will never be ACKed."""
    host, port = local
    tag = f"noack{n}x{random.randrange(10**6)}"
    sdp = (f"v=0\r\no=- {n} {n} IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
           f"m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")  # fmt: skip
    return (
        f"INVITE sip:12345@{target[0]}:{target[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{tag}\r\n"
        f"From: <sip:1390099{n % 10000:04d}@{host}:{port}>;tag={tag}\r\n"
        f"To: <sip:12345@{target[0]}:{target[1]}>\r\nCall-ID: {tag}@{host}\r\n"
        f"CSeq: 1 INVITE\r\nContact: <sip:1390099{n % 10000:04d}@{host}:{port}>\r\n"
        "Max-Forwards: 70\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
    ).encode()


def unacked_invites(target: tuple[str, int], count: int, spread_s: float,
                    sources: int = 10) -> dict[str, int]:  # fmt: skip
    """``count`` INVITEs over ``spread_s`` seconds from ``sources`` ports of one host (a
    broken or hostile peer that never ACKs), answering nothing; returns how many final
    responses of each status came back (``"sent"``: INVITEs sent). The 200 OKs the
    controller retransmits are counted once per call."""
    socks = []
    for _ in range(sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        socks.append(sock)
    finals: dict[bytes, int] = {}

    def drain() -> None:
        for sock in socks:
            while True:
                try:
                    reply = sock.recv(65535)
                except OSError:
                    break
                head = reply.split(b"\r\n", 1)[0].split(b" ")
                call_id = next((line for line in reply.split(b"\r\n")
                                if line.lower().startswith(b"call-id:")), b"")  # fmt: skip
                if len(head) > 1 and head[1].isdigit() and int(head[1]) >= 200:
                    finals.setdefault(call_id, int(head[1]))

    try:
        for n in range(count):
            sock = socks[n % sources]
            with contextlib.suppress(OSError):
                sock.sendto(unacked_invite(target, sock.getsockname(), n), target)
            drain()
            time.sleep(spread_s / count)
        end = time.monotonic() + 3.0  # the last answers
        while time.monotonic() < end:
            drain()
            time.sleep(0.05)
    finally:
        for sock in socks:
            sock.close()
    counts: dict[str, int] = {"sent": count}
    for status in finals.values():
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts
