"""RTP media: G.711 in and out as 16-bit PCM, RFC 2833 DTMF, and a paced, flushable sender.

Why not pyVoIP's ``RTPClient`` (1.6.8): it hands the application 8-bit linear audio
(``audioop.ulaw2lin(payload, 1)``: 8 bits lose the resolution the recogniser needs),
encodes PCMA calls with the mu-law encoder (``encode_packet`` calls ``encode_pcmu`` for
both), paces its sender with ``sleep(delay - elapsed)`` so lateness accumulates and
nothing brings it back on schedule, keeps outgoing audio in a ``BytesIO`` that cannot
be flushed (barge-in must cut a prompt at once), runs two polling threads per call
(``sleep(0.01)`` loops: 80 threads for 40 calls) and depends on ``audioop``, removed in
Python 3.13. This module replaces it with:

* ``RtpStream``: one per call; decodes A-law/mu-law payloads straight to 16-bit PCM with
  ``hotline.audio`` (byte-exact G.711 tables), encodes with the negotiated law, parses
  RFC 2833 telephone-events once per key press, and keeps a playout queue of encoded
  20 ms packets that ``flush()`` empties in one step.
* ``MediaClock``: a single thread that sends one packet for every active stream each
  20 ms on a drift-corrected monotonic schedule (deadline n = start + n * 20 ms, never
  "sleep 20 ms after the last send"), so recogniser load or a slow event loop cannot
  stretch the outgoing audio. It counts packets sent outside 20 ms +- 5 ms.
  Its thread asks Linux for real-time scheduling (``SCHED_FIFO``), else a raised nice
  value: measured on 2 busy cores (10 calls, Whisper decoding), a normal-priority clock
  thread woke up to 90 ms late 16-30 times per run, waiting for the CPU behind decode and
  sipp threads, not for the GIL (the bot's turn takes < 30 ms and the feature extraction
  ~10 ms); with SCHED_FIFO 3 late ticks remained.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hotline.audio import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

log = logging.getLogger(__name__)

PCMU, PCMA = 0, 8
CODEC_NAMES = {PCMU: "PCMU", PCMA: "PCMA"}
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
PACKET_S = 0.020
TOLERANCE_S = 0.005
DTMF_KEYS = "0123456789*#ABCD"

_DECODERS = {PCMA: alaw_decode, PCMU: ulaw_decode}
_ENCODERS = {PCMA: alaw_encode, PCMU: ulaw_encode}


class RtpError(Exception):
    """A media problem the caller of the API must handle (no free port, bad codec)."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket | None:
    """Parse an RTP packet (RFC 3550); None for anything that is not RTP version 2."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if len(data) < offset + 4:
            return None
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:  # padding: the last byte counts the pad bytes, itself included
        if data[-1] == 0:
            return None  # RFC 3550 5.1: at least the count byte itself (aiortc agrees)
        end -= data[-1]
    if end < offset:
        return None
    return RtpPacket(second & 0x7F, bool(second & 0x80), seq, ts, ssrc, data[offset:end])


def build_rtp(pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload


class PortPool:
    """Even UDP ports for RTP (RTCP would take the odd one above), handed out round-robin."""

    def __init__(self, host: str, low: int, high: int) -> None:
        self.host = host
        self._ports = deque(p for p in range(low + low % 2, high, 2))
        self._lock = threading.Lock()

    def open(self) -> socket.socket:
        with self._lock:
            for _ in range(len(self._ports)):
                port = self._ports.popleft()
                self._ports.append(port)
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    sock.bind((self.host, port))
                except OSError:
                    sock.close()
                    continue
                sock.setblocking(False)
                return sock
        raise RtpError(f"no free RTP port on {self.host}")


class Outgoing(Protocol):
    """Where a stream's outgoing audio waits for the media clock (see ``Playout``)."""

    def extend(self, payload: bytes, done: Any = None) -> None: ...

    def flush(self) -> list[Any]: ...

    @property
    def busy(self) -> bool: ...

    def retarget(self, remote: tuple[str, int]) -> None: ...


@dataclass(slots=True)
class _Queued:
    payload: bytes
    done: Any = None  # handed back after the last packet of a prompt


class Playout:
    """One call's outgoing packets: queued 20 ms payloads and the RTP header counters.

    Pure state, no I/O: the media clock (a thread of this process, or the media process
    of ``ivr.media``) asks it for the packet of each 20 ms tick. ``done`` tokens queued
    with a prompt come back with its last packet, or from ``flush`` when it is dropped.
    """

    def __init__(self, payload_type: int, seq: int, ts: int, ssrc: int) -> None:
        self.payload_type = payload_type
        self.silence = _ENCODERS[payload_type](b"\x00\x00" * SAMPLES_PER_PACKET)
        self._queue: deque[_Queued] = deque()
        self._lock = threading.Lock()
        self._seq, self._ts, self._ssrc = seq, ts, ssrc
        self._talking = False

    @classmethod
    def new(cls, payload_type: int) -> Playout:
        """Random initial sequence number, timestamp and SSRC (RFC 3550 5.1)."""
        return cls(payload_type, random.randint(0, 0xFFFF), random.randint(0, 0xFFFFFFFF),
                   random.randint(1, 0xFFFFFFFF))  # fmt: skip

    @property
    def counters(self) -> tuple[int, int, int]:
        return self._seq, self._ts, self._ssrc

    def extend(self, payload: bytes, done: Any = None) -> None:
        """Queue encoded audio (cut into 20 ms packets, the last padded with silence)."""
        step = SAMPLES_PER_PACKET
        chunks = [payload[i : i + step] for i in range(0, len(payload), step)] or [self.silence]
        if len(chunks[-1]) < step:
            chunks[-1] += self.silence[: step - len(chunks[-1])]
        items = [_Queued(c) for c in chunks]
        items[-1].done = done
        with self._lock:
            self._queue.extend(items)

    def flush(self) -> list[Any]:
        """Drop everything queued; returns the ``done`` tokens of the dropped prompts."""
        with self._lock:
            dropped = [q.done for q in self._queue if q.done is not None]
            self._queue.clear()
        return dropped

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def retarget(self, remote: tuple[str, int]) -> None:
        """Nothing to do: the in-process clock sends to the stream's current address."""

    def next_packet(self) -> tuple[bytes, Any, bool]:
        """The packet for this tick, the ``done`` token it completes, and whether it starts
        a talkspurt (the first audio packet after silence)."""
        with self._lock:
            item = self._queue.popleft() if self._queue else None
        if item is None:
            payload, done, marker = self.silence, None, False
            self._talking = False
        else:
            payload, done = item.payload, item.done
            marker = not self._talking  # first packet of a talkspurt (RFC 3551 4.1)
            self._talking = True
        packet = build_rtp(self.payload_type, marker, self._seq, self._ts, self._ssrc, payload)
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + SAMPLES_PER_PACKET) & 0xFFFFFFFF
        return packet, done, marker


REORDER_PACKETS = 3  # wait this many later packets (60 ms) for a missing one
MAX_AUDIO_PAYLOAD = 480  # 60 ms of G.711: a longer payload is not a phone's packet
_SEQ_JUMP = 100  # a jump this large is a new stream (re-INVITE, transfer), not loss


_QUIET_RESTART_S = 0.5  # after this long without a packet, a stream may start over


@dataclass(slots=True)
class _Sequence:
    expected: int
    held: dict[int, RtpPacket] = field(default_factory=dict)
    last_at: float = 0.0


class ReorderBuffer:
    """RTP back in sequence order before decoding: duplicates and packets older than what
    was delivered are dropped, a packet arriving up to ``REORDER_PACKETS`` late is put in
    its place, a missing one is given up for silence (``on_lost``) once that many later
    packets have come. The first packet of a stream starts its sequence. Per SSRC, because
    a peer may send key presses in a stream of their own (sipp replays recorded events).
    Hand-written: jitter buffers in libraries (aiortc's) are tied to their own receivers
    and decoders; the reply path needs only this, with no delay while packets arrive in
    order."""

    def __init__(self, deliver: Callable[[RtpPacket], None], on_lost: Callable[[int], None],
                 stats: StreamStats, depth: int = REORDER_PACKETS) -> None:  # fmt: skip
        self.deliver, self.on_lost, self.stats, self.depth = deliver, on_lost, stats, depth
        self._streams: dict[int, _Sequence] = {}

    def push(self, packet: RtpPacket) -> None:
        state = self._streams.get(packet.ssrc)
        if state is None:
            if len(self._streams) >= 8:  # a peer cycling SSRCs must not grow this
                self._streams.clear()
            state = self._streams[packet.ssrc] = _Sequence(packet.sequence)
        now = time.monotonic()
        quiet = state.last_at and now - state.last_at > _QUIET_RESTART_S
        state.last_at = now
        ahead = (packet.sequence - state.expected) & 0xFFFF
        if quiet and ahead:
            # Half a second of nothing, then a sequence that does not follow: a new
            # stream (a key press replayed from a recording repeats its numbers), not a
            # packet half a second late.
            self._restart(state, packet)
        elif ahead >= 0x10000 - _SEQ_JUMP:  # a little behind: seen already, or too late
            self.stats.late_dropped += 1
        elif ahead > _SEQ_JUMP:  # far ahead or far behind: the peer started a new stream
            self._restart(state, packet)
        elif packet.sequence in state.held:
            self.stats.late_dropped += 1  # a duplicate of one waiting
        else:
            state.held[packet.sequence] = packet
            self._release(state)

    def _restart(self, state: _Sequence, packet: RtpPacket) -> None:
        for seq in sorted(state.held, key=lambda s: (s - state.expected) & 0xFFFF):
            self.deliver(state.held[seq])
        state.held.clear()
        state.expected = packet.sequence
        state.held[packet.sequence] = packet
        self._release(state)

    def _release(self, state: _Sequence) -> None:
        while state.held:
            packet = state.held.pop(state.expected, None)
            if packet is not None:
                self.deliver(packet)
                state.expected = (state.expected + 1) & 0xFFFF
                continue
            newest = max((s - state.expected) & 0xFFFF for s in state.held)
            if newest < self.depth:
                return  # wait: the missing packet may still come
            self.stats.lost += 1
            self.on_lost(1)
            state.expected = (state.expected + 1) & 0xFFFF


@dataclass(slots=True)
class StreamStats:
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    dtmf: str = ""
    first_in_at: float = 0.0  # monotonic arrival of the first caller packet
    first_audio_out_at: float = 0.0  # monotonic time of the first non-silent packet
    audio_out_times: list[float] = field(default_factory=list)  # start of each prompt
    foreign_dropped: int = 0  # RTP from another source than the call's (spoofing, floods)
    late_dropped: int = 0  # duplicates, and packets behind what was already delivered
    lost: int = 0  # missing packets given up (replaced by 20 ms of silence each)
    oversized_dropped: int = 0  # audio payloads longer than 60 ms


class RtpStream:
    """One call's media. ``on_audio`` gets 8 kHz 16-bit PCM per packet; ``on_dtmf`` one key."""

    def __init__(
        self,
        sock: socket.socket,
        remote: tuple[str, int],
        payload_type: int,
        dtmf_payload_type: int | None,
        on_audio: Callable[[bytes], None],
        on_dtmf: Callable[[str], None],
        symmetric: bool = False,
        strict_port: bool = True,
    ) -> None:
        if payload_type not in _DECODERS:
            raise RtpError(f"unsupported payload type {payload_type}; G.711 (0, 8) only")
        self.sock = sock
        self.local_port: int = sock.getsockname()[1]
        self.remote = remote
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.on_audio = on_audio
        self.on_dtmf = on_dtmf
        self._decode = _DECODERS[payload_type]
        self._encode = _ENCODERS[payload_type]
        # Where outgoing audio is queued: here, for the in-process MediaClock, or a
        # proxy to the media process (ivr.media.MediaProcess.add replaces it).
        self.out: Outgoing = Playout.new(payload_type)
        self._last_dtmf_ts: int | None = None
        self._last_dtmf_at = 0.0
        self._latched = not symmetric
        # Where the caller's media comes from: the SDP's address and port (or, symmetric,
        # the first packet's), as Asterisk's strict_rtp. RTP from anywhere else is dropped,
        # so a stranger's packets can neither speak into the call nor press keys
        # (telephone-events), not even from another port of the caller's host.
        # ``strict_port=False`` checks the address only: for test peers (sipp) that send
        # key presses from another port than their audio; never for a trunk.
        self.source_host: str | None = None if symmetric else remote[0]
        self.source_port: int | None = None if symmetric else remote[1]
        self._strict_port = strict_port
        self.stats = StreamStats()
        self._in_order = ReorderBuffer(self._play_in, self._silence_in, self.stats)
        self.closed = False

    # ---- outgoing ----
    def play(self, pcm8k: bytes, done: Callable[[], None] | None = None) -> None:
        """Queue 8 kHz 16-bit PCM behind what is already queued; ``done`` fires after it."""
        self.out.extend(self._encode(pcm8k), done)

    def flush(self) -> list[Callable[[], None]]:
        """Drop everything queued (barge-in); returns the ``done`` callbacks of dropped prompts."""
        return self.out.flush()

    @property
    def playing(self) -> bool:
        return self.out.busy

    def note_sent(self, now: float, talkspurt: bool) -> None:
        """Count a packet the media clock sent (``talkspurt``: the first of a prompt)."""
        self.stats.packets_out += 1
        if talkspurt:
            self.note_talkspurt(now)

    def note_talkspurt(self, at: float) -> None:
        """A prompt's first packet left at ``at`` (monotonic): reply latency starts here."""
        self.stats.audio_out_times.append(at)
        if not self.stats.first_audio_out_at:
            self.stats.first_audio_out_at = at

    def send(self, packet: bytes) -> bool:
        try:
            self.sock.sendto(packet, self.remote)
        except OSError as exc:  # peer gone or socket closed under us: the call is ending
            log.debug("RTP send to %s failed: %s", self.remote, exc)
            return False
        return True

    # ---- incoming ----
    def receive_ready(self) -> None:
        """Drain the socket (called by the event loop when it is readable)."""
        while not self.closed:
            try:
                data, source = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.handle_datagram(data, source)

    def handle_datagram(self, data: bytes, source: tuple[str, int]) -> None:
        packet = parse_rtp(data)
        if packet is None:
            return
        if self.source_host is None:
            self.source_host, self.source_port = source[0], source[1]
        if not self._from_caller(source):
            self.stats.foreign_dropped += 1
            if self.stats.foreign_dropped == 1:
                log.warning(
                    "RTP from %s:%d dropped: the call's media comes from %s:%s (a peer "
                    "behind NAT needs sip.symmetric_rtp)",
                    source[0],
                    source[1],
                    self.source_host,
                    self.source_port,
                )
            return
        if not self._latched:
            # Symmetric RTP: answer where the media really comes from (NAT, sipp's port).
            self._latched = True
            self.remote = source
            self.out.retarget(source)
        self.stats.packets_in += 1
        if not self.stats.first_in_at:
            self.stats.first_in_at = time.monotonic()
        if packet.payload_type in _DECODERS and len(packet.payload) > MAX_AUDIO_PAYLOAD:
            self.stats.oversized_dropped += 1  # 2 KB decoded as 250 ms of noise otherwise
            return
        self._in_order.push(packet)

    def _from_caller(self, source: tuple[str, int]) -> bool:
        if source[0] != self.source_host:
            return False
        return not self._strict_port or source[1] == self.source_port

    def _play_in(self, packet: RtpPacket) -> None:
        """One packet of the caller's, in sequence order (``ReorderBuffer``)."""
        if packet.payload_type == self.payload_type:
            self.stats.bytes_in += len(packet.payload)
            self.on_audio(self._decode(packet.payload))
        elif packet.payload_type == self.dtmf_payload_type:
            self._telephone_event(packet)
        elif packet.payload_type in _DECODERS:
            # The peer switched law mid-call (re-INVITE handled by Asterisk): follow it.
            self.on_audio(_DECODERS[packet.payload_type](packet.payload))

    def _silence_in(self, packets: int) -> None:
        # A lost packet is 20 ms of silence to the recogniser: the timing of the caller's
        # words (and the end-of-turn pause detection) stays right.
        self.on_audio(b"\x00\x00" * SAMPLES_PER_PACKET * packets)

    def _telephone_event(self, packet: RtpPacket) -> None:
        """RFC 2833/4733: one event is many packets with one timestamp; report it once.

        A key press sends its packets (and the end's retransmissions) within its duration,
        50 ms apart; the same timestamp after a second of quiet is a new press from a peer
        that replays recorded events (an IVR tester, sipp's pcap play).
        """
        if len(packet.payload) < 4 or packet.payload[0] >= len(DTMF_KEYS):
            return
        now = time.monotonic()
        same_event = packet.timestamp == self._last_dtmf_ts and now - self._last_dtmf_at < 1.0
        self._last_dtmf_at = now
        if same_event:
            return
        self._last_dtmf_ts = packet.timestamp
        key = DTMF_KEYS[packet.payload[0]]
        self.stats.dtmf += key
        self.on_dtmf(key)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass(slots=True)
class ClockStats:
    ticks: int = 0
    late_ticks: int = 0  # a tick more than 5 ms late: its packets left outside 20 +- 5 ms
    max_late_ms: float = 0.0
    resyncs: int = 0
    scheduling: str = ""  # what the clock thread got: "SCHED_FIFO 10", "nice -10", "normal"


def raise_thread_priority(rt_priority: int = 10, nice: int = -10) -> str:
    """Give the calling thread real-time (else higher) CPU priority, as far as allowed.

    Linux schedules threads one by one: ``sched_setscheduler``/``setpriority`` with the
    thread's native id change only this thread. Needs CAP_SYS_NICE (root, or a container
    or systemd unit granting it / LimitRTPRIO); without it the thread keeps normal
    priority and the clock says so in its stats. The thread sleeps ~19.9 of every 20 ms,
    and the kernel's RT throttling bounds it even if it spun.
    """
    tid = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(rt_priority))
        return f"SCHED_FIFO {rt_priority}"
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, tid, nice)
        return f"nice {nice}"
    return "normal"


class MediaClock:
    """The one outgoing audio clock of the process: every 20 ms, one packet per stream.

    ``post`` hands ``done`` callbacks (end of a prompt) to the event loop; the clock
    thread itself never runs session code.
    """

    def __init__(self, post: Callable[[Callable[[], None]], object], realtime: bool = True) -> None:
        self._post = post
        self.realtime = realtime
        self._streams: dict[int, tuple[RtpStream, Playout]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = ClockStats()

    def add(self, stream: RtpStream) -> None:
        if not isinstance(stream.out, Playout):
            raise RtpError("this stream's audio is played out by another media clock")
        with self._lock:
            self._streams[id(stream)] = (stream, stream.out)

    def remove(self, stream: RtpStream) -> None:
        with self._lock:
            self._streams.pop(id(stream), None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="media-clock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        self.stats.scheduling = raise_thread_priority() if self.realtime else "normal"
        if self.stats.scheduling == "normal":
            log.info("media clock at normal CPU priority (no CAP_SYS_NICE): expect late "
                     "packets when the CPUs are busy")  # fmt: skip
        schedule = TickSchedule(self.stats)
        while not self._stop.is_set():
            delay = schedule.next_deadline() - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self._lock:
                streams = list(self._streams.values())
            now = schedule.arrived(active=bool(streams))
            for stream, playout in streams:
                packet, done, talkspurt = playout.next_packet()
                if stream.send(packet):
                    stream.note_sent(now, talkspurt)
                if done is not None:
                    self._post(done)


class TickSchedule:
    """The 20 ms deadlines of a media clock, on a drift-free schedule, and their lateness.

    Deadline n is start + n * 20 ms, never "20 ms after the last send", so a late tick
    does not push the ones after it. Shared by the in-process ``MediaClock`` and the
    media process (``ivr.media``).
    """

    def __init__(self, stats: ClockStats) -> None:
        self.stats = stats
        self._start = time.monotonic()
        self._tick = 0
        self.deadline = self._start

    def next_deadline(self) -> float:
        self._tick += 1
        self.deadline = self._start + self._tick * PACKET_S
        return self.deadline

    def arrived(self, active: bool) -> float:
        """Account the tick that is due now; returns the time its packets leave."""
        now = time.monotonic()
        late = now - self.deadline
        self.stats.ticks += 1
        if active:
            self.stats.max_late_ms = max(self.stats.max_late_ms, late * 1000)
            if late > TOLERANCE_S:
                self.stats.late_ticks += 1
        if late > 3 * PACKET_S:
            # Far behind (machine stalled): restart the schedule instead of bursting
            # several packets at once, which a jitter buffer handles worse.
            self._start, self._tick = now, 0
            self.stats.resyncs += 1
        return now
