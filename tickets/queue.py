"""The live seat queue: one Redis stream per skill and priority, one consumer group of seats.

- enqueue: idempotent (a hash of queued ticket numbers guards against duplicates);
- claim: a seat takes the oldest urgent ticket of its skills, then the oldest normal one;
  entries a silent seat claimed longer than ``claim_idle_s`` ago are taken over first
  (XAUTOCLAIM), so a crashed console or process loses nothing;
- touch: an open console keeps its claims alive (XCLAIM resets the idle time);
- ack: the ticket was handled; it leaves the stream and the pending list together.

Redis is only the live view: the SQL store is the record, and ``TicketService.reconcile``
re-queues whatever Redis lost (a restart without AOF, a flushed database).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

GROUP = "seats"
RETURNED = "__returned__"  # the consumer released tickets are parked on, idle from the start
PRIORITIES = ("urgent", "normal")

# Atomic "add unless already queued", and tell the consoles: KEYS[1]=queued hash,
# KEYS[2]=stream; ARGV: ticket, lane, enqueued ms, events channel.
_ENQUEUE = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {0, existing} end
local id = redis.call('XADD', KEYS[2], '*', 'ticket', ARGV[1], 'enqueued_ms', ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. id)
redis.call('PUBLISH', ARGV[4], 'queued ' .. ARGV[1])
return {1, ARGV[2] .. '|' .. id}
"""

# Atomic ack: KEYS[1]=queued hash; ARGV[1]=ticket, ARGV[2]=prefix, ARGV[3]=group.
_ACK = """
local where = redis.call('HGET', KEYS[1], ARGV[1])
if not where then return 0 end
if string.sub(where, 1, 1) == '@' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
local sep = string.find(where, '|', 1, true)
local stream = ARGV[2] .. ':queue:' .. string.sub(where, 1, sep - 1)
local id = string.sub(where, sep + 1)
redis.call('XACK', stream, ARGV[3], id)
redis.call('XDEL', stream, id)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

# Atomic hand-over of one ticket to one seat (its call was connected there):
# the stream entry goes (a stream cannot deliver one chosen entry without re-delivering it
# later), and the hash remembers "@seat|ms|lane" so the hold can be kept alive or returned.
# KEYS[1]=queued hash; ARGV[1]=ticket, ARGV[2]=prefix, ARGV[3]=group, ARGV[4]=seat, ARGV[5]=ms
_TAKE_OVER = """
local where = redis.call('HGET', KEYS[1], ARGV[1])
if not where then return 0 end
local lane
if string.sub(where, 1, 1) == '@' then
  local _, _, _seat, _ms, l = string.find(where, '^@([^|]*)|([^|]*)|(.*)$')
  lane = l
else
  local sep = string.find(where, '|', 1, true)
  lane = string.sub(where, 1, sep - 1)
  local id = string.sub(where, sep + 1)
  local stream = ARGV[2] .. ':queue:' .. lane
  redis.call('XACK', stream, ARGV[3], id)
  redis.call('XDEL', stream, id)
end
redis.call('HSET', KEYS[1], ARGV[1], '@' .. ARGV[4] .. '|' .. ARGV[5] .. '|' .. lane)
return 1
"""


@dataclass(frozen=True)
class QueueEntry:
    ticket: str
    skill: str
    priority: str
    entry_id: str
    enqueued_ms: int
    seat: str | None = None  # the seat holding it, None while waiting
    idle_ms: int = 0

    @property
    def urgent(self) -> bool:
        return self.priority == "urgent"


class QueueError(Exception):
    """The seat queue cannot do what was asked (unknown skill, Redis unreachable)."""


class SeatQueue:
    def __init__(
        self,
        client: redis.Redis,
        skills: Iterable[str],
        *,
        prefix: str = "hotline",
        claim_idle_s: float = 120.0,
    ) -> None:
        # redis-py's annotations cover bytes and str replies and sync and async clients at
        # once; this client always decodes to str, so we type it loosely.
        self.redis: Any = client
        self.skills = tuple(skills)
        if not self.skills:
            raise QueueError("no skill queues configured")
        self.prefix = prefix
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self._queued_key = f"{prefix}:queued"
        self.events_channel = f"{prefix}:events"
        self._enqueue = client.register_script(_ENQUEUE)
        self._ack = client.register_script(_ACK)
        self._take_over = client.register_script(_TAKE_OVER)
        self._groups_ready = False

    @classmethod
    def from_url(cls, url: str, skills: Iterable[str], **kwargs: object) -> SeatQueue:
        return cls(redis.Redis.from_url(url, decode_responses=True), skills, **kwargs)  # type: ignore[arg-type]

    def stream(self, skill: str, priority: str) -> str:
        return f"{self.prefix}:queue:{skill}:{priority}"

    def check_skill(self, skill: str) -> None:
        if skill not in self.skills:
            raise QueueError(f"unknown skill queue {skill!r}; configured: {', '.join(self.skills)}")

    def ensure_groups(self, force: bool = False) -> None:
        if self._groups_ready and not force:
            return
        for skill in self.skills:
            for priority in PRIORITIES:
                try:
                    self.redis.xgroup_create(
                        self.stream(skill, priority), GROUP, id="0", mkstream=True
                    )
                except redis.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
        self._groups_ready = True

    def _retrying_groups(self, call):
        """Run ``call``; if Redis lost the groups (restart without data), recreate them once."""
        self.ensure_groups()
        try:
            return call()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_groups(force=True)
            return call()

    # ---- producer ----

    def enqueue(self, ticket: str, skill: str, urgent: bool = False) -> bool:
        """Queue a ticket; False if it was already queued (never twice)."""
        self.check_skill(skill)
        priority = "urgent" if urgent else "normal"
        self.ensure_groups()
        added, _ = self._enqueue(
            keys=[self._queued_key, self.stream(skill, priority)],
            args=[ticket, f"{skill}:{priority}", int(time.time() * 1000), self.events_channel],
        )
        return bool(added)

    def is_queued(self, ticket: str) -> bool:
        return bool(self.redis.hexists(self._queued_key, ticket))

    def queued_tickets(self) -> set[str]:
        return set(self.redis.hkeys(self._queued_key))

    # ---- seats ----

    def claim(self, seat: str, skills: Iterable[str] | None = None) -> QueueEntry | None:
        """Give ``seat`` the next ticket: urgent before normal, abandoned claims first."""
        chosen = self._seat_skills(skills)
        if seat == RETURNED:
            raise QueueError("reserved seat name")

        def attempt() -> QueueEntry | None:
            for priority in PRIORITIES:
                for skill in chosen:
                    entry = self._take(seat, skill, priority)
                    if entry is not None:
                        self.redis.publish(self.events_channel, f"claimed {entry.ticket}")
                        return entry
            return None

        return self._retrying_groups(attempt)

    def _take(self, seat: str, skill: str, priority: str) -> QueueEntry | None:
        stream = self.stream(skill, priority)
        # XAUTOCLAIM: entries whose seat went silent come back before new ones.
        _, claimed, *_ = self.redis.xautoclaim(
            stream, GROUP, seat, self.claim_idle_ms, start_id="0-0", count=1
        )
        for entry_id, fields in claimed:
            if fields:  # None when the entry was deleted under us
                return self._entry(entry_id, fields, skill, priority, seat)
        fresh = self.redis.xreadgroup(GROUP, seat, {stream: ">"}, count=1)
        for _, entries in fresh or []:
            for entry_id, fields in entries:
                return self._entry(entry_id, fields, skill, priority, seat)
        return None

    @staticmethod
    def _entry(
        entry_id: str,
        fields: dict[str, str],
        skill: str,
        priority: str,
        seat: str | None,
        idle_ms: int = 0,
    ) -> QueueEntry:
        return QueueEntry(
            ticket=fields["ticket"],
            skill=skill,
            priority=priority,
            entry_id=entry_id,
            enqueued_ms=int(fields.get("enqueued_ms", 0)),
            seat=seat,
            idle_ms=idle_ms,
        )

    def _where(self, ticket: str) -> tuple[str, str, str] | None:
        """(skill, priority, entry id) of a ticket waiting or claimed in a lane, else None."""
        where = self.redis.hget(self._queued_key, ticket)
        if not where or str(where).startswith("@"):
            return None
        lane, entry_id = str(where).split("|", 1)
        skill, priority = lane.rsplit(":", 1)
        return skill, priority, entry_id

    def _direct(self) -> dict[str, tuple[str, int, str]]:
        """Tickets handed to a seat with their call: ticket -> (seat, last touch ms, lane)."""
        held: dict[str, tuple[str, int, str]] = {}
        for ticket, where in self.redis.hgetall(self._queued_key).items():
            if where.startswith("@"):
                seat, ms, lane = where[1:].split("|", 2)
                held[ticket] = (seat, int(ms), lane)
        return held

    def touch(self, seat: str, tickets: Iterable[str]) -> int:
        """Keep the seat's claims alive (reset their idle time); returns how many it holds."""
        held = 0
        direct = self._direct()
        now_ms = int(time.time() * 1000)
        for ticket in tickets:
            if ticket in direct and direct[ticket][0] == seat:
                lane = direct[ticket][2]
                self.redis.hset(self._queued_key, ticket, f"@{seat}|{now_ms}|{lane}")
                held += 1
                continue
            where = self._where(ticket)
            if where is None:
                continue
            skill, priority, entry_id = where
            pending = self.redis.xpending_range(
                self.stream(skill, priority), GROUP, min=entry_id, max=entry_id, count=1
            )
            if pending and pending[0]["consumer"] == seat:
                self.redis.xclaim(
                    self.stream(skill, priority), GROUP, seat, 0, [entry_id], justid=True
                )
                held += 1
        return held

    def release(self, ticket: str) -> bool:
        """Put a claimed ticket back in line for the next seat."""
        direct = self._direct().get(ticket)
        if direct is not None:
            skill, priority = direct[2].rsplit(":", 1)
            self.redis.hdel(self._queued_key, ticket)
            self.enqueue(ticket, skill, urgent=priority == "urgent")
            return True
        where = self._where(ticket)
        if where is None:
            return False
        skill, priority, entry_id = where
        idle = self.claim_idle_ms + 1
        self.redis.xclaim(
            self.stream(skill, priority), GROUP, RETURNED, 0, [entry_id], idle=idle, justid=True
        )
        self.redis.publish(self.events_channel, f"released {ticket}")
        return True

    def return_abandoned(self) -> list[str]:
        """Tickets handed to a seat that went silent go back to their lane."""
        now_ms = int(time.time() * 1000)
        returned = []
        for ticket, (_seat, ms, _lane) in self._direct().items():
            if now_ms - ms > self.claim_idle_ms and self.release(ticket):
                returned.append(ticket)
        return returned

    def take_over(self, seat: str, ticket: str) -> bool:
        """Give one specific queued ticket to ``seat`` (its call was connected there)."""
        if seat == RETURNED:
            raise QueueError("reserved seat name")
        done = bool(
            self._take_over(
                keys=[self._queued_key],
                args=[ticket, self.prefix, GROUP, seat, int(time.time() * 1000)],
            )
        )
        if done:
            self.redis.publish(self.events_channel, f"claimed {ticket}")
        return done

    def ack(self, ticket: str) -> bool:
        """The ticket was handled: it leaves the queue for good."""
        done = bool(self._ack(keys=[self._queued_key], args=[ticket, self.prefix, GROUP]))
        if done:
            self.redis.publish(self.events_channel, f"done {ticket}")
        return done

    # ---- views ----

    def entries(self, skills: Iterable[str] | None = None) -> list[QueueEntry]:
        """Everything queued, oldest first within each lane, with who holds it."""
        result: list[QueueEntry] = []
        self.ensure_groups()
        for priority in PRIORITIES:
            for skill in self._seat_skills(skills):
                stream = self.stream(skill, priority)
                holders = {
                    p["message_id"]: (p["consumer"], p["time_since_delivered"])
                    for p in self.redis.xpending_range(
                        stream, GROUP, min="-", max="+", count=10_000
                    )
                }
                for entry_id, fields in self.redis.xrange(stream, count=10_000):
                    seat, idle = holders.get(entry_id, (None, 0))
                    if seat is not None and (seat == RETURNED or idle > self.claim_idle_ms):
                        seat = None  # abandoned: waiting again
                    result.append(self._entry(entry_id, fields, skill, priority, seat, idle))
        now_ms = int(time.time() * 1000)
        wanted = set(self._seat_skills(skills))
        for ticket, (seat, ms, lane) in self._direct().items():
            skill, priority = lane.rsplit(":", 1)
            if skill in wanted:
                result.append(
                    QueueEntry(
                        ticket=ticket,
                        skill=skill,
                        priority=priority,
                        entry_id="",
                        enqueued_ms=ms,
                        seat=seat,
                        idle_ms=now_ms - ms,
                    )
                )
        return result

    def waiting(self, skills: Iterable[str] | None = None) -> list[QueueEntry]:
        return [e for e in self.entries(skills) if e.seat is None]

    def held_by(self, seat: str, skills: Iterable[str] | None = None) -> list[QueueEntry]:
        return [e for e in self.entries(skills) if e.seat == seat]

    def _seat_skills(self, skills: Iterable[str] | None) -> tuple[str, ...]:
        if skills is None:
            return self.skills
        chosen = tuple(s for s in skills if s in self.skills)
        return chosen or self.skills[:1]

    def drop_all(self) -> None:
        """Delete every key under this queue's prefix (benchmarks and test clean-up)."""
        keys = list(self.redis.scan_iter(f"{self.prefix}:*", count=1000))
        if keys:
            self.redis.delete(*keys)
        self._groups_ready = False
