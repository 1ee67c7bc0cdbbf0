"""Click-to-call over Asterisk AMI: the console's :class:`tickets.dialer.Dialer`.

``console.dialer: ivr.dialer:ami_dialer`` in the settings: Originate rings the operator's
seat phone (``PJSIP/seat-101``), and when it answers the dialplan's ``[hotline-callback]``
dials the citizen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from hotline.settings import Settings
from ivr.ami import AmiClient, OriginateFailed
from tickets.dialer import DialerError, seat_channel

log = logging.getLogger(__name__)


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
    def from_settings(cls, settings: Settings, connect_s: float = 5.0) -> AmiDialer:
        """An AMI connection of its own (``ami.url``), on a loop in a daemon thread; it
        reconnects by itself (ivr.ami), so a console started before Asterisk works once
        Asterisk is up."""
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


def ami_dialer(settings: Settings) -> AmiDialer:
    """``console.dialer: ivr.dialer:ami_dialer``: click-to-call from ``ami.url``."""
    return AmiDialer.from_settings(settings)
