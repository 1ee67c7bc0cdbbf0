"""Write-ahead call journal in Redis, and the call record on disk.

Every utterance and bot decision is appended to a Redis stream (``hotline:call:<id>``)
the moment it happens, and the call is listed in ``hotline:calls:active`` with its node
and a heartbeat. A controller that dies mid-call leaves both behind; ``recover_orphans``
(run by every controller at start and every ``ivr.orphan_scan_s``) turns each stale entry
into a ticket carrying the partial transcript and the bot's classification (request type,
skill queue, callback promise), so nothing the caller said is lost. Asterisk meanwhile
sends the caller to the human queue (see telephony_config/extensions.conf).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from bot.events import CreateTicket, Decision, Event, Transfer
from hotline.draft import RequestType, TicketDraft, TranscriptLine
from hotline.metrics import METRICS

log = logging.getLogger(__name__)

ACTIVE = "hotline:calls:active"
# Asterisk channel of the caller -> call id: the seat that takes an orphaned call (the
# dialplan's fallback) is matched to its journal from AgentConnect's Channel.
CHANNEL = "hotline:channel:{}"
CHANNEL_KEEP_S = 3 * 3600  # a call, its queue waits and a margin; Asterisk reuses names
_RETRIES: set[asyncio.Task[None]] = set()  # journals closing once Redis is back
STREAM = "hotline:call:{}"
KEEP_S = 7 * 24 * 3600


class JournalEvent(StrEnum):
    """What a journal entry records; the one list the writer, recovery and drills share."""

    STARTED = "started"  # caller, Asterisk channel, node
    SEATS = "seats"  # whether a seat was available (night: a callback is owed)
    UTTERANCE = "utterance"  # the caller's words and the recogniser's confidence
    CONTINUED = "continued"  # a turn joined to the caller's previous one
    DTMF = "dtmf"
    SAY = "say"  # what the bot said
    DECISION = "decision"  # the bot's classification, work order draft and queue
    HANDOVER = "handover"  # to a person, and why
    TICKET = "ticket"  # the work order filed (or spooled)
    SATISFACTION = "satisfaction"
    ENDED = "ended"


@dataclass(frozen=True)
class JournalEntry:
    """One stream entry, and its wire form in Redis (``kind``, JSON ``data``, ``at``)."""

    kind: JournalEvent
    data: dict[str, Any]
    at: float = 0.0

    def encode(self) -> dict[str, str]:
        payload = json.dumps(self.data, ensure_ascii=False, default=str)
        return {"kind": self.kind.value, "data": payload, "at": f"{self.at:.3f}"}

    @classmethod
    def decode(cls, fields: Mapping[Any, Any]) -> JournalEntry | None:
        """None for a kind this version does not know (written by a newer controller):
        recovery files what it understands instead of failing on the whole call."""

        def text(key: str) -> str:
            value = fields.get(key.encode(), fields.get(key, ""))
            return value.decode() if isinstance(value, bytes) else str(value)

        try:
            kind = JournalEvent(text("kind"))
        except ValueError:
            return None
        return cls(kind, json.loads(text("data") or "{}"), float(text("at") or 0))


class JournalWriter(Protocol):
    """What a call's parts need of its journal (``CallJournal``; a fake in tests)."""

    def write(self, kind: JournalEvent, data: dict[str, Any]) -> None: ...


def mask_number(number: str) -> str:
    """Caller numbers are personal data: logs show 138****8000."""
    return number[:3] + "****" + number[-4:] if len(number) >= 8 else "****"


class CallJournal:
    """Ordered, non-blocking writes for one call (a writer task drains a queue)."""

    def __init__(self, redis: Any | None, call_id: str, node: str) -> None:
        self.redis = redis
        self.key = STREAM.format(call_id)
        self.call_id = call_id
        self.node = node
        self._queue: asyncio.Queue[tuple[JournalEvent, dict[str, Any]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.failed = False
        self._unfinished = False
        self._keep_active = False
        self._discard = False

    def start(self, caller: str, channel: str) -> None:
        self._task = asyncio.get_running_loop().create_task(self._writer())
        self.write(JournalEvent.STARTED, {"caller": caller, "channel": channel, "node": self.node})

    def write(self, kind: JournalEvent, data: dict[str, Any]) -> None:
        self._queue.put_nowait((kind, data))

    async def close(self, outcome: str, for_recovery: bool = False) -> None:
        """End the journal. ``for_recovery``: the call's work order could not be filed or
        spooled, so the journal stays in the active list and orphan recovery files it
        from here (filing is idempotent per call, so never twice)."""
        self.write(JournalEvent.ENDED, {"outcome": outcome})
        self._keep_active = for_recovery
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task

    async def discard(self) -> None:
        """End the journal of a call nobody was on (its 200 OK was never acknowledged): no
        entry in the active list, no stream kept for days, nothing to recover."""
        self._discard = True
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task

    async def _writer(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                if self._discard:
                    await self._safe(self._delete())
                    return
                if self._keep_active:
                    return
                await self._safe(self._finish())
                if self._unfinished:
                    # Redis away as the call ended: an entry left in the active list would
                    # make recover_orphans file the call again. Retry in the background.
                    task = asyncio.get_running_loop().create_task(self._finish_later())
                    _RETRIES.add(task)
                    task.add_done_callback(_RETRIES.discard)
                return
            kind, data = item
            await self._safe(self._append(kind, data))

    async def _append(self, kind: JournalEvent, data: dict[str, Any]) -> None:
        if self.redis is None:
            return
        if kind is JournalEvent.STARTED and data.get("channel"):
            await self.redis.set(CHANNEL.format(data["channel"]), self.call_id, ex=CHANNEL_KEEP_S)
        await self.redis.xadd(self.key, JournalEntry(kind, data, time.time()).encode())
        beat = json.dumps({"node": self.node, "beat": time.time()})
        await self.redis.hset(ACTIVE, self.call_id, beat)

    async def _delete(self) -> None:
        if self.redis is not None:
            await self.redis.hdel(ACTIVE, self.call_id)
            await self.redis.delete(self.key)

    async def _finish(self) -> None:
        if self.redis is None:
            return
        self._unfinished = True
        await self.redis.hdel(ACTIVE, self.call_id)
        await self.redis.expire(self.key, KEEP_S)
        self._unfinished = False

    async def _finish_later(self, every_s: float = 2.0, give_up_s: float = 600.0) -> None:
        deadline = time.monotonic() + give_up_s
        while time.monotonic() < deadline:
            await asyncio.sleep(every_s)
            with contextlib.suppress(Exception):
                await self._finish()
                log.info("call journal for %s closed after Redis came back", self.call_id)
                return
        log.error("call journal for %s not closed (Redis away for %.0f s): orphan recovery "
                  "may file the call again", self.call_id, give_up_s)  # fmt: skip

    async def _safe(self, op: Awaitable[None]) -> None:
        try:
            await op
        except Exception as exc:  # Redis down: the call goes on; the disk record remains
            if not self.failed:
                log.warning("call journal for %s unavailable: %s", self.call_id, exc)
                METRICS.journal_failures.inc()
            self.failed = True


NODE_BEAT = "hotline:node:{}"  # this controller's own last beat (its downtime, below)
BEAT_EVERY_S = 5.0


# Refresh a call's beat only while its entry exists: the journal's close deletes it, and a
# heartbeat that read the call list just before must not write it back (recovery would
# then file a ticket for a call that ended normally). One script: atomic in Redis.
_REFRESH_IF_OPEN = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""


def beat_interval(stale_s: float) -> float:
    """Beats often enough that a live call is never stale: three per ``orphan_stale_s``."""
    return max(0.5, min(BEAT_EVERY_S, stale_s / 3))


async def heartbeat(redis: Any, calls: Callable[[], list[str]], node: str,
                    every_s: float = BEAT_EVERY_S) -> None:  # fmt: skip
    """Keep this node's live calls fresh in the active list, and the node's own beat.
    Only refreshes: a call enters the list by its journal's first write, and leaves it
    by its close, never by this loop."""
    refresh = redis.register_script(_REFRESH_IF_OPEN)
    while True:
        now = time.time()
        with contextlib.suppress(Exception):
            await redis.set(NODE_BEAT.format(node), now, ex=KEEP_S)
            beat = json.dumps({"node": node, "beat": now})
            for call_id in calls():
                await refresh(keys=[ACTIVE], args=[call_id, beat])
        await asyncio.sleep(every_s)


async def downtime_before_start(redis: Any, node: str) -> float:
    """Seconds this node was not answering before this start (0: no earlier beat, or a
    normal restart). While a controller is down Asterisk's dialplan sends its callers to
    people and no work order exists for them; this is the controller's only way to say
    so afterwards (``hotline_controller_downtime_seconds``, a log line)."""
    try:
        last = await redis.get(NODE_BEAT.format(node))
    except Exception:  # Redis away: nothing known
        return 0.0
    if last is None:
        return 0.0
    gap = time.time() - float(last)
    return gap if gap > 3 * BEAT_EVERY_S else 0.0


# intake(draft, skill) -> ticket number ("" when spooled): ivr.wiring.ServiceSink.intake.
Intake = Callable[[TicketDraft, str], Awaitable[str]]


async def recover_orphans(
    redis: Any, intake: Intake, stale_s: float = 10.0,
    live: Callable[[], Collection[str]] | None = None,
) -> list[str]:  # fmt: skip
    """Tickets for calls whose controller stopped writing (crash): partial transcript kept.
    ``live``: the calls this process is on now, never orphans whatever their beat says."""
    recovered: list[str] = []
    entries = await redis.hgetall(ACTIVE)
    ours = set(live()) if live is not None else set()
    for raw_id, raw in entries.items():
        call_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        info = json.loads(raw)
        if call_id in ours or time.time() - float(info.get("beat", 0)) < stale_s:
            continue
        number = await recover_call(redis, call_id, raw, intake)
        if number is not None:
            recovered.append(number)
    return recovered


async def recover_call(redis: Any, call_id: str, raw: Any, intake: Intake) -> str | None:
    """File one orphaned call from its journal: None when another node claimed it first.
    ``raw``: its entry in the active list, given back if nothing could file it."""
    # Claim it (another node may be recovering too): HDEL returns 1 for one winner.
    if not await redis.hdel(ACTIVE, call_id):
        return None
    orphan = draft_from_journal(call_id, await redis.xrange(STREAM.format(call_id)))
    try:
        number = await intake(orphan.draft, orphan.skill)
    except BaseException:
        # Not filed (SQL and the spool both away): the claim is given back, so the
        # next scan tries again instead of the call being forgotten.
        await redis.hset(ACTIVE, call_id, raw)
        raise
    await redis.expire(STREAM.format(call_id), KEEP_S)
    log.warning("call %s ended without its controller: ticket %s (%s, queue %s%s)", call_id,
                number or "spooled", orphan.draft.type.value, orphan.skill,
                ", callback promised" if orphan.draft.callback_promised else "")  # fmt: skip
    return number


async def call_of_channel(redis: Any, channel: str) -> str:
    """The call id whose caller is on Asterisk channel ``channel`` ("" when unknown)."""
    if not channel:
        return ""
    value = await redis.get(CHANNEL.format(channel))
    return "" if value is None else value.decode() if isinstance(value, bytes) else str(value)


async def recover_orphans_forever(
    redis: Any, intake: Intake, every_s: float = 5.0,
    stale_s: float = 10.0, live: Callable[[], Collection[str]] | None = None,
) -> None:  # fmt: skip
    """File tickets for calls a dead controller (a peer, or this one before a restart)
    left behind, and calls whose work order nothing else took: at start, then every
    ``every_s`` (a peer may die while this one runs)."""
    while True:
        try:
            found = await recover_orphans(redis, intake, stale_s, live)
            METRICS.orphans_recovered.inc(len(found))
        except Exception as exc:  # Redis or the ticket store down: try again later
            log.warning("orphaned call recovery failed, retrying in %.0f s: %s", every_s, exc)
        await asyncio.sleep(every_s)


@dataclass
class OrphanedCall:
    """What the journal says the bot would have filed: the work order and its skill queue."""

    draft: TicketDraft
    skill: str = "general"


ORPHAN_REASON = "the call controller stopped mid-call"


def decision_entry(event: Event, decision: Decision, taking_down: object) -> dict[str, Any]:
    """A ``DECISION`` entry: what orphan recovery needs to file the call as the bot would
    have (``draft_from_journal``): the work order decided (CreateTicket or Transfer), else
    the one being taken down (``taking_down``, the dialogue's draft), the skill queue and
    the callback promise."""
    actions = decision.actions
    decided = next((a for a in actions if isinstance(a, CreateTicket | Transfer)
                    and a.ticket is not None), None)  # fmt: skip
    ticket = decided.ticket if decided is not None else None
    partial = taking_down if ticket is None and isinstance(taking_down, TicketDraft) else None
    transfer = next((a for a in actions if isinstance(a, Transfer)), None)
    return {
        "event": type(event).__name__, "state": decision.state,
        "actions": [type(a).__name__ for a in actions],
        "ticket": ticket.model_dump(mode="json") if ticket else None,
        "partial": partial.model_dump(mode="json") if partial is not None else None,
        "queue": transfer.queue if transfer is not None else None,
        "callback_promised": any(isinstance(a, CreateTicket) and a.callback_promised
                                 for a in actions),
    }  # fmt: skip


def draft_from_journal(call_id: str, entries: list[tuple[Any, dict[Any, Any]]]) -> OrphanedCall:
    """The bot's classification kept: the work order it decided (or was taking down),
    the skill queue it transferred to, and the callback promise (made by the bot, or by
    the dialplan's night message when no seat was there)."""

    draft = TicketDraft(type=RequestType.HUMAN, call_id=call_id, handover_reason=ORPHAN_REASON)
    decided = False
    skill, promised, night = "general", False, False
    for _, fields in entries:
        entry = JournalEntry.decode(fields)
        if entry is None:
            continue
        data = entry.data
        if entry.kind is JournalEvent.STARTED:
            draft.caller.number = data.get("caller", "")
            draft.started_at = datetime.fromtimestamp(entry.at, UTC)
        elif entry.kind is JournalEvent.SEATS:
            night = not data.get("available", True)
        elif entry.kind is JournalEvent.UTTERANCE:
            draft.caller_words.append(data["text"])
            line = TranscriptLine(
                speaker="caller", text=data["text"], confidence=data.get("confidence", 1.0)
            )
            draft.transcript.append(line)
        elif entry.kind is JournalEvent.SAY:
            draft.transcript.append(TranscriptLine(speaker="bot", text=data["text"]))
        elif entry.kind is JournalEvent.DECISION:
            found = data.get("ticket") or (None if decided else data.get("partial"))
            if found:
                decided = decided or bool(data.get("ticket"))
                draft = _classified(draft, TicketDraft.model_validate(found), call_id)
            skill = data.get("queue") or skill
            promised = promised or bool(data.get("callback_promised"))
        elif entry.kind is JournalEvent.DTMF:
            draft.dtmf += data.get("digit", "")
    draft.summary = draft.summary or "；".join(draft.caller_words)[:200]
    draft.callback_promised = promised or night
    return OrphanedCall(draft, skill)


def _classified(so_far: TicketDraft, bot: TicketDraft, call_id: str) -> TicketDraft:
    """The bot's work order with the journal's evidence (transcript, caller ID, start)."""
    bot.transcript, bot.caller_words = so_far.transcript, so_far.caller_words
    bot.caller.number, bot.started_at = so_far.caller.number, so_far.started_at
    bot.call_id = call_id
    bot.handover_reason = ORPHAN_REASON
    return bot


@dataclass
class CallRecord:
    """What every call leaves on disk, ticket or not."""

    call_id: str
    caller: str
    started_at: str
    answered_ms: float = 0.0
    ended_at: str = ""
    hangup_by: str = ""
    # answered | ticket | transfer | abandoned | error, or the bot's HangUp reason
    # (silence, abusive, emergency, ...)
    outcome: str = ""
    path: list[str] = field(default_factory=list)  # dialogue states and prompts, in order
    dtmf: str = ""
    transcript: list[dict[str, Any]] = field(default_factory=list)
    ticket: str = ""
    transfer_queue: str = ""
    satisfaction: int | None = None
    recording: str = ""
    barge_ins: int = 0
    # Turns the caller went on with after a pause: the bot's reply was taken back and the
    # whole sentence answered (ivr.turns, ivr.turn_continuation_s).
    continued_turns: int = 0
    codec: str = ""
    # The bot's decision per caller turn (bot.dialogue.Dialogue.turns): KB entry answered
    # and its confidence, questions without an answer; read by manage.calls.record_call.
    turns: list[dict[str, Any]] = field(default_factory=list)

    def save(self, calls_dir: Path) -> Path:
        day = self.started_at[:10]
        out = calls_dir / day
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{_safe(self.call_id)}.json"
        path.write_text(json.dumps(self.__dict__, ensure_ascii=False, indent=1))
        return path


def _safe(call_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in call_id)[:120]
