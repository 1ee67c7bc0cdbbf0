"""Click-to-call: how the console asks the phone system to ring a seat, then the citizen.

:class:`AmiDialer` implements :class:`Dialer` over Asterisk AMI: Originate rings the
operator's seat phone (``PJSIP/seat-101``), and when it answers the dialplan's
``[hotline-callback]`` dials the citizen. ``console.dialer`` in the settings names a
factory ``module:attribute`` called with the settings; ``tickets.dialer:ami_dialer``
builds an AmiDialer from ``ami.url`` alone, with an AMI connection of its own.

The seat: an operator's account holds their phone's PJSIP endpoint name (``hotline users
add NAME --seat seat-101``), the same name the queue's AgentConnect screen pop carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


class DialerError(Exception):
    """The call could not be placed; the message is shown to the operator."""


@runtime_checkable
class Dialer(Protocol):
    def originate(self, seat: str, number: str, ticket_number: str) -> None:
        """Ring the operator's ``seat``; when answered, call ``number``. Raise DialerError
        (its message is shown to the operator) on failure."""


@dataclass
class RecordingDialer:
    """A dialer that places no call and remembers the requests.

    For tests and demos without a phone system: it is what the console uses when no
    dialer is configured and ``record_only`` was asked for explicitly.
    """

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def originate(self, seat: str, number: str, ticket_number: str) -> None:
        with self._lock:
            self.calls.append((seat, number, ticket_number))


def load_dialer(spec: str, settings: Any) -> Dialer | None:
    """Build the configured dialer (``package.module:factory``); None when none is set."""
    if not spec:
        return None
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise DialerError(f"console.dialer must be 'module:attribute', got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise DialerError(f"console.dialer {spec!r} cannot be loaded: {exc}") from exc
    dialer = factory(settings)
    if not isinstance(dialer, Dialer):
        raise DialerError(f"console.dialer {spec!r} did not return a Dialer")
    return dialer


def seat_channel(seat: str) -> str:
    """The channel Originate rings for an operator's seat: ``seat-101`` -> ``PJSIP/seat-101``;
    a full channel (``PJSIP/x``, ``SIP/x``) as given; an account made with the old
    ``--extension 101`` (digits only) -> ``PJSIP/seat-101``, telephony_config's naming."""
    if "/" in seat:
        return seat
    return f"PJSIP/seat-{seat}" if seat.isdigit() else f"PJSIP/{seat}"


# OriginateResponse Reason (Asterisk's AST_CONTROL cause) -> what the operator reads.
_REASONS = {
    "0": "座席话机未注册或不存在",
    "1": "座席话机挂断",
    "3": "座席话机无人接听",
    "5": "座席话机忙",
    "8": "线路拥塞",
}


class AmiDialer:
    """Click-to-call over AMI. The console is synchronous (a worker thread per request);
    each call is handed to the AMI client's event loop and waited for: the operator's
    phone rings at once, and the request returns when they answer (or it fails)."""

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop, wait_s: float = 50.0,
                 owned: threading.Thread | None = None) -> None:  # fmt: skip
        self.client = client  # ivr.ami.AmiClient
        self.loop = loop
        self.wait_s = wait_s  # Originate rings the seat 30 s; Asterisk answers within 45 s
        self._thread = owned

    @classmethod
    def from_settings(cls, settings: Any, connect_s: float = 5.0) -> AmiDialer:
        """An AMI connection of its own (``ami.url``), on a loop in a daemon thread; it
        reconnects by itself (ivr.ami), so a console started before Asterisk works once
        Asterisk is up."""
        from ivr.ami import AmiClient

        ami = settings.ami
        if not ami.url:
            raise DialerError("click-to-call needs ami.url (ami://user:secret@host:5038)")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="ami-dialer", daemon=True)
        thread.start()
        client = asyncio.run_coroutine_threadsafe(_new_client(AmiClient, ami), loop).result()
        started = asyncio.run_coroutine_threadsafe(client.start(connect_s), loop)
        if not started.result(connect_s + 5):
            log.warning("click-to-call: AMI %s:%s not answering yet; retrying in the background",
                        client.config["host"], client.config["port"])  # fmt: skip
        return cls(client, loop, owned=thread)

    def originate(self, seat: str, number: str, ticket_number: str) -> None:
        from ivr.ami import OriginateFailed

        if not self.client.connected:
            raise DialerError("电话系统（AMI）未连接，暂时无法外呼，请稍后再试")
        channel = seat_channel(seat)
        future = asyncio.run_coroutine_threadsafe(
            self.client.originate(channel, number, ticket_number), self.loop
        )
        try:
            future.result(timeout=self.wait_s)
        except OriginateFailed as exc:
            why = _REASONS.get(exc.reason, f"原因代码 {exc.reason}")
            raise DialerError(f"外呼未接通（{channel}）：{why}") from exc
        except Exception as exc:
            future.cancel()
            log.error("click-to-call via %s failed: %s", channel, exc)
            raise DialerError(f"外呼失败（{channel}），请稍后再试") from exc

    def close(self) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.client.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def _new_client(factory: Any, ami: Any) -> Any:
    # Made on its loop: the client's asyncio primitives belong to the loop that runs it.
    return factory(ami.url, ami.queue_context, ami.callback_context, ami.callback_caller_id,
                   ami.ping_interval_s, ami.reconnect_max_s, ami.queues)  # fmt: skip


def ami_dialer(settings: Any) -> AmiDialer:
    """``console.dialer: tickets.dialer:ami_dialer``: click-to-call from ``ami.url``."""
    return AmiDialer.from_settings(settings)
