"""The media process: every call's outgoing RTP, paced by a process of its own.

Why a process: the in-process ``MediaClock`` thread needs the GIL for each 20 ms tick,
and on a full machine the Python thread holding it can be off the CPU (behind decode
threads or the SIP peers' processes), so ticks went out up to 180 ms late at 40 calls
(``hotline bench calls --concurrency 40``). This process has its own interpreter and a
single thread at real-time priority; it does nothing but send packets, so nothing in
the controller can delay them.

The split: the controller keeps each call's socket (it reads the caller's audio from
it) and hands the media process a duplicate of its descriptor (``SCM_RIGHTS``), so
packets leave from the port the SDP announced. Prompts go over a private socket pair
as encoded G.711; the media process answers with the moment each prompt starts (the
first packet of a talkspurt) and ends (``done``). Barge-in sends ``flush``; the
controller resolves the dropped prompts itself at once, and ignores a ``done`` that
crosses the flush on the way.

If the media process dies, the controller starts a new one and hands it the live calls
again: the prompts that were queued are reported finished (the callers heard part of
them), the calls go on. Protocol: the typed messages of ``ivr.media_wire``, one per
SOCK_SEQPACKET datagram, between two processes of the same program (never the network).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotline.metrics import METRICS
from ivr import media_wire as wire
from ivr.rtp import ClockStats, Playout, RtpStream, TickSchedule, raise_thread_priority

log = logging.getLogger(__name__)

CHUNK_BYTES = 32_000  # 4 s of G.711 per message: far below the socket buffer
SOCKET_BUFFER = 4 << 20
STATS_EVERY_TICKS = 25  # half a second
SEND_TIMEOUT_S = 1.0  # a media process that takes no command for this long is hung
MAX_FDS = 1
RECEIVE_BYTES = 2 * CHUNK_BYTES  # a play message: the chunk and its 9-byte header
READY_TIMEOUT_S = 10.0
# It reports every 0.5 s; silent this long, it is hung (stopped, stuck in the kernel)
# though alive, and its calls get no audio: it is replaced like a dead one.
HUNG_AFTER_S = 5.0
RESTARTS_PER_MINUTE = 5  # beyond this the media process is broken, not unlucky
RESTART_PAUSE_S = 10.0


class MediaProcessError(Exception):
    """The media process cannot be started or reached."""


# ---------------------------------------------------------------- controller side


class RemotePlayout:
    """A stream's outgoing audio, played by the media process (``Outgoing``)."""

    def __init__(self, media: MediaProcess, key: int, stream: RtpStream) -> None:
        self.media = media
        self.key = key
        self.stream = stream
        self.pending: dict[int, Callable[[], None] | None] = {}  # token -> done, in order
        self._tokens = itertools.count(1)

    def extend(self, payload: bytes, done: Any = None) -> None:
        token = next(self._tokens)
        self.pending[token] = done
        step = CHUNK_BYTES
        chunks = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            if not self.media.send(wire.Play(self.key, token if last else 0, chunk)):
                # No media process. Stopping: nobody must wait for this prompt. Paused
                # (it kept failing): the prompt stays unplayed, so the session's playout
                # deadline hands the caller to a person rather than talking into silence.
                if not self.media.paused:
                    self.finish_all()
                return

    def flush(self) -> list[Any]:
        dropped = [done for done in self.pending.values() if done is not None]
        self.pending.clear()
        self.media.send(wire.Flush(self.key))
        return dropped

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    def retarget(self, remote: tuple[str, int]) -> None:
        self.media.send(wire.Retarget(self.key, remote[1], remote[0]))

    def finished(self, token: int) -> None:
        done = self.pending.pop(token, None)  # None too when a flush crossed it
        if done is not None:
            done()

    def finish_all(self) -> None:
        """The media process died with these prompts queued: let their waiters go on."""
        pending = list(self.pending.values())
        self.pending.clear()
        for done in pending:
            if done is not None:
                done()


class MediaProcess:
    """Drop-in for ``MediaClock``: ``start``, ``add``, ``remove``, ``stop``, ``stats``.

    Runs on the event loop that calls ``start``; ``add``, ``remove`` and the streams'
    ``play``/``flush`` must be called from that loop.
    """

    def __init__(self, realtime: bool = True) -> None:
        self.realtime = realtime
        self.stats = ClockStats()
        self.restarts = 0
        self._playouts: dict[int, RemotePlayout] = {}
        self._leaving: dict[int, RtpStream] = {}  # removed, final counters not yet back
        self._keys = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._stopping = False
        self._restarting = False
        self._paused = False  # restarted too often: waiting RESTART_PAUSE_S before the next
        self._ready: asyncio.Future[None] | None = None
        self._restart_times: list[float] = []
        self._last_heard = time.monotonic()  # the last message from the process
        self._child_reported = False  # the current process has reported since it started

    @property
    def pid(self) -> int | None:
        """The media process's id (benchmarks add its CPU time to the controller's)."""
        return self._proc.pid if self._proc is not None else None

    # ---- lifecycle ----
    def start(self) -> None:
        """Start the process; ``ready`` waits until it runs."""
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._spawn()
        self._loop.call_later(1.0, self._watch)

    @property
    def paused(self) -> bool:
        """No media process for now (it kept failing): nothing is being played."""
        return self._paused

    def _watch(self) -> None:
        if self._stopping or self._loop is None:
            return
        self._loop.call_later(1.0, self._watch)
        ready = self._ready is not None and self._ready.done()
        silent_s = time.monotonic() - self._last_heard
        # A new process gets its start-up time (the interpreter and numpy load: seconds on
        # a loaded machine) before its silence counts; replaced sooner, it never starts.
        limit = HUNG_AFTER_S if self._child_reported else max(HUNG_AFTER_S, READY_TIMEOUT_S)
        if ready and self._proc is not None and not self._paused and silent_s > limit:
            log.error("the media process is hung (no report for %.1f s): replacing it",
                      silent_s)  # fmt: skip
            METRICS.media_failures.labels(reason="hung").inc()
            self._restart()

    async def ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait (without blocking the loop) for the process's first report: the controller
        answers no call before its audio can be played."""
        assert self._ready is not None, "start() first"
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except TimeoutError:
            self.stop()
            raise MediaProcessError(f"the media process did not start in {timeout_s} s") from None

    def stop(self) -> None:
        """Stop the process; its last figures are read first (the bench reports them)."""
        self._stopping = True
        sock, proc = self._sock, self._proc
        if sock is None or proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._loop.remove_reader(sock.fileno())  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            sock.setblocking(True)
            sock.settimeout(2.0)
            sock.sendall(wire.Stop().encode())
            while message := sock.recv(65536):
                self._receive(message)
        sock.close()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._sock = self._proc = None

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for end in (ours, theirs):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        command = [sys.executable, "-m", "ivr.media", "--fd", str(theirs.fileno())]
        if not self.realtime:
            command.append("--no-realtime")
        # The child imports this package: from where this file is, installed or not.
        source_root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
        try:
            # A process group of its own: Ctrl-C in a terminal signals the foreground group,
            # and the media process must not die before the controller's graceful
            # shutdown has stopped it (its death would look like a crash, and calls
            # still draining would lose their audio).
            self._proc = subprocess.Popen(command, pass_fds=[theirs.fileno()],
                                          stdin=subprocess.DEVNULL, process_group=0,
                                          env={**os.environ, "PYTHONPATH": path})  # fmt: skip
        except OSError as exc:
            raise MediaProcessError(f"cannot start the media process: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        self._last_heard = time.monotonic()
        self._child_reported = False
        self._sock = ours
        assert self._loop is not None
        self._loop.add_reader(ours.fileno(), self._readable)

    def _resume(self) -> None:
        if self._stopping or not self._paused:
            return
        self._paused = False
        self._restart_times.clear()
        self._replace_process()

    # ---- streams ----
    def add(self, stream: RtpStream) -> None:
        if not isinstance(stream.out, Playout):
            raise MediaProcessError("this stream is already played by a media clock")
        key = next(self._keys)
        playout = RemotePlayout(self, key, stream)
        self._playouts[key] = playout
        self._hand_over(playout, stream.out.counters)
        stream.out = playout

    def _hand_over(self, playout: RemotePlayout, counters: tuple[int, int, int]) -> None:
        stream = playout.stream
        seq, timestamp, ssrc = counters
        host, port = stream.remote
        message = wire.Add(playout.key, stream.payload_type, seq, timestamp, ssrc, port, host)
        self.send(message, fds=[stream.sock.fileno()])

    def remove(self, stream: RtpStream) -> None:
        playout = stream.out
        if isinstance(playout, RemotePlayout) and playout.key in self._playouts:
            del self._playouts[playout.key]
            self._leaving[playout.key] = stream  # until its packet count comes back
            self.send(wire.Remove(playout.key))

    # ---- messages ----
    def send(self, message: wire.Message, fds: list[int] | None = None) -> bool:
        """Hand a command to the media process; False when there is none to take it."""
        if self._sock is None:
            return False  # stopped, or given up on: nothing plays any more
        try:
            data = message.encode()
        except struct.error as exc:  # a value outside its field (a port over 65535...)
            log.error("media command %s not sent: %s", type(message).__name__, exc)
            return True
        try:
            _send_within(self._sock, data, fds or [], SEND_TIMEOUT_S)
        except OSError as exc:
            log.error("media process unreachable (%s): starting a new one", exc)
            self._restart()
            return False
        return True

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while True:
            try:
                message = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message = b""
            self._last_heard = time.monotonic()
            self._child_reported = self._child_reported or bool(message)
            if not message:
                if not self._stopping:
                    log.error("the media process ended (exit %s): starting a new one",
                              self._proc.poll() if self._proc else "?")  # fmt: skip
                    self._restart()
                return
            self._receive(message)

    def _receive(self, data: bytes) -> None:
        try:
            message = wire.decode(data)
        except wire.WireError as exc:
            log.error("unreadable report from the media process skipped: %s", exc)
            return
        self._handle(message)

    def _handle(self, message: wire.Message) -> None:
        match message:
            case wire.Started(key=key, at=at):
                if (playout := self._playouts.get(key)) is not None:
                    playout.stream.note_talkspurt(at)
            case wire.Done(key=key, token=token):
                if (playout := self._playouts.get(key)) is not None:
                    playout.finished(token)
            case wire.Rejected(why=why):
                log.error("the media process refused a call's stream (%s): it has no "
                          "outgoing audio", why)  # fmt: skip
                METRICS.media_failures.labels(reason="rejected").inc()
            case wire.Removed(key=key, packets=packets):
                if (stream := self._leaving.pop(key, None)) is not None:
                    stream.stats.packets_out += packets
            case wire.Stats():
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
                self.stats.ticks, self.stats.late_ticks = message.ticks, message.late_ticks
                self.stats.max_late_ms, self.stats.resyncs = message.max_late_ms, message.resyncs
                self.stats.scheduling = message.scheduling

    def _restart(self) -> None:
        now = time.monotonic()
        self._restart_times = [t for t in self._restart_times if now - t < 60] + [now]
        if self._restarting or len(self._restart_times) > RESTARTS_PER_MINUTE:
            # Not forever: a process that kept dying is tried again after a pause, so a
            # burst of failures never leaves every later call without audio.
            log.critical("the media process keeps failing: calls have no outgoing audio "
                         "for %.0f s, then it is started again", RESTART_PAUSE_S)  # fmt: skip
            self._paused = True
            assert self._loop is not None
            self._loop.call_later(RESTART_PAUSE_S, self._resume)
        self._restarting = True
        try:
            self._replace_process()
        finally:
            self._restarting = False

    def _replace_process(self) -> None:
        sock, proc = self._sock, self._proc
        self._sock = self._proc = None
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_reader(sock.fileno())  # type: ignore[union-attr]
            sock.close()
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
        # What was queued is gone with the process: its waiters go on (the callers heard
        # part of it); counters of the dead process are lost, its last report is kept.
        for playout in list(self._playouts.values()):
            playout.finish_all()
        self._leaving.clear()
        if self._stopping or self._paused:
            return
        self.restarts += 1
        METRICS.media_failures.labels(reason="restarted").inc()
        try:
            self._spawn()
        except MediaProcessError:
            log.critical("no media process: calls have no outgoing audio", exc_info=True)
            self._stopping = True
            return
        for playout in list(self._playouts.values()):
            if not playout.stream.closed:
                self._hand_over(playout, Playout.new(playout.stream.payload_type).counters)


def _send_within(sock: socket.socket, data: bytes, fds: list[int], timeout_s: float) -> None:
    """Send one message on a non-blocking socket, waiting at most ``timeout_s`` for room
    (the media process drains it every 20 ms; a full buffer for a second means it hangs)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if fds:
                socket.send_fds(sock, [data], fds)
            else:
                sock.send(data)
            return
        except (BlockingIOError, InterruptedError):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the media process takes no commands") from None
            select.select([], [sock], [], left)


# ---------------------------------------------------------------- media process side


def _valid_remote(remote: object) -> bool:
    """(host, port) a datagram can go to: one bad address must not end every call's audio
    (an SDP port 99999 once raised OverflowError in the tick and killed this process)."""
    return (
        isinstance(remote, tuple)
        and len(remote) == 2
        and isinstance(remote[0], str)
        and isinstance(remote[1], int)
        and 0 < remote[1] < 65536
    )


class _Call:
    def __init__(self, sock: socket.socket, remote: tuple[str, int], playout: Playout) -> None:
        self.sock = sock
        self.remote = remote
        self.playout = playout
        self.packets = 0


class MediaServer:
    """The media process's loop: commands between ticks, one packet per call per tick."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.calls: dict[int, _Call] = {}
        self.stats = ClockStats()
        self._outbox: deque[bytes] = deque()
        self._running = True

    def serve(self, realtime: bool) -> None:
        self.stats.scheduling = raise_thread_priority() if realtime else "normal"
        self._report_stats()  # the first message says: running
        self._flush_outbox(block=True)
        schedule = TickSchedule(self.stats)
        while self._running:
            deadline = schedule.next_deadline()
            if not self._commands_until(deadline):
                return  # the controller is gone: so are its calls
            now = schedule.arrived(active=bool(self.calls))
            self._tick(now)
            if self.stats.ticks % STATS_EVERY_TICKS == 0:
                self._report_stats()
            self._flush_outbox()
        self._report_stats()
        self._flush_outbox(block=True)

    def _commands_until(self, deadline: float) -> bool:
        while self._running:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return True
            readable, _, _ = select.select([self.control], [], [], timeout)
            if not readable:
                return True
            try:
                data, fds, _, _ = socket.recv_fds(self.control, RECEIVE_BYTES, MAX_FDS)
            except (BlockingIOError, InterruptedError):
                continue
            if not data:
                return False
            try:
                message = wire.decode(data)
            except wire.WireError:
                message = None  # skipped: a bad command is never a reason to stop playing
            self._command(message, fds)
        return True

    def _command(self, message: wire.Message | None, fds: list[int]) -> None:
        if isinstance(message, wire.Add) and len(fds) == 1:
            self._add(message, socket.socket(fileno=fds[0]))
            return
        for fd in fds:  # never expected with other commands; never leak one
            os.close(fd)
        if isinstance(message, wire.Stop):
            self._running = False
            return
        call = self.calls.get(getattr(message, "key", -1))
        if call is None:
            return  # a command for a call already removed (or unreadable)
        match message:
            case wire.Play(payload=payload, token=token):
                call.playout.extend(payload, token or None)
            case wire.Flush():
                call.playout.flush()
            case wire.Retarget(host=host, port=port):
                if _valid_remote((host, port)):
                    call.remote = (host, port)
            case wire.Remove(key=key):
                del self.calls[key]
                call.sock.close()  # our duplicate only: the controller's socket stays open
                self._post(wire.Removed(key, call.packets))

    def _add(self, message: wire.Add, sock: socket.socket) -> None:
        remote = (message.host, message.port)
        if not _valid_remote(remote):  # refused, never a reason to die
            sock.close()
            self._post(wire.Rejected(message.key, f"bad remote {remote!r:.60}"))
            return
        playout = Playout(message.payload_type, message.seq, message.timestamp, message.ssrc)
        self.calls[message.key] = _Call(sock, remote, playout)

    def _tick(self, now: float) -> None:
        for key, call in self.calls.items():
            packet, token, talkspurt = call.playout.next_packet()
            try:
                call.sock.sendto(packet, call.remote)
                call.packets += 1
            except (OSError, OverflowError, ValueError, TypeError):
                pass  # the peer is gone or unreachable; the controller ends the call
            if talkspurt:
                self._post(wire.Started(key, now))
            if token is not None:
                self._post(wire.Done(key, token))

    def _report_stats(self) -> None:
        s = self.stats
        self._post(wire.Stats(s.ticks, s.late_ticks, s.max_late_ms, s.resyncs, s.scheduling))

    def _post(self, message: wire.Message) -> None:
        self._outbox.append(message.encode())

    def _flush_outbox(self, block: bool = False) -> None:
        """Send what the controller should know; never wait for it in a tick."""
        while self._outbox:
            try:
                self.control.send(self._outbox[0], 0 if block else socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._outbox.clear()
                return
            self._outbox.popleft()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hotline media process (started by ivr.media)")
    parser.add_argument("--fd", type=int, required=True, help="the controller's socket")
    parser.add_argument("--no-realtime", action="store_true")
    # The controller stops this process (a "stop" message, or its socket closing); a
    # SIGINT meant for the controller (kill -INT on the whole group) must not end it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.fd)
    # The loop makes no reference cycles (queues of bytes, dicts of calls), and a cyclic
    # collection walks every queued packet: with 40 calls' prompts queued that is tens of
    # thousands of objects, milliseconds in which no tick can start.
    gc.freeze()
    gc.disable()
    MediaServer(control).serve(realtime=not args.no_realtime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
