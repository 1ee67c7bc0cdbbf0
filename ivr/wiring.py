"""Putting the real pieces together: one brain and one speech engine per process.

``hotline run``, ``hotline bench calls`` and the end-to-end tests build their
``SessionDeps`` here, so all three run the same bot, recogniser and prompt set.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from asr.base import Recognizer, SpeechEngine
from bot.brain import BotPaths, Brain, BrainCache
from bot.dialogue import confirm_kb_text
from bot.events import TicketStatus
from bot.menu import INTAKE_TYPES
from hotline.draft import TicketDraft, request_type_label
from hotline.metrics import METRICS
from hotline.settings import Settings
from ivr.filing import TicketSink, WorkOrderHeld
from ivr.session import SessionDeps
from tickets.service import TicketService
from tickets.spool import DraftSpool
from tickets.ticket import STATUS_LABELS, TicketNotFound
from voice.prompts import PromptLibrary

log = logging.getLogger(__name__)

# Values the bot fills into prompt templates that can be known before any call.


def bot_paths(settings: Settings, kb: Path | None = None) -> BotPaths:
    b = settings.bot
    return BotPaths(kb or b.kb, b.cues, b.gazetteer, b.menu, b.prompts, b.synonyms, b.semantic,
                    b.corpus, b.unanswered)  # fmt: skip


def load_brain(settings: Settings, kb: Path | None = None) -> Brain:
    """The bot's read-only knowledge, shared by every call (``kb`` overrides settings)."""
    return Brain.load(bot_paths(settings, kb))


class LiveBrain:
    """The brain of ``bot.brain.BrainCache``: a manager's edit of the KB, prompts or menu
    reaches the next call (calls in progress keep theirs); the new brain's prompts are
    rendered in the background so its first callers do not wait for TTS."""

    def __init__(self, cache: BrainCache, prompts: PromptLibrary) -> None:
        self.cache = cache
        self.prompts = prompts
        self._version = cache.version

    def __call__(self) -> Brain:
        brain = self.cache.current()
        if self.cache.version != self._version:
            self._version = self.cache.version
            log.info("bot data changed: brain version %d", self._version)
            threading.Thread(target=prerender, args=(self.prompts, brain), daemon=True).start()
        if self.cache.last_error:
            log.error("bot data edit not loaded, calls keep the last good data: %s",
                      self.cache.last_error)  # fmt: skip
        return brain


def load_speech(settings: Settings, engine: str | None = None) -> SpeechEngine:
    """The speech engine of the process (``engine`` overrides ``asr.engine``)."""
    from asr.engines import load_engine

    asr = settings.asr.model_copy(update={"engine": engine}) if engine else settings.asr
    return load_engine(asr, settings.models_dir)


def bot_prompt_texts(brain: Brain) -> list[str]:
    """Every fixed sentence the bot can say: rendered before calls so none waits for TTS."""
    texts: list[str] = []
    for text in brain.prompts.texts.values():
        if "{" not in text:
            texts.append(text)
        else:  # a template's fixed parts: a read-back starts at once with its cached head
            texts += template_parts(text)
    intake = brain.prompts.texts.get("intake_start", "")
    kinds = (*INTAKE_TYPES, "consultation")  # the kinds an intake opens with
    texts += [intake.replace("{type_name}", request_type_label(k)) for k in kinds if intake]
    menu = brain.menu.spoken(brain.menu.options)
    silence_menu = brain.prompts.texts.get("silence_menu", "")
    if silence_menu:
        texts.append(silence_menu.replace("{menu}", menu))
    texts.append(menu)
    for option in brain.menu.options:
        if option.submenu:
            texts.append(brain.menu.spoken(option.submenu))
        if option.action == "ask" and option.value:
            texts.append(option.value)
    invalid = brain.prompts.texts.get("menu_invalid", "")
    texts.append(invalid + menu)
    texts += [entry.answer for entry in brain.kb]
    # 「您是想问……吗？」 for each entry: a doubtful turn's question comes as fast as an answer.
    texts += [confirm_kb_text(brain, entry) for entry in brain.kb]
    return list(dict.fromkeys(t for t in texts if t.strip()))


PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def template_parts(template: str) -> list[str]:
    """'我复述一下：{summary}。请问对吗？' -> ['我复述一下：', '。请问对吗？']: the words around
    the placeholders, which are the same on every call (ticket_created_night's parts around
    {ticket_no}, a read-back's lead-in and question)."""
    return [part for part in PLACEHOLDER.split(template) if len(part.strip("，。：；！？ ")) >= 2]


def prerender(prompts: PromptLibrary, brain: Brain) -> int:
    return prompts.prerender(bot_prompt_texts(brain))


def build_deps(
    settings: Settings,
    brain: Brain | Callable[[], Brain],
    engine: SpeechEngine,
    prompts: PromptLibrary,
    *,
    tickets: TicketSink | None,
    switchboard: Any | None = None,
    redis: Any | None = None,
    node: str = "node-1",
    data_dir: Path | None = None,
) -> SessionDeps:
    """``brain``: one Brain, or a function giving the current one (``LiveBrain``)."""
    current = brain if callable(brain) else lambda: brain
    hints = current().hints()

    def new_recognizer() -> Recognizer:
        # Timed: each call's real-time factor goes to hotline_asr_rtf.
        return cast(Recognizer, METRICS.timed_recognizer(engine.recognizer(current().hints())))

    return SessionDeps(
        prompts=prompts,
        new_recognizer=new_recognizer,
        # The ticket store answers callers asking after an earlier work order.
        new_dialogue=lambda call: current().new_dialogue(
            lookup=tickets if isinstance(tickets, ServiceSink) else None
        ),
        tickets=tickets,
        switchboard=switchboard,
        redis=redis,
        data_dir=data_dir or settings.data_dir,
        node=node,
        silence_timeout_s=settings.ivr.silence_timeout_s,
        media_stall_s=settings.ivr.media_stall_s,
        turn_continuation_s=settings.ivr.turn_continuation_s,
        max_call_s=settings.ivr.max_call_s,
        survey=settings.ivr.satisfaction_survey,
        record_audio=settings.ivr.recordings,
        recordings_reserve_bytes=int(settings.ivr.recordings_reserve_mb * 1e6),
        hints=hints,
    )


class ServiceSink:
    """The ticket service (tickets/) behind the session's async ``intake``.

    The service is synchronous (SQL + Redis); it runs in a worker thread so a slow
    database never stalls the event loop that carries every call's audio.

    A work order goes, in this order of preference, to SQL; to the durable spool (SQL
    away); to memory (the spool's disk refuses it too, e.g. a full data disk), where
    ``keep_safe`` files it once SQL or the disk is back and the call's journal keeps it
    across a crash (orphan recovery). Filing is idempotent per call id, so a work order
    filed by two of these paths is still one.
    """

    def __init__(
        self, service: TicketService, spool: DraftSpool | None = None,
        retry_delays_s: tuple[float, ...] = (0.2, 0.5, 1.0),
    ) -> None:  # fmt: skip
        self.service = service
        self.spool = spool
        self.retry_delays_s = retry_delays_s
        self.held: dict[str, tuple[TicketDraft, str]] = {}  # call id -> draft, skill

    async def intake(self, draft: TicketDraft, skill: str) -> str:
        """File the work order: retried with back-off; if SQL stays away, the draft goes
        to the durable spool (filed by ``file_spooled`` later) and "" is returned (no
        number to read out yet). When even the spool refuses it, the draft is held in
        memory and ``WorkOrderHeld`` raised: the caller's session keeps its journal open."""
        for delay in (*self.retry_delays_s, None):
            try:
                return await asyncio.to_thread(self._file, draft, skill)
            except SQLAlchemyError as exc:
                if delay is None:
                    return await self._spool(draft, skill, exc)
                log.warning("work order for call %s not filed (%s): retrying in %.1f s",
                            draft.call_id, type(exc).__name__, delay)  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _file(self, draft: TicketDraft, skill: str) -> str:
        ticket = self.service.intake(draft, skill=skill, callback_promised=draft.callback_promised)
        return str(getattr(ticket, "number", ticket))

    async def _spool(self, draft: TicketDraft, skill: str, cause: Exception) -> str:
        if self.spool is None:
            return self._hold(draft, skill, cause)
        try:
            await asyncio.to_thread(self.spool.put, draft, skill)
        except OSError as exc:  # the spool's disk is full or gone as well
            return self._hold(draft, skill, exc)
        METRICS.spooled_drafts.labels(where="disk").inc()
        log.error("SQL unavailable (%s): work order for call %s spooled to %s, filed when "
                  "the database is back", type(cause).__name__, draft.call_id,
                  self.spool.folder)  # fmt: skip
        return ""

    def _hold(self, draft: TicketDraft, skill: str, cause: Exception) -> str:
        self.held[draft.call_id or f"held-{len(self.held)}"] = (draft, skill)
        METRICS.spooled_drafts.labels(where="memory").inc()
        log.critical("work order for call %s neither filed nor spooled (%s): held in memory "
                     "and in the call journal until SQL or the disk takes it",
                     draft.call_id, cause)  # fmt: skip
        raise WorkOrderHeld(str(cause)) from cause

    async def file_spooled(self) -> list[str]:
        """File what the spool and memory hold (``keep_safe`` calls this every few s)."""
        filed = await self._file_held()
        if self.spool is None or not len(self.spool):
            return filed
        try:
            from_disk = await asyncio.to_thread(self.spool.file_all, self._file)
        except SQLAlchemyError as exc:
            log.warning("%d spooled work orders still waiting for SQL: %s", len(self.spool),
                        type(exc).__name__)  # fmt: skip
            return filed
        if from_disk:
            METRICS.spooled_filed.inc(len(from_disk))
            log.info("%d spooled work orders filed: %s", len(from_disk), ", ".join(from_disk))
        return filed + from_disk

    async def _file_held(self) -> list[str]:
        filed: list[str] = []
        for call_id, (draft, skill) in list(self.held.items()):
            try:
                filed.append(await asyncio.to_thread(self._file, draft, skill))
            except SQLAlchemyError as exc:
                log.warning("%d work orders held in memory still waiting for SQL: %s",
                            len(self.held), type(exc).__name__)  # fmt: skip
                break
            del self.held[call_id]
            METRICS.spooled_filed.inc()
            log.info("work order held in memory filed: %s", filed[-1])
        return filed

    async def keep_safe(self, every_s: float = 5.0, reconcile_every_s: float = 30.0) -> None:
        """Background, for the controller's life: file spooled and held work orders once
        SQL is back, and reconcile the seat queue with SQL on a timer and as soon as Redis
        comes back or restarts (a restart empties the queue), without anyone running
        ``hotline tickets reconcile``."""
        last_seen = ""  # the Redis server's run_id; "" = not reachable
        since_reconcile = reconcile_every_s  # reconcile once at start
        while True:
            await self.file_spooled()
            seen = await asyncio.to_thread(self._redis_run_id)
            if seen and (seen != last_seen or since_reconcile >= reconcile_every_s):
                why = "timer" if seen == last_seen else "redis back" if last_seen else "start"
                if await self._reconcile(why):
                    since_reconcile = 0.0
            last_seen = seen
            await asyncio.sleep(every_s)
            since_reconcile += every_s

    def _redis_run_id(self) -> str:
        try:
            info = self.service.queue.redis.info("server")
        except RedisError:
            return ""
        return str(info.get("run_id", "") or "")

    async def _reconcile(self, why: str) -> bool:
        try:
            report = await asyncio.to_thread(self.service.reconcile)
        except (RedisError, SQLAlchemyError) as exc:  # one of them still away: next round
            log.warning("seat queue reconcile (%s) failed, retried: %s", why, exc)
            return False
        if report.requeued:
            METRICS.tickets_requeued.inc(len(report.requeued))
            log.warning("seat queue healed (%s): %d work orders queued again", why,
                        len(report.requeued))  # fmt: skip
        return True

    def ticket_status(self, number: str) -> TicketStatus | None:
        """For the dialogue (bot.events.TicketLookup): one indexed SQL read by number, on
        the event loop (a caller asking after a work order is rare, the read ~1 ms)."""
        try:
            ticket = self.service.store.get(number, with_history=False)
        except (TicketNotFound, SQLAlchemyError) as exc:
            if not isinstance(exc, TicketNotFound):
                log.error("ticket status lookup failed: %s", exc)
            return None
        label = STATUS_LABELS[ticket.status]
        where = f"由{ticket.department}" if ticket.department else ""
        return TicketStatus(ticket.number, f"目前{where}处于{label}阶段", ticket.department)

    def screen_pop(self, ticket: str, seat: str, queue: str) -> None:
        """AMI AgentConnect -> the seat's console (called on the event loop).

        ``seat`` is the queue member's interface (``PJSIP/seat-101``); its endpoint name
        is the seat's identity (``hotline users add NAME --seat seat-101``), which the
        ticket service turns into the operator's seat (``TicketService.seat_for_phone``).
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, self._pop, ticket, seat_endpoint(seat))
        future.add_done_callback(_log_failure)

    def _pop(self, ticket: str, endpoint: str) -> None:
        self.service.screen_pop(ticket, self.service.seat_for_phone(endpoint))


def seat_endpoint(interface: str) -> str:
    """``PJSIP/seat-101`` -> ``seat-101``: the PJSIP endpoint of a queue member."""
    return interface.rsplit("/", 1)[-1]


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("screen pop failed: %s", future.exception())


def ticket_service(settings: Settings, redis_url: str | None = None) -> TicketService:
    """The ticket service of ``settings.tickets`` (``redis_url``: e.g. an embedded Redis)."""
    return TicketService.from_settings(settings, redis_url=redis_url)
