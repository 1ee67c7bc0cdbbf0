"""The caller's RTP put back in order before the recogniser hears it (ivr.rtp.ReorderBuffer).

Packet streams are built from one A-law clip with distinct payloads, then duplicated,
reordered, dropped or wrapped as a network does; what reaches ``on_audio`` is compared
byte for byte with the clip decoded in order. Before the buffer, duplicates were decoded
twice (the recogniser heard stutters and gave a wrong knowledge-base answer) and a 2 KB
payload became 250 ms of noise.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import numpy as np
import pytest

from hotline.audio import alaw_decode, alaw_encode
from ivr.rtp import PCMA, RtpStream, build_rtp

PEER = ("127.0.0.1", 40000)
SSRC = 0x1234


def clip_payloads(count: int = 50) -> list[bytes]:
    ramp = np.linspace(-12000, 12000, count * 160).astype("<i2").tobytes()
    encoded = alaw_encode(ramp)
    return [encoded[i * 160 : (i + 1) * 160] for i in range(count)]


@pytest.fixture
def stream() -> Iterator[tuple[RtpStream, bytearray, list[str]]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    heard = bytearray()
    keys: list[str] = []
    rtp = RtpStream(sock, PEER, PCMA, 101, heard.extend, keys.append)
    yield rtp, heard, keys
    rtp.close()


def packets(payloads: list[bytes], first_seq: int = 1000) -> list[bytes]:
    return [build_rtp(PCMA, i == 0, (first_seq + i) & 0xFFFF, 160 * i, SSRC, p)
            for i, p in enumerate(payloads)]  # fmt: skip


def in_order(payloads: list[bytes]) -> bytes:
    return b"".join(alaw_decode(p) for p in payloads)


def feed(rtp: RtpStream, datagrams: list[bytes]) -> None:
    for data in datagrams:
        rtp.handle_datagram(data, PEER)


def test_in_order_packets_are_heard_at_once(stream) -> None:  # type: ignore[no-untyped-def]
    rtp, heard, _ = stream
    payloads = clip_payloads()
    for index, data in enumerate(packets(payloads)):
        rtp.handle_datagram(data, PEER)
        assert len(heard) == 320 * (index + 1)  # no added delay
    assert bytes(heard) == in_order(payloads)


def test_duplicated_packets_are_heard_once(stream) -> None:  # type: ignore[no-untyped-def]
    rtp, heard, _ = stream
    payloads = clip_payloads()
    feed(rtp, [d for d in packets(payloads) for _ in range(2)])
    assert bytes(heard) == in_order(payloads)
    assert rtp.stats.late_dropped == len(payloads)


def test_packets_reordered_within_60_ms_are_put_back(stream) -> None:  # type: ignore[no-untyped-def]
    rtp, heard, _ = stream
    payloads = clip_payloads()
    sent = packets(payloads)
    rng = random.Random(7)
    shuffled: list[bytes] = sent[:1]  # the first packet starts the sequence
    for start in range(1, len(sent), 3):  # then each 60 ms shuffled, as a busy path does
        group = sent[start : start + 3]
        rng.shuffle(group)
        shuffled += group
    feed(rtp, shuffled)
    assert bytes(heard) == in_order(payloads)
    assert rtp.stats.lost == 0 and rtp.stats.late_dropped == 0


def test_a_lost_packet_becomes_20_ms_of_silence_in_its_place(stream) -> None:  # type: ignore[no-untyped-def]
    rtp, heard, _ = stream
    payloads = clip_payloads()
    sent = packets(payloads)
    feed(rtp, sent[:10] + sent[11:])
    expected = in_order(payloads[:10]) + b"\x00\x00" * 160 + in_order(payloads[11:])
    assert bytes(heard) == expected
    assert rtp.stats.lost == 1
    rtp.handle_datagram(sent[10], PEER)  # arriving after it was given up: too late
    assert bytes(heard) == expected and rtp.stats.late_dropped == 1


def test_sequence_numbers_wrap_around(stream) -> None:  # type: ignore[no-untyped-def]
    rtp, heard, _ = stream
    payloads = clip_payloads(20)
    feed(rtp, packets(payloads, first_seq=65530))
    assert bytes(heard) == in_order(payloads)


def test_a_new_stream_after_a_jump_is_followed(stream) -> None:  # type: ignore[no-untyped-def]
    """A re-INVITE or a transfer restarts the sequence: not 30,000 lost packets."""
    rtp, heard, _ = stream
    payloads = clip_payloads(20)
    feed(rtp, packets(payloads[:10], 1000) + packets(payloads[10:], 31000))
    assert bytes(heard) == in_order(payloads)
    assert rtp.stats.lost == 0


def test_oversized_payloads_are_not_decoded_as_noise(stream) -> None:  # type: ignore[no-untyped-def]
    rtp, heard, _ = stream
    payloads = clip_payloads(10)
    sent = packets(payloads)
    noise = build_rtp(PCMA, False, 1005, 0, SSRC, bytes(range(256)) * 8)  # 2,048 bytes
    feed(rtp, [*sent[:5], noise, *sent[5:]])
    assert bytes(heard) == in_order(payloads)
    assert rtp.stats.oversized_dropped == 1


def test_key_presses_in_a_stream_of_their_own_leave_the_audio_alone(stream) -> None:  # type: ignore[no-untyped-def]
    rtp, heard, keys = stream
    payloads = clip_payloads(20)
    sent = packets(payloads)
    event = bytes([5, 0x0A, 0x00, 0xA0])  # key 5, volume 10, 160 samples
    dtmf = [build_rtp(101, i == 0, 7000 + i, 4000, 0x9999, event) for i in range(3)]
    feed(rtp, sent[:8] + dtmf + sent[8:])
    assert bytes(heard) == in_order(payloads)
    assert keys == ["5"]


def test_a_key_press_replayed_after_a_pause_is_a_new_press(stream, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Testers (sipp's pcap play) replay one recorded press, numbers and all: after a
    quiet half second a repeated sequence starts over instead of being dropped as late."""
    import ivr.rtp

    rtp, _, keys = stream
    now = [100.0]
    monkeypatch.setattr(ivr.rtp.time, "monotonic", lambda: now[0])
    press = [build_rtp(101, i == 0, 7000 + i, 4000, 0x9999,
                       bytes([0, 0x0A, 0x00, 0xA0])) for i in range(3)]  # fmt: skip
    feed(rtp, press)
    now[0] += 2.0
    feed(rtp, press)
    assert keys == ["0", "0"]


def test_rtp_headers_that_lie_about_their_length_are_not_rtp() -> None:
    """aiortc's vectors: a padding count of 0, padding longer than the packet, a CSRC
    count pointing past the end; each is refused, not decoded as audio."""
    from ivr.rtp import parse_rtp

    good = build_rtp(PCMA, False, 1, 160, SSRC, b"\xd5" * 160)
    assert parse_rtp(good) is not None
    padded_zero = bytes([good[0] | 0x20]) + good[1:-1] + b"\x00"
    padded_too_much = bytes([good[0] | 0x20]) + good[1:-1] + b"\xff"
    csrc_past_end = bytes([good[0] | 0x0F]) + good[1:12] + b"\x00" * 8
    assert parse_rtp(padded_zero) is None
    assert parse_rtp(padded_too_much) is None
    assert parse_rtp(csrc_past_end) is None


def key_press(key: int, seq: int) -> list[bytes]:
    """RFC 2833 event ``key``: three packets, the last with the end bit."""
    return [build_rtp(101, i == 0, seq + i, seq * 160, SSRC + 1,
                      bytes([key, 0x80 if i == 2 else 0x0A]) + (160 * (i + 1)).to_bytes(2, "big"))
            for i in range(3)]  # fmt: skip


def test_audio_and_keys_from_another_port_of_the_callers_host_are_dropped(stream) -> None:  # type: ignore[no-untyped-def]
    rtp, heard, keys = stream
    stranger = (PEER[0], PEER[1] + 2)  # same host (Asterisk's box), another process
    for data in packets(clip_payloads(5)) + key_press(0, 500):
        rtp.handle_datagram(data, stranger)
    assert not heard and keys == []
    assert rtp.stats.foreign_dropped == 8
    feed(rtp, key_press(5, 600))  # from the port the SDP named: heard
    assert keys == ["5"]


def test_symmetric_rtp_pins_the_first_packets_address_and_port() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    keys: list[str] = []
    rtp = RtpStream(sock, PEER, PCMA, 101, lambda _: None, keys.append, symmetric=True)
    try:
        behind_nat = ("127.0.0.1", 51000)
        rtp.handle_datagram(packets(clip_payloads(1))[0], behind_nat)
        for data in key_press(0, 500):
            rtp.handle_datagram(data, ("127.0.0.1", 51002))
        assert keys == [] and rtp.remote == behind_nat
        for data in key_press(7, 600):
            rtp.handle_datagram(data, behind_nat)
        assert keys == ["7"]
    finally:
        rtp.close()


def test_test_peers_may_send_keys_from_another_port_when_strict_rtp_is_off() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    keys: list[str] = []
    rtp = RtpStream(sock, PEER, PCMA, 101, lambda _: None, keys.append, strict_port=False)
    try:
        for data in key_press(3, 500):
            rtp.handle_datagram(data, ("127.0.0.1", 0))  # sipp's pcap keys: source port 0
        assert keys == ["3"]
        for data in key_press(4, 600):
            rtp.handle_datagram(data, ("127.0.0.2", PEER[1]))  # another host: still refused
        assert keys == ["3"]
    finally:
        rtp.close()
