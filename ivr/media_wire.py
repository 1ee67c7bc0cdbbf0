"""The messages between the controller and its media process (``ivr.media``), typed, and
their wire form: one message per SOCK_SEQPACKET datagram.

Hand-written rather than pickle: every message is a fixed ``struct`` layout behind a
one-byte tag, with at most one variable field (a chunk of audio, a host name, a reason)
at the end. A malformed or unknown message is a ``WireError`` the receiver skips, never
code run or an object of an unexpected type; the format is the same whatever Python
objects look like on either side, and a test pins it byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import ClassVar

_TAG = struct.Struct("!B")


class WireError(ValueError):
    """Bytes that are not a message of this protocol."""


@dataclass(frozen=True, slots=True)
class Message:
    TAG: ClassVar[int]
    FIXED: ClassVar[struct.Struct]  # the fixed fields, in declaration order
    TAIL: ClassVar[type | None] = None  # the last field's type when it is variable

    def encode(self) -> bytes:
        values = [getattr(self, f.name) for f in fields(self)]  # no deep copy of audio
        if self.TAIL is None:
            return _TAG.pack(self.TAG) + self.FIXED.pack(*values)
        tail = values[-1]
        raw = tail.encode() if isinstance(tail, str) else bytes(tail)
        return _TAG.pack(self.TAG) + self.FIXED.pack(*values[:-1]) + raw


# ---- controller -> media process ----


@dataclass(frozen=True, slots=True)
class Add(Message):
    """A call's stream (its socket travels beside the message, SCM_RIGHTS): where to send,
    in which law, and the RTP counters to continue from."""

    TAG = 1
    FIXED = struct.Struct("!IBHIIH")
    TAIL = str
    key: int
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    port: int
    host: str


@dataclass(frozen=True, slots=True)
class Play(Message):
    """G.711 to queue; ``token`` (0: none) is reported ``Done`` after its last packet."""

    TAG = 2
    FIXED = struct.Struct("!II")
    TAIL = bytes
    key: int
    token: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Flush(Message):
    TAG = 3
    FIXED = struct.Struct("!I")
    key: int


@dataclass(frozen=True, slots=True)
class Retarget(Message):
    TAG = 4
    FIXED = struct.Struct("!IH")
    TAIL = str
    key: int
    port: int
    host: str


@dataclass(frozen=True, slots=True)
class Remove(Message):
    TAG = 5
    FIXED = struct.Struct("!I")
    key: int


@dataclass(frozen=True, slots=True)
class Stop(Message):
    TAG = 6
    FIXED = struct.Struct("!")


# ---- media process -> controller ----


@dataclass(frozen=True, slots=True)
class Started(Message):
    """A prompt's first packet left at ``at`` (monotonic clock, shared by the processes)."""

    TAG = 20
    FIXED = struct.Struct("!Id")
    key: int
    at: float


@dataclass(frozen=True, slots=True)
class Done(Message):
    TAG = 21
    FIXED = struct.Struct("!II")
    key: int
    token: int


@dataclass(frozen=True, slots=True)
class Rejected(Message):
    TAG = 22
    FIXED = struct.Struct("!I")
    TAIL = str
    key: int
    why: str


@dataclass(frozen=True, slots=True)
class Removed(Message):
    TAG = 23
    FIXED = struct.Struct("!IQ")
    key: int
    packets: int


@dataclass(frozen=True, slots=True)
class Stats(Message):
    TAG = 24
    FIXED = struct.Struct("!QQdQ")
    TAIL = str
    ticks: int
    late_ticks: int
    max_late_ms: float
    resyncs: int
    scheduling: str


_ALL: tuple[type[Message], ...] = (Add, Play, Flush, Retarget, Remove, Stop, Started, Done,
                                   Rejected, Removed, Stats)  # fmt: skip
KINDS: dict[int, type[Message]] = {kind.TAG: kind for kind in _ALL}


def decode(data: bytes) -> Message:
    """The message in ``data``; ``WireError`` for anything else."""
    if not data:
        raise WireError("empty message")
    kind = KINDS.get(data[0])
    if kind is None:
        raise WireError(f"unknown message tag {data[0]}")
    size = kind.FIXED.size
    body = data[1 : 1 + size]
    if len(body) != size or (kind.TAIL is None and len(data) != 1 + size):
        raise WireError(f"{kind.__name__}: {len(data)} bytes, not its layout")
    values: list[object] = list(kind.FIXED.unpack(body))
    if kind.TAIL is not None:
        tail = data[1 + size :]
        try:
            values.append(tail.decode() if kind.TAIL is str else bytes(tail))
        except UnicodeDecodeError as exc:
            raise WireError(f"{kind.__name__}: text field is not UTF-8") from exc
    return kind(*values)
