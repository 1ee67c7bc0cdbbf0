"""The seat that takes an orphaned call gets its screen pop.

When a controller dies mid-call, Asterisk's dialplan sends the caller to the human
queue without ``HOTLINE_TICKET`` (nobody set it), so the seat's AgentConnect carries no
ticket. Every live controller sees that event; the one that finds the call's journal
(by the caller's channel, ``ivr.journal.CHANNEL``) files it at once instead of waiting
for the orphan scan, and pops the ticket on the seat. Exactly one pop per call, however
many controllers listen (a Redis ``SET NX`` per call).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any

from ivr.journal import ACTIVE, Intake, call_of_channel, recover_call

log = logging.getLogger(__name__)

POPPED = "hotline:fallback-pop:{}"  # call id -> the seat that got its pop


class FallbackPops:
    """``AmiClient.on_fallback_connect``: file the orphaned call now, pop it on the seat.

    ``grace_s``: a live controller whose caller was just Redirected (no ticket, e.g. a
    bare "转人工") closes its journal within milliseconds of Asterisk's BYE; waiting this
    long keeps such a call from being taken for an orphan. ``find_s``: how long to look
    for the ticket when another controller is the one filing it.
    """

    def __init__(
        self, redis: Any, intake: Intake, screen_pop: Callable[[str, str, str], None],
        number_for_call: Callable[[str], str | None],
        live: Callable[[], Collection[str]] = frozenset, grace_s: float = 1.5,
        find_s: float = 10.0,
    ) -> None:  # fmt: skip
        self.redis = redis
        self.intake = intake
        self.screen_pop = screen_pop
        self.number_for_call = number_for_call
        self.live = live
        self.grace_s = grace_s
        self.find_s = find_s
        self._tasks: set[asyncio.Task[str | None]] = set()

    def __call__(self, channel: str, seat: str, queue: str) -> None:
        """From the AMI event handler (on the loop): the work runs as a task."""
        task = asyncio.get_running_loop().create_task(self.handle(channel, seat, queue))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[str | None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("screen pop for an orphaned call failed: %s", task.exception())

    async def handle(self, channel: str, seat: str, queue: str) -> str | None:
        """The ticket popped on ``seat``, or None (no journal: the bot never took the call)."""
        call_id = await call_of_channel(self.redis, channel)
        if not call_id:
            return None
        await asyncio.sleep(self.grace_s)
        raw = await self.redis.hget(ACTIVE, call_id)
        if raw is None:  # ended normally (a transfer without a ticket), or filed already
            number = await asyncio.to_thread(self.number_for_call, call_id)
        elif call_id in set(self.live()):
            return None  # still ours: not an orphan
        else:
            number = await recover_call(self.redis, call_id, raw, self.intake)
            if number is None:  # a peer claimed it first and is filing it
                number = await self._find(call_id)
        if not number:
            log.info("call %s reached seat %s without a ticket to pop", call_id, seat)
            return None
        if not await self.redis.set(POPPED.format(call_id), seat, nx=True, ex=3600):
            return None  # another controller popped it
        log.info("orphaned call %s answered by %s: ticket %s popped", call_id, seat, number)
        self.screen_pop(number, seat, queue)
        return number

    async def _find(self, call_id: str) -> str | None:
        deadline = asyncio.get_running_loop().time() + self.find_s
        while True:
            number = await asyncio.to_thread(self.number_for_call, call_id)
            if number or asyncio.get_running_loop().time() >= deadline:
                return number
            await asyncio.sleep(0.5)
