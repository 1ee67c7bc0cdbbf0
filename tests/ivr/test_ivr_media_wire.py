"""The controller <-> media process protocol (ivr.media_wire): pinned byte for byte, every
message read back as written, anything else refused with WireError (never unpickled)."""

from __future__ import annotations

import pytest

from ivr import media_wire as wire

EVERY_MESSAGE: list[wire.Message] = [
    wire.Add(7, 8, 65535, 4_294_967_295, 0xDEADBEEF, 40000, "127.0.0.1"),
    wire.Play(7, 3, b"\xd5" * 160),
    wire.Play(7, 0, b""),
    wire.Flush(7),
    wire.Retarget(7, 40002, "192.0.2.10"),
    wire.Remove(7),
    wire.Stop(),
    wire.Started(7, 12345.25),
    wire.Done(7, 3),
    wire.Rejected(7, "bad remote ('127.0.0.1', 0)"),
    wire.Removed(7, 1500),
    wire.Stats(100, 2, 5.5, 1, "SCHED_FIFO 10"),
]


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_reads_back_as_written(message: wire.Message) -> None:
    assert wire.decode(message.encode()) == message


def test_the_wire_form_is_fixed_byte_for_byte() -> None:
    # tag, key (u32), payload type (u8), seq (u16), timestamp (u32), ssrc (u32), port (u16),
    # then the host's UTF-8 to the end of the datagram.
    add = wire.Add(1, 8, 100, 16000, 0xDEADBEEF, 4000, "127.0.0.1")
    assert (
        add.encode() == bytes.fromhex("01 00000001 08 0064 00003e80 deadbeef 0fa0") + b"127.0.0.1"
    )
    play = wire.Play(3, 7, b"\xd5\xd5")
    assert play.encode() == bytes.fromhex("02 00000003 00000007 d5d5")
    assert wire.Stop().encode() == b"\x06"


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "empty"),
        (b"\x63" + b"\x00" * 8, "unknown message tag 99"),
        (bytes.fromhex("02 000000"), "Play: 4 bytes"),  # cut short
        (bytes.fromhex("03 00000001 ff"), "Flush: 6 bytes"),  # a byte too many
        (bytes.fromhex("01 00000001 08 0064 00003e80 deadbeef 0fa0") + b"\xff\xfe", "UTF-8"),
        (b"\x80\x04\x95" + b"pickle", "unknown message tag 128"),  # the old pickled form
    ],
)
def test_anything_else_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(wire.WireError, match=why):
        wire.decode(data)


def test_a_value_outside_its_field_cannot_be_sent() -> None:
    import struct

    with pytest.raises(struct.error):
        wire.Retarget(7, 99999, "127.0.0.1").encode()  # ports are 16 bits
