"""The media process (ivr.media) pacing real UDP sockets over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import struct
from collections.abc import Awaitable, Callable

import numpy as np

from hotline.audio import alaw_encode
from ivr.media import MediaProcess
from ivr.rtp import PCMA, RtpStream, parse_rtp


def tone(seconds: float, hz: int = 440) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


class Receiver:
    """The caller's end: every packet with its source port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.packets: list[tuple[bytes, int]] = []

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def drain(self) -> None:
        while True:
            try:
                data, source = self.sock.recvfrom(2048)
            except BlockingIOError:
                return
            self.packets.append((data, source[1]))

    def audio_payloads(self) -> list[bytes]:
        silence = alaw_encode(b"\x00\x00" * 160)
        return [d[12:] for d, _ in self.packets if d[12:] != silence]


def run(body: Callable[[MediaProcess, RtpStream, Receiver], Awaitable[None]]) -> None:
    async def main() -> None:
        receiver = Receiver()
        ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ours.bind(("127.0.0.1", 0))
        stream = RtpStream(ours, receiver.address, PCMA, 101, lambda _: None, lambda _: None)
        media = MediaProcess()
        media.start()
        await media.ready()
        try:
            media.add(stream)
            await body(media, stream, receiver)
        finally:
            media.remove(stream)
            media.stop()
            stream.close()
            receiver.sock.close()

    asyncio.run(asyncio.wait_for(main(), 30))


async def played(stream: RtpStream, pcm: bytes) -> asyncio.Future[bool]:
    done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    stream.play(pcm, done=lambda: done.done() or done.set_result(True))
    return done


async def packets_of_a_half_second_prompt(stream: RtpStream, receiver: Receiver) -> int:
    """Play half a second and count the packets that reach the caller (the call's audio
    flows: 25 packets)."""
    receiver.drain()
    before = len(receiver.packets)
    done = await played(stream, tone(0.5))
    await asyncio.wait_for(done, 5)
    await asyncio.sleep(0.1)
    receiver.drain()
    return len(receiver.packets) - before


def test_prompt_leaves_from_the_calls_port_byte_for_byte_in_order() -> None:
    async def body(media: MediaProcess, stream: RtpStream, receiver: Receiver) -> None:
        pcm = tone(1.0)
        done = await played(stream, pcm)
        await asyncio.wait_for(done, 5)
        await asyncio.sleep(0.1)
        receiver.drain()
        # The media process sends through a duplicate of the call's own socket: the
        # source port is the one the SDP announced.
        assert {port for _, port in receiver.packets} == {stream.local_port}
        assert b"".join(receiver.audio_payloads()) == alaw_encode(pcm)
        headers = [parse_rtp(d) for d, _ in receiver.packets]
        assert all(h is not None and h.payload_type == PCMA for h in headers)
        seqs = [h.sequence for h in headers if h]
        stamps = [h.timestamp for h in headers if h]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(stamps))
        markers = [h.marker for h in headers if h]
        assert markers.count(True) == 1  # one talkspurt: one marker, on its first packet
        assert len(stream.stats.audio_out_times) == 1

    run(body)


def test_flush_drops_the_rest_of_the_prompt_at_once() -> None:
    async def body(media: MediaProcess, stream: RtpStream, receiver: Receiver) -> None:
        done = await played(stream, tone(3.0))
        await asyncio.sleep(0.3)
        dropped = stream.flush()
        receiver.drain()
        flushed_at = len(receiver.audio_payloads())
        assert len(dropped) == 1 and not stream.playing
        await asyncio.sleep(0.5)
        receiver.drain()
        sent = len(receiver.audio_payloads())
        assert 5 <= flushed_at <= sent <= flushed_at + 3  # at most the packets in flight
        assert not done.done()  # the session resolves a dropped prompt itself

    run(body)


def test_a_killed_media_process_is_replaced_and_the_call_goes_on() -> None:
    async def body(media: MediaProcess, stream: RtpStream, receiver: Receiver) -> None:
        first = await played(stream, tone(3.0))
        await asyncio.sleep(0.2)
        old_pid = media.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        # The prompt that was queued is reported finished: the session is not left waiting.
        assert await asyncio.wait_for(first, 5)
        assert media.restarts == 1 and media.pid not in (None, old_pid)
        assert await packets_of_a_half_second_prompt(stream, receiver) > 20
        assert {port for _, port in receiver.packets} == {stream.local_port}

    run(body)


def test_removed_call_leaves_no_socket_behind_and_stop_reports_the_clock() -> None:
    receiver = Receiver()

    async def main() -> tuple[int, MediaProcess]:
        ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ours.bind(("127.0.0.1", 0))
        port = ours.getsockname()[1]
        stream = RtpStream(ours, receiver.address, PCMA, 101, lambda _: None, lambda _: None)
        media = MediaProcess()
        media.start()
        await media.ready()
        media.add(stream)
        await asyncio.wait_for(await played(stream, tone(0.2)), 5)
        media.remove(stream)
        stream.close()
        await asyncio.sleep(0.2)
        media.stop()
        return port, media

    port, media = asyncio.run(main())
    receiver.sock.close()
    # Had the media process kept its duplicate, the port would still be bound.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", port))
    probe.close()
    assert media.stats.ticks > 10
    assert media.stats.scheduling
    assert media.pid is None


def test_rtp_header_of_a_flushed_and_restarted_talkspurt_has_a_new_marker() -> None:
    async def body(media: MediaProcess, stream: RtpStream, receiver: Receiver) -> None:
        await played(stream, tone(1.0))
        await asyncio.sleep(0.2)
        stream.flush()
        await asyncio.sleep(0.1)
        await asyncio.wait_for(await played(stream, tone(0.2)), 5)
        await asyncio.sleep(0.05)
        receiver.drain()
        markers = [struct.unpack_from("!B", d, 1)[0] >> 7 for d, _ in receiver.packets]
        assert sum(markers) == 2  # the barge-in cut one prompt, the next starts a talkspurt
        assert len(stream.stats.audio_out_times) == 2
        assert stream.stats.audio_out_times[1] - stream.stats.audio_out_times[0] > 0.25

    run(body)


def test_while_no_media_process_runs_a_new_prompt_is_not_reported_played(
    monkeypatch,
) -> None:  # type: ignore[no-untyped-def]
    import ivr.media

    monkeypatch.setattr(ivr.media, "RESTARTS_PER_MINUTE", 0)  # the first death is final

    async def body(media: MediaProcess, stream: RtpStream, receiver: Receiver) -> None:
        first = await played(stream, tone(3.0))
        pid = media.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert await asyncio.wait_for(first, 5)  # released, not left hanging
        assert media.pid is None and media.restarts == 0 and media.paused
        # A later prompt is not reported played: nobody hears it, so the session's
        # playout deadline hands the caller to a person instead of talking on into
        # silence (the controller's log says, at CRITICAL, that calls have no audio).
        later = await played(stream, tone(1.0))
        await asyncio.sleep(0.3)
        assert not later.done()

    run(body)


def test_after_a_pause_a_media_process_that_kept_dying_is_started_again(
    monkeypatch,
) -> None:  # type: ignore[no-untyped-def]
    import ivr.media

    monkeypatch.setattr(ivr.media, "RESTARTS_PER_MINUTE", 0)
    monkeypatch.setattr(ivr.media, "RESTART_PAUSE_S", 0.5)

    async def body(media: MediaProcess, stream: RtpStream, receiver: Receiver) -> None:
        pid = media.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert media.pid is None  # paused: no audio for a moment
        await asyncio.sleep(0.8)
        assert media.pid not in (None, pid)  # back, with the live call handed over again
        assert await packets_of_a_half_second_prompt(stream, receiver) > 20

    run(body)


def test_a_hung_media_process_is_replaced_and_the_call_gets_its_audio_back(
    monkeypatch,
) -> None:  # type: ignore[no-untyped-def]
    import ivr.media
    from hotline.metrics import METRICS

    monkeypatch.setattr(ivr.media, "HUNG_AFTER_S", 1.0)

    def hung() -> float:
        sample = METRICS.registry.get_sample_value("hotline_media_failures_total",
                                                   {"reason": "hung"})  # fmt: skip
        return float(sample or 0.0)

    async def body(media: MediaProcess, stream: RtpStream, receiver: Receiver) -> None:
        before = hung()
        pid = media.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # alive, but it sends and reports nothing
        try:
            for _ in range(40):
                if media.pid not in (None, pid):
                    break
                await asyncio.sleep(0.1)
            assert media.pid not in (None, pid) and hung() == before + 1
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert await packets_of_a_half_second_prompt(stream, receiver) > 20

    run(body)


def test_a_stream_with_an_impossible_port_is_refused_and_other_calls_keep_their_audio() -> None:
    async def body(media: MediaProcess, stream: RtpStream, receiver: Receiver) -> None:
        bad_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bad_sock.bind(("127.0.0.1", 0))
        bad = RtpStream(bad_sock, ("127.0.0.1", 99999), PCMA, 101, lambda _: None,
                        lambda _: None)  # fmt: skip
        pid = media.pid
        media.add(bad)
        bad.play(tone(0.5))
        stream.out.retarget(("127.0.0.1", 99999))  # a re-INVITE naming it: ignored
        await asyncio.sleep(0.3)
        assert media.pid == pid and media.restarts == 0  # not killed by it
        assert await packets_of_a_half_second_prompt(stream, receiver) > 20
        media.remove(bad)
        bad.close()

    run(body)
