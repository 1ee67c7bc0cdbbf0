"""Asterisk control over AMI: transfer to a human queue with the ticket, seat presence, callbacks.

Built on panoramisk (AMI framing, action/response matching, login, event dispatch).
Closed here where panoramisk falls short for a hotline:

* Reconnect: panoramisk retries at a fixed interval forever; we back off exponentially,
  jittered (1 s doubling to ``reconnect_max_s``) so a restarting Asterisk is not hammered
  (``_OwnReconnectManager`` keeps panoramisk out of it through its on_disconnect hook).
* Liveness: its Ping gets no deadline, so a half-open TCP connection looks alive; we
  ping ourselves and drop the connection when the Pong does not come back.
* State: after every (re)login we re-read queue membership (QueueStatus) so seat
  presence (night mode) is right again at once, instead of waiting for the next event.

Transfer = Setvar(HOTLINE_TICKET) + Redirect of the caller's channel to the queue
context (telephony_config/extensions.conf, [hotline-queues]); when a seat answers,
Asterisk's AgentConnect event carries the ticket (manager.conf ``channelvars``), and
``on_screen_pop`` tells the ticket service which seat took which ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from panoramisk import Manager

from hotline.backoff import Backoff

log = logging.getLogger(__name__)

# Asterisk device states (include/asterisk/devicestate.h) that mean "no one is there".
ABSENT_STATES = {"4", "5"}  # invalid, unavailable


class AmiError(Exception):
    """AMI is unreachable or refused an action; the message says which."""


class OriginateFailed(AmiError):
    """Originate's call to the seat did not connect; ``reason`` is Asterisk's cause code
    (OriginateResponse ``Reason``: 0 no such channel, 3 no answer, 5 busy, 8 congestion)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"callback to the seat failed (reason {reason})")
        self.reason = reason


@dataclass
class Seat:
    interface: str
    name: str = ""
    status: str = "0"
    paused: bool = False

    @property
    def present(self) -> bool:
        return self.status not in ABSENT_STATES and not self.paused


@dataclass
class QueueState:
    seats: dict[str, Seat] = field(default_factory=dict)


def parse_url(url: str) -> dict[str, Any]:
    parts = urlparse(url)
    if parts.scheme not in ("ami", "tcp") or not parts.hostname or not parts.username:
        raise AmiError(
            f"ami.url must look like ami://user:secret@host:5038, got {parts.scheme}://…"
        )
    return {
        "host": parts.hostname,
        "port": parts.port or 5038,
        "username": unquote(parts.username),
        "secret": unquote(parts.password or ""),
    }


def _first(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _variables(event: Any, key: str) -> dict[str, str]:
    raw = event.get(key)
    items = raw if isinstance(raw, list) else [raw] if raw else []
    out = {}
    for item in items:
        name, _, value = str(item).partition("=")
        out[name] = value
    return out


class _OwnReconnectManager(Manager):
    """panoramisk's Manager with its reconnection and keep-alive left to ``AmiClient``
    (back-off with jitter, Pings with a deadline, a resync after each login): a lost
    connection only tells ``on_disconnect``, its public hook, instead of also scheduling
    a fixed-interval reconnect, and its own deadline-less Ping never starts."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        self.loop.call_soon(self.on_disconnect, self, exc)

    def ping(self) -> None:
        """Never scheduled as panoramisk's keep-alive: ``AmiClient`` pings with a deadline."""
        self.pinger = None


class AmiClient:
    """One long-lived AMI connection per controller node."""

    def __init__(
        self, url: str, queue_context: str = "hotline-queues",
        callback_context: str = "hotline-callback", callback_caller_id: str = "12345",
        ping_interval_s: float = 10.0, reconnect_max_s: float = 30.0,
        queues: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        """``queues``: skill -> Asterisk queue (settings ``ami.queues``); None: the same name."""
        self.config = parse_url(url)
        self.queue_names = dict(queues or {})
        self.queue_context = queue_context
        self.callback_context = callback_context
        self.callback_caller_id = callback_caller_id
        self.ping_interval_s = ping_interval_s
        self.reconnect_max_s = reconnect_max_s
        self.queues: dict[str, QueueState] = {}
        self.on_screen_pop: Callable[[str, str, str], None] | None = None  # ticket, seat, queue
        # A seat answered a caller without HOTLINE_TICKET: (caller's channel, seat, queue);
        # an orphaned call's fallback (ivr.orphans.FallbackPops).
        self.on_fallback_connect: Callable[[str, str, str], None] | None = None
        self.connected = False
        self.logins = 0
        self._manager: Manager | None = None
        self._runner: asyncio.Task[None] | None = None
        self._logged_in = asyncio.Event()
        self._lost = asyncio.Event()

    # ---- connection ----
    async def start(self, wait_s: float = 5.0) -> bool:
        self._runner = asyncio.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._logged_in.wait(), wait_s)
        return self.connected

    async def stop(self) -> None:
        if self._runner:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._close()

    def _close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        self.connected = False
        self._logged_in.clear()

    async def _run(self) -> None:
        backoff = Backoff(first_s=1.0, cap_s=self.reconnect_max_s)
        while True:
            try:
                await self._session()
                backoff.reset()
                delay = backoff.next_delay()
            except (OSError, AmiError, TimeoutError) as exc:
                delay = backoff.next_delay()
                log.warning("AMI %s:%s: %s; reconnecting in %.1f s",
                            self.config["host"], self.config["port"], exc, delay)  # fmt: skip
            self._close()
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        """Connect, log in, resync state, then ping until the connection dies."""
        loop = asyncio.get_running_loop()
        self._lost.clear()
        manager = _OwnReconnectManager(
            loop=loop, host=self.config["host"], port=self.config["port"], events="on",
            on_disconnect=lambda _manager, _exc: self._lost.set(),
        )  # fmt: skip
        for pattern, handler in (
            ("QueueMember*", self._on_member),
            ("AgentConnect", self._on_agent_connect),
        ):
            manager.register_event(pattern, handler)
        self._manager = manager
        await manager.connect()  # OSError (refused, unreachable) goes to _run's back-off
        reply = await self._action({"Action": "Login", "Username": self.config["username"],
                                    "Secret": self.config["secret"], "Events": "on"})  # fmt: skip
        if not _ok(reply):
            raise AmiError(f"login refused: {_first(reply.get('Message'))}")
        manager.authenticated = True
        self.connected = True
        self.logins += 1
        await self.resync()
        self._logged_in.set()
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self.ping_interval_s)
                break
            pong = await self._ping_unless_lost()
            if pong is not None and not _ok(pong):
                raise AmiError("ping unanswered")
        raise AmiError("connection lost")

    async def _ping_unless_lost(self) -> Any:
        """The Ping's reply, or None as soon as the connection is lost: a socket reset
        while a Ping waits must not take the Ping's 5 s timeout to be noticed."""
        ping = asyncio.ensure_future(self._action({"Action": "Ping"}, timeout=5.0))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({ping, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if not ping.done():
            ping.cancel()
            return None
        return ping.result()

    async def _action(self, action: dict[str, str], timeout: float = 10.0) -> Any:
        if self._manager is None or self._manager.protocol is None:
            raise AmiError("not connected")
        future = self._manager.send_action(dict(action))
        return await asyncio.wait_for(future, timeout)

    async def _action_list(self, action: dict[str, str], timeout: float = 10.0) -> list[Any]:
        if self._manager is None:
            raise AmiError("not connected")
        future = self._manager.send_action(dict(action), as_list=True)
        return list(await asyncio.wait_for(future, timeout))

    # ---- state ----
    async def resync(self) -> None:
        """Rebuild queue membership from QueueStatus (after every login)."""
        messages = await self._action_list({"Action": "QueueStatus"})
        queues: dict[str, QueueState] = {}
        for msg in messages:
            if _first(msg.get("Event")) == "QueueParams":
                queues.setdefault(_first(msg.get("Queue")), QueueState())
            elif _first(msg.get("Event")) == "QueueMember":
                self._apply_member(queues, msg)
        self.queues = queues

    def _apply_member(self, queues: dict[str, QueueState], msg: Any) -> None:
        queue = queues.setdefault(_first(msg.get("Queue")), QueueState())
        interface = _first(msg.get("Interface") or msg.get("Location") or msg.get("StateInterface"))
        if _first(msg.get("Event")) == "QueueMemberRemoved":
            queue.seats.pop(interface, None)
            return
        seat = queue.seats.setdefault(interface, Seat(interface))
        seat.name = _first(msg.get("MemberName") or msg.get("Name")) or seat.name
        if msg.get("Status") is not None:
            seat.status = _first(msg.get("Status"))
        if msg.get("Paused") is not None:
            seat.paused = _first(msg.get("Paused")) == "1"

    def _on_member(self, manager: Any, event: Any) -> None:
        self._apply_member(self.queues, event)

    def _on_agent_connect(self, manager: Any, event: Any) -> None:
        variables = _variables(event, "ChanVariable")
        ticket = variables.get("HOTLINE_TICKET", "")
        seat = _first(event.get("Interface") or event.get("MemberName"))
        queue = _first(event.get("Queue"))
        log.info("seat %s answered queue %s (ticket %s)", seat, queue, ticket or "-")
        if ticket and self.on_screen_pop is not None:
            self.on_screen_pop(ticket, seat, queue)
        elif not ticket and self.on_fallback_connect is not None:
            self.on_fallback_connect(_first(event.get("Channel")), seat, queue)

    def asterisk_queue(self, skill: str) -> str:
        """The queues.conf name for a skill; an unmapped skill goes to the general queue
        (a person still answers; ``hotline lint-asterisk`` reports the gap)."""
        if not self.queue_names:
            return skill
        if skill not in self.queue_names:
            log.warning("skill %r has no queue in ami.queues: using the general queue", skill)
        return self.queue_names.get(skill) or self.queue_names.get("general", skill)

    def seats_available(self, queue: str = "general") -> bool:
        """False at night (nobody logged in and unpaused): promise a callback instead.
        ``queue`` is a skill name (mapped through ``ami.queues``)."""
        state = self.queues.get(self.asterisk_queue(queue))
        if state is None:
            return any(s.present for q in self.queues.values() for s in q.seats.values())
        return any(seat.present for seat in state.seats.values())

    # ---- actions ----
    async def transfer(self, channel: str, queue: str, ticket: str) -> bool:
        """Send the caller's channel to a skill's queue, with the ticket as a channel variable."""
        target = self.asterisk_queue(queue)
        try:
            if ticket:
                await self._expect_ok({"Action": "Setvar", "Channel": channel,
                                       "Variable": "HOTLINE_TICKET", "Value": ticket})  # fmt: skip
            await self._expect_ok({
                "Action": "Redirect", "Channel": channel,
                "Context": self.queue_context, "Exten": target, "Priority": "1",
            })  # fmt: skip
            return True
        except (AmiError, TimeoutError) as exc:
            log.error("transfer of %s to %s failed: %s", channel, target, exc)
            return False

    async def mark_done(self, channel: str) -> None:
        """The bot finished normally: the dialplan must not fall back to the queue."""
        await self._expect_ok({"Action": "Setvar", "Channel": channel,
                               "Variable": "HOTLINE_DONE", "Value": "1"})  # fmt: skip

    async def originate(self, seat: str, number: str, ticket: str) -> str:
        """Ring the seat, then dial the citizen (dialplan [hotline-callback]); returns ActionID.

        Waits for Asterisk's OriginateResponse (the seat answered or the attempt failed).
        """
        replies = await self._action({
            "Action": "Originate", "Channel": seat, "Context": self.callback_context,
            "Exten": number, "Priority": "1", "CallerID": self.callback_caller_id,
            "Variable": f"HOTLINE_TICKET={ticket}", "Async": "true", "Timeout": "30000",
        }, timeout=45.0)  # fmt: skip
        replies = replies if isinstance(replies, list) else [replies]
        final = replies[-1]
        if not _ok(final):
            raise OriginateFailed(_first(final.get("Reason") or final.get("Message")))
        return _first(final.get("ActionID"))

    async def _expect_ok(self, action: dict[str, str]) -> Any:
        reply = await self._action(action)
        if not _ok(reply):
            raise AmiError(f"{action['Action']} refused: {_first(reply.get('Message'))}")
        return reply


def _ok(reply: Any) -> bool:
    return _first(reply.get("Response")).lower() in ("success", "goodbye")
