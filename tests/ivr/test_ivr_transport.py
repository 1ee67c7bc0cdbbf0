"""The SIP endpoint and RTP layer against sipp, a real SIP peer, over loopback."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import math
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hotline.audio import alaw_decode, ulaw_decode
from hotline.settings import SipSettings
from ivr.rtp import MediaClock, Playout, RtpStream
from ivr.sip import IncomingCall, SipEndpoint
from ops.faults import bad_offers, send_invite
from testkit.callers import Caller, free_udp_port, options_scenario, run_sipp
from tests.ivr.rtp_peer import RtpCapture

TONE_HZ = 440


def tone(seconds: float, hz: int = TONE_HZ, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * math.pi * hz * t) * 8000).astype("<i2").tobytes()


class Harness:
    """The endpoint with a minimal call handler: play a tone, keep what arrives."""

    def __init__(self, settings: SipSettings) -> None:
        self.settings = settings
        self.calls: list[IncomingCall] = []
        self.audio: dict[str, bytearray] = {}
        self.keys: dict[str, str] = {}
        self.streams: list[RtpStream] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def on_call(self, call: IncomingCall) -> None:
        loop = asyncio.get_running_loop()
        self.calls.append(call)
        audio = self.audio.setdefault(call.call_id, bytearray())
        self.keys[call.call_id] = ""

        def on_dtmf(key: str) -> None:
            self.keys[call.call_id] += key

        assert call.sock is not None
        stream = RtpStream(call.sock, (call.media.host, call.media.port), call.media.payload_type,
                           call.media.dtmf_payload_type, audio.extend, on_dtmf,
                           strict_port=self.settings.strict_rtp)  # fmt: skip
        self.streams.append(stream)
        loop.add_reader(call.sock.fileno(), stream.receive_ready)
        self.clock.add(stream)
        stream.play(tone(1.0))

        async def cleanup() -> None:
            await call.ended.wait()
            self.clock.remove(stream)
            loop.remove_reader(call.sock.fileno())  # type: ignore[union-attr]
            stream.close()

        task = loop.create_task(cleanup())
        self.tasks.add(task)  # keep a reference until the call is cleaned up
        task.add_done_callback(self.tasks.discard)

    async def run(self, body) -> None:  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        self.clock = MediaClock(lambda fn: loop.call_soon_threadsafe(fn))
        self.clock.start()
        self.endpoint = SipEndpoint(self.settings, self.on_call)
        await self.endpoint.start()
        try:
            await body()
        finally:
            await self.endpoint.stop()
            self.clock.stop()


def settings(**kw: object) -> SipSettings:
    port = free_udp_port()
    low = 30000 + (port % 1000) * 20
    # strict_rtp off: sipp's audio and its key presses come from different ports.
    kw.setdefault("strict_rtp", False)
    return SipSettings(bind_port=port, rtp_port_low=low, rtp_port_high=low + 19, **kw)  # type: ignore[arg-type]


def make_clip(tmp_path: Path, codec: str) -> Path:
    from hotline.audio import alaw_encode, ulaw_encode

    ramp = np.linspace(0.05, 1.0, 8000)  # rising amplitude: many distinct sample values
    pcm = (np.frombuffer(tone(1.0, hz=1000), dtype="<i2") * ramp).astype("<i2").tobytes()
    raw = tmp_path / f"clip.{codec.lower()}"
    raw.write_bytes(alaw_encode(pcm) if codec == "PCMA" else ulaw_encode(pcm))
    return raw


def dominant_hz(pcm: bytes, rate: int = 8000) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


@pytest.mark.parametrize("codec", ["PCMA", "PCMU"])
def test_call_audio_both_ways_and_dtmf(tmp_path: Path, codec: str) -> None:
    h = Harness(settings())
    capture = RtpCapture()
    clip = make_clip(tmp_path, codec)
    caller = Caller(capture.port, codec=codec).speak(clip).wait(600).key("0").wait(1200).hang_up()

    async def body() -> None:
        result = await asyncio.to_thread(
            run_sipp,
            caller.scenario(),
            ("127.0.0.1", h.settings.bind_port),
            tmp_path,
            media_port=free_udp_port(),
        )
        assert result.returncode == 0, result.stdout + result.stderr

    try:
        asyncio.run(h.run(body))
    finally:
        capture.close()
    assert len(h.calls) == 1
    call = h.calls[0]
    assert call.answer_ms < 150
    assert call.hangup_by == "caller"
    # Our prompt arrives in the negotiated law (pyVoIP sent PCMA calls mu-law).
    pt = 8 if codec == "PCMA" else 0
    voiced = [p for p in capture.packets if p.payload_type == pt]
    assert len(voiced) > 60
    decode = alaw_decode if codec == "PCMA" else ulaw_decode
    played = b"".join(decode(p.payload) for p in voiced[:50])
    assert abs(dominant_hz(played) - TONE_HZ) < 20
    assert voiced[0].marker
    # Packets leave every 20 ms: the median spacing is 20 ms +- 2.
    gaps = np.diff([p.arrival for p in voiced]) * 1000
    assert 18 <= float(np.median(gaps)) <= 22
    # What the caller said arrives as 16-bit PCM with full resolution, not 8-bit.
    heard = bytes(h.audio[call.call_id])
    assert len(heard) >= 2 * 8000 * 0.9
    samples = np.frombuffer(heard, dtype="<i2")
    assert len(np.unique(samples)) > 64  # an 8-bit path leaves at most 256 coarse steps
    assert abs(dominant_hz(heard[: 2 * 8000]) - 1000) < 20
    sent = decode(clip.read_bytes())
    assert heard[: len(sent)] == sent  # byte-exact 16-bit decode of what sipp streamed
    assert h.keys[call.call_id] == "0"


def test_options_answered(tmp_path: Path) -> None:
    h = Harness(settings())

    async def body() -> None:
        result = await asyncio.to_thread(run_sipp, options_scenario(),
                                         ("127.0.0.1", h.settings.bind_port), tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr

    asyncio.run(h.run(body))


def test_cancel_before_answer(tmp_path: Path) -> None:
    h = Harness(settings(answer_delay_ms=1500))
    capture = RtpCapture()

    async def body() -> None:
        scenario = Caller(capture.port).cancel_scenario(after_ms=200)
        result = await asyncio.to_thread(run_sipp, scenario, ("127.0.0.1", h.settings.bind_port),
                                         tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        await asyncio.sleep(1.6)  # past the answer delay: the call must not be answered

    try:
        asyncio.run(h.run(body))
    finally:
        capture.close()
    assert h.calls == []
    assert not capture.packets


def test_bot_hangs_up(tmp_path: Path) -> None:
    h = Harness(settings())
    capture = RtpCapture()
    caller = Caller(capture.port).expect_bye(timeout_ms=5000)

    async def body() -> None:
        task = asyncio.create_task(
            asyncio.to_thread(
                run_sipp, caller.scenario(), ("127.0.0.1", h.settings.bind_port), tmp_path
            )
        )
        while not h.calls:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        h.calls[0].hangup()
        result = await task
        assert result.returncode == 0, result.stdout + result.stderr

    try:
        asyncio.run(h.run(body))
    finally:
        capture.close()
    assert h.calls[0].hangup_by == "bot"


def test_flush_stops_playout_within_one_packet() -> None:
    import socket

    sent: list[bytes] = []
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    stream = RtpStream(a, ("127.0.0.1", 9), 8, 101, lambda _: None, lambda _: None)
    playout = stream.out
    assert isinstance(playout, Playout)
    stream.play(tone(1.0))
    for _ in range(5):
        sent.append(playout.next_packet()[0])
    dropped = stream.flush()
    assert dropped == [] and not stream.playing
    packet, _, _ = playout.next_packet()
    assert packet[12:] == playout.silence
    seqs = [struct.unpack("!H", p[2:4])[0] for p in [*sent, packet]]
    assert all((b - a_) & 0xFFFF == 1 for a_, b in itertools.pairwise(seqs))
    a.close()
    assert threading.active_count() >= 1


def _invite(port: int, media_port: int) -> bytes:
    body = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {media_port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n")  # fmt: skip
    return (f"INVITE sip:12345@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKsdp{media_port}\r\n"
            "From: <sip:13800000000@127.0.0.1>;tag=caller\r\nTo: <sip:12345@127.0.0.1>\r\n"
            f"Call-ID: sdp-{media_port}@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            "Contact: <sip:13800000000@127.0.0.1:5999>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()  # fmt: skip


def _exchange(port: int, data: bytes, timeout_s: float = 2.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        sock.sendto(data, ("127.0.0.1", port))
        try:
            return sock.recvfrom(65536)[0]
        except TimeoutError:
            return b""


@pytest.mark.parametrize("media_port", [99999, 0])
def test_an_offer_with_an_impossible_audio_port_gets_488(media_port: int) -> None:
    h = Harness(settings())

    async def body() -> None:
        reply = await asyncio.to_thread(_exchange, h.settings.bind_port,
                                        _invite(h.settings.bind_port, media_port))  # fmt: skip
        assert reply.startswith(b"SIP/2.0 488 "), reply[:80]
        assert not h.endpoint.calls  # no call, no media stream

    asyncio.run(h.run(body))


def _in_dialog(method: str, port: int, call_id: str, from_tag: str, to_tag: str,
               body: str = "") -> bytes:  # fmt: skip
    return (f"{method} sip:12345@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{method}{from_tag}{to_tag}\r\n"
            f"From: <sip:13800000000@127.0.0.1>;tag={from_tag}\r\n"
            f"To: <sip:12345@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 2 {method}\r\nMax-Forwards: 70\r\n"
            + ("Content-Type: application/dtmf-relay\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n{body}").encode()  # fmt: skip


def test_a_stranger_who_knows_the_call_id_can_neither_end_nor_steer_the_call() -> None:
    """BYE and INFO must come from the dialog's peer with both its tags (RFC 3261 12.2.2):
    a BYE from another host, or with guessed tags, ended the call and an INFO pressed 0."""
    h = Harness(settings())
    media = free_udp_port()

    def final(sock: socket.socket) -> bytes:
        while True:
            reply = sock.recvfrom(65536)[0]
            if int(reply.split(b" ", 2)[1]) >= 200:
                return reply

    def from_host(host: str, data: bytes) -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
            sock.settimeout(2.0)
            sock.sendto(data, ("127.0.0.1", h.settings.bind_port))
            return final(sock)

    async def body() -> None:
        port = h.settings.bind_port
        call_id = f"sdp-{media}@127.0.0.1"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
            caller.bind(("127.0.0.1", 0))
            caller.settimeout(3.0)
            caller.sendto(_invite(port, media), ("127.0.0.1", port))
            ok = await asyncio.to_thread(final, caller)
            assert ok.startswith(b"SIP/2.0 200 ")
            ours = ok.split(b"To: ", 1)[1].split(b"\r\n", 1)[0].split(b"tag=")[1].decode()
            caller.sendto(_in_dialog("ACK", port, call_id, "caller", ours), ("127.0.0.1", port))
            attacks = [
                ("127.0.0.2", _in_dialog("BYE", port, call_id, "guess", "guess")),
                ("127.0.0.2", _in_dialog("BYE", port, call_id, "caller", ours)),
                ("127.0.0.1", _in_dialog("BYE", port, call_id, "caller", "guess")),
                (
                    "127.0.0.2",
                    _in_dialog(
                        "INFO", port, call_id, "caller", ours, "Signal=0\r\nDuration=160\r\n"
                    ),
                ),
            ]
            for host, attack in attacks:
                reply = await asyncio.to_thread(from_host, host, attack)
                assert reply.startswith(b"SIP/2.0 481 "), (host, attack[:40], reply[:60])
            call = h.calls[0]
            assert not call.ended.is_set() and h.keys[call.call_id] == ""
            caller.sendto(_in_dialog("BYE", port, call_id, "caller", ours), ("127.0.0.1", port))
            assert (await asyncio.to_thread(final, caller)).startswith(b"SIP/2.0 200 ")
            await asyncio.wait_for(call.ended.wait(), 2)

    asyncio.run(h.run(body))


@pytest.mark.parametrize("what", sorted(bad_offers()))
def test_every_nonsense_offer_gets_488_without_a_call(what: str) -> None:
    """Unreadable SDP too (a port that is a word, binary junk): the headers still parse,
    so the peer gets its 488 instead of retransmitting into silence."""
    h = Harness(settings())
    sdp = bad_offers()[what]

    async def body() -> None:
        code = await asyncio.to_thread(send_invite, h.settings.bind_port, sdp, 2.0)
        assert code == 488, what
        assert not h.endpoint.calls

    asyncio.run(h.run(body))


def test_a_60kb_junk_datagram_is_refused_before_parsing_and_options_stay_fast() -> None:
    from hotline.logs import MaskingFilter
    from ivr.sip import refusal

    rng = np.random.default_rng(0)
    junk = bytes(rng.integers(ord("A"), ord("z"), 60_000, dtype=np.uint8))
    assert refusal(junk) == "oversized"
    assert refusal(b"INVITE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 200 + b"\r\n") == (
        "too-many-headers"
    )
    assert refusal(b"hello world\r\n\r\n") == "not-sip"
    h = Harness(settings())
    handler = logging.StreamHandler(io.StringIO())
    handler.addFilter(MaskingFilter())  # production logging, masking included
    logging.getLogger("ivr.sip").addHandler(handler)

    async def body() -> None:
        port = h.settings.bind_port
        for _ in range(5):
            await asyncio.to_thread(_exchange, port, junk, 0.05)
            reply = await asyncio.to_thread(
                _exchange, port,
                (f"OPTIONS sip:12345@127.0.0.1:{port} SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP 127.0.0.1:5998;branch=z9hG4bKopt\r\n"
                 "From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:12345@127.0.0.1>\r\n"
                 "Call-ID: probe@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                 ).encode(),
            )  # fmt: skip
            assert reply.startswith(b"SIP/2.0 200 ")  # answered right after each bomb
        assert h.endpoint is not None

    try:
        asyncio.run(h.run(body))
    finally:
        logging.getLogger("ivr.sip").removeHandler(handler)
    assert len(handler.stream.getvalue()) < 1000  # the junk itself is never logged


def test_masking_a_log_line_is_linear_in_its_length() -> None:
    from hotline.logs import mask_text

    rng = np.random.default_rng(1)
    letters = bytes(rng.integers(ord("a"), ord("z"), 60_000, dtype=np.uint8)).decode()
    started = time.perf_counter()
    mask_text(letters)
    # Not a speed target: a hang check (it took 20 s, quadratic in a run of letters).
    assert time.perf_counter() - started < 2.0
    assert mask_text("redis://:pw@host") == "redis://:***@host"


def test_invites_only_from_the_configured_asterisk() -> None:
    h = Harness(settings(invite_sources=["127.0.0.2"]))

    async def body() -> None:
        code = await asyncio.to_thread(send_invite, h.settings.bind_port, "", 2.0)
        assert code == 403
        assert not h.endpoint.calls

    asyncio.run(h.run(body))


def test_one_source_cannot_fill_the_call_slots_with_invites() -> None:
    """Bursts of twice the per-source rate pass (to their 488 here: no usable SDP); the
    rest get 503 at once instead of taking a slot each."""
    h = Harness(settings(invites_per_source_s=2))
    sdp = bad_offers()["port-0"]

    async def body() -> None:
        codes = [await asyncio.to_thread(send_invite, h.settings.bind_port, sdp, 2.0)
                 for _ in range(10)]  # fmt: skip
        assert codes[:4] == [488] * 4 and set(codes[4:]) == {503}, codes
        await asyncio.sleep(1.1)  # two more a second
        assert await asyncio.to_thread(send_invite, h.settings.bind_port, sdp, 2.0) == 488

    asyncio.run(h.run(body))


def test_an_answer_nobody_acknowledges_ends_the_call_as_no_ack(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import ivr.sip

    monkeypatch.setattr(ivr.sip, "T1", 0.02)  # Timer H (64 x T1) in 1.3 s instead of 32 s
    h = Harness(settings())

    async def body() -> None:
        port = h.settings.bind_port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
            caller.bind(("127.0.0.1", 0))
            caller.sendto(_invite(port, free_udp_port()), ("127.0.0.1", port))  # never ACKed
            for _ in range(50):
                if h.calls:
                    break
                await asyncio.sleep(0.05)
            await asyncio.wait_for(h.calls[0].ended.wait(), 5)
        assert h.calls[0].hangup_by == "no-ack"

    asyncio.run(h.run(body))
