"""One call: transport, recogniser, bot and prompts wired together.

The session is the coordinator: it takes the media and recogniser callbacks, hands each
event to the bot, carries out the bot's actions through its parts and finishes the call
(the bot's last word, the record, the journal). Its parts, each tested alone:

- ``ivr.listening``: ``AsrWorker``, the per-call recogniser thread (``Recognizer.accept``
  may block ~0.3 s for a Whisper decode, which must never stall the event loop or the
  media clock), with silence filled into a quiet line's gaps; its events come back with
  ``call_soon_threadsafe``. ``InboundWatch``: no caller RTP for ``ivr.media_stall_s``.
- ``ivr.playout``: ``PromptPlayer`` renders prompts off the loop, queues them on the
  ``RtpStream`` (paced by the process's ``MediaClock``), read-backs clause by clause,
  and waits for the end, a barge-in, or the playout deadline (media lost).
- ``ivr.turns``: ``TurnTaking``, barge-in (the recogniser's SpeechStarted or a key
  flushes the line: the prompt stops within one 20 ms packet plus the VAD onset of
  ~100 ms) and continued turns.
- ``ivr.silence``: ``SilenceTimer``; after the bot's ``Listen``, silence for its timeout
  (capped by ``ivr.silence_timeout_s``) goes to the bot as ``SilenceTimeout``, and the
  bot decides whether to re-prompt, read the keypad menu or end the call.
- ``CallRecorder`` (``ivr.recorder``), ``TicketFiler`` (``ivr.filing``), ``CallTransfer``
  (``ivr.transfer``), ``SatisfactionSurvey`` (``ivr.survey``) and the ``CallJournal``
  (``ivr.journal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from asr.base import AsrEvent, Recognizer, SpeechStarted, Transcript
from bot.events import (
    BargeIn,
    CallEnded,
    CallStarted,
    CreateTicket,
    Decision,
    Dtmf,
    Event,
    HangUp,
    Hypothesis,
    Listen,
    Phase,
    Say,
    SilenceTimeout,
    Transfer,
    Utterance,
)
from hotline.draft import TicketDraft, TranscriptLine
from hotline.metrics import METRICS, ReplyClock
from ivr.filing import TicketFiler, TicketSink
from ivr.journal import CallJournal, CallRecord, JournalEvent, decision_entry, mask_number
from ivr.listening import AsrWorker, InboundWatch
from ivr.playout import PromptPlayer
from ivr.recorder import CallRecorder, recording_path, save_or_report
from ivr.rtp import PCMA, RtpStream
from ivr.silence import SilenceTimer
from ivr.sip import IncomingCall
from ivr.survey import SatisfactionSurvey
from ivr.transfer import CallTransfer, Switchboard
from ivr.turns import ReversibleDialogue, TurnTaking
from voice.prompts import PromptLibrary

log = logging.getLogger(__name__)


class Dialogue(ReversibleDialogue, Protocol):
    """The bot's per-call policy (bot/): pure, one decision per event."""

    def prompt_text(self, prompt_id: str) -> str: ...


@dataclass
class SessionDeps:
    prompts: PromptLibrary
    new_recognizer: Callable[[], Recognizer]
    new_dialogue: Callable[[IncomingCall], Dialogue]
    tickets: TicketSink | None
    switchboard: Switchboard | None
    redis: Any | None
    data_dir: Path
    node: str = "node-1"
    silence_timeout_s: float = 8.0
    media_stall_s: float = 30.0  # no caller RTP this long: the media is broken
    turn_continuation_s: float = 1.0  # see ivr.turns.OpenTurn; 0: off
    max_call_s: float = 900.0
    survey: bool = True
    record_audio: bool = True
    recordings_reserve_bytes: int = 0  # a data disk with less free keeps no recordings
    hints: tuple[str, ...] = ()  # what new_recognizer() was built with
    # Called (in a worker thread) with the finished CallRecord: manage.calls.record_call,
    # so the managers' figures see the call at once (the JSON file stays the fallback).
    record_sink: Callable[[CallRecord], Any] | None = None


class CallSession:
    def __init__(self, call: IncomingCall, stream: RtpStream, deps: SessionDeps) -> None:
        self.call = call
        self.stream = stream
        self.deps = deps
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.dialogue = deps.new_dialogue(call)
        self.journal = CallJournal(deps.redis, call.call_id, deps.node)
        self.started = datetime.now(UTC)
        self.record = CallRecord(
            call_id=call.call_id, caller=call.caller, started_at=self.started.isoformat(),
            answered_ms=round(call.answer_ms, 1),
            codec="PCMA" if stream.payload_type == PCMA else "PCMU",
        )  # fmt: skip
        self.t0 = time.monotonic()
        self.reply_clock = ReplyClock(METRICS.reply_latency.observe)
        self.turns = TurnTaking(self.dialogue, deps.turn_continuation_s)
        self._listen: Listen | None = None
        self.silence = SilenceTimer(
            self.loop, deps.silence_timeout_s, lambda: self.events.put_nowait(SilenceTimeout())
        )
        self.survey = SatisfactionSurvey(self.journal)
        # The bot's answer was heard to its end: a caller who hangs up now does what the
        # follow-up invites (「没有的话可以直接挂机」); the call is answered, not abandoned.
        self._answered = False
        self.filer = TicketFiler(deps.tickets, self.journal, self.record)
        self._hung_up = False
        self.transfer = CallTransfer(
            deps.switchboard,
            self.filer,
            self.record,
            call,
            evidence=self._evidence,
            on_redirected=self._redirected,
            hang_up_unmarked=lambda: self._hangup(mark_done=False),
        )
        self.recorder = CallRecorder(
            recording_path(deps.data_dir, self.record.started_at[:10], call.call_id),
            call.call_id, enabled=deps.record_audio, reserve_bytes=deps.recordings_reserve_bytes,
        )  # fmt: skip
        self.player = PromptPlayer(
            stream, deps.prompts, self.turns, call.ended, self.record, self.journal,
            said=lambda text: self._line("bot", text), on_prompt=self._prompt_started,
            played=self.recorder.bot, media_lost=lambda why: self._media_lost("out", why),
        )  # fmt: skip
        self._hints = deps.hints
        self.asr = AsrWorker(deps.new_recognizer(), self._post_asr)
        self.inbound = InboundWatch(stream.stats, deps.media_stall_s,
                                    lambda why: self._media_lost("in", why))  # fmt: skip
        stream.on_audio = self._on_audio
        stream.on_dtmf = self._on_dtmf
        call.on_dtmf_info = self._on_dtmf

    # ---- media callbacks (event loop) ----
    def _on_audio(self, pcm8k: bytes) -> None:
        self.asr.audio(pcm8k)
        self.recorder.caller(pcm8k)

    def _prompt_started(self) -> None:
        self.silence.cancel()
        self.reply_clock.reply_started()

    def _post_asr(self, event: AsrEvent) -> None:  # recogniser thread
        self.loop.call_soon_threadsafe(self._on_asr, event)

    def _on_asr(self, event: AsrEvent) -> None:
        if isinstance(event, SpeechStarted):
            self.silence.cancel()
            if self.turns.speech_started(line_playing=self.stream.playing):
                self.events.put_nowait(BargeIn())
        elif isinstance(event, Transcript) and event.is_final and event.text.strip():
            self.reply_clock.turn_ended()
            self.silence.cancel()
            self._line("caller", event.text, event.confidence)
            self.journal.write(
                JournalEvent.UTTERANCE, {"text": event.text, "confidence": event.confidence}
            )
            alternatives = tuple(Hypothesis(a.text, a.score) for a in event.alternatives)
            self.events.put_nowait(Utterance(event.text, event.confidence, alternatives))

    def _on_dtmf(self, key: str) -> None:
        self.record.dtmf += key
        self.journal.write(JournalEvent.DTMF, {"digit": key})
        if self.survey.key_pressed(key):
            return
        self.silence.cancel()
        self.turns.barge_in()
        self.events.put_nowait(Dtmf(key))

    # ---- the call ----
    async def run(self) -> CallRecord:
        log.info("call %s from %s answered in %.0f ms", self.call.call_id,
                 mask_number(self.call.caller), self.call.answer_ms)  # fmt: skip
        self.journal.start(self.call.caller, self.call.asterisk_channel)
        ended = asyncio.ensure_future(self.call.ended.wait())
        watcher = asyncio.ensure_future(self.inbound.watch(self._over))
        try:
            seats = self.deps.switchboard.seats_available() if self.deps.switchboard else True
            # Night (no seat): an orphaned call's ticket carries the callback promise the
            # dialplan's hotline/night-callback makes (ivr.journal.draft_from_journal).
            self.journal.write(JournalEvent.SEATS, {"available": seats})
            await self._dispatch(CallStarted(self.call.caller, seats))
            while not self._over():
                getter = asyncio.ensure_future(self.events.get())
                remaining = self.deps.max_call_s - (time.monotonic() - self.t0)
                done, _ = await asyncio.wait({getter, ended}, timeout=max(0.0, remaining),
                                             return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if getter not in done:
                    getter.cancel()
                    if not done:  # the call ran past its maximum length
                        self.record.outcome = self.record.outcome or "timeout"
                        await self._hangup()
                    break
                await self._dispatch(getter.result())
        except Exception:
            log.exception("call %s failed; handing the caller to a person", self.call.call_id)
            self.record.outcome = "error"
            await self._hangup(mark_done=False)  # dialplan falls back to the human queue
        finally:
            ended.cancel()
            watcher.cancel()
            await self._finish()
        return self.record

    async def _dispatch(self, event: Event) -> None:
        turn = self.turns.decide(event)
        if turn.continued is not None:
            self.record.continued_turns += 1
            self.journal.write(JournalEvent.CONTINUED, {"text": turn.continued.text})
        event, decision = turn.event, turn.decision
        if decision.state:
            self.record.path.append(decision.state)
        self.journal.write(JournalEvent.DECISION, self._journal_entry(event, decision))
        answers = decision.state == Phase.ANSWERED
        if decision.state and not answers:
            self._answered = False  # the caller moved on to something else
        await self._execute(decision.actions, answers=answers)

    def _journal_entry(self, event: Event, decision: Decision) -> dict[str, Any]:
        return decision_entry(event, decision, getattr(self.dialogue, "ticket", None))

    async def _execute(self, actions: list[Any], answers: bool = False) -> None:
        """``answers``: the first thing said is the answer to the caller's question."""
        interrupted = False
        said = 0
        for index, action in enumerate(actions):
            if self._over():
                await self._file_unfinished(actions[index:])
                return
            if isinstance(action, Say):
                if not interrupted:
                    interrupted = not await self.player.say(action)
                    said += 1
                    if answers and said == 1 and not interrupted:
                        self._answered = True
            elif isinstance(action, Listen):
                self._listen = action
                if action.hints != self._hints:
                    # A reset drops speech in progress (a caller barging in right now),
                    # so the recogniser is reset only when the bot really changes hints.
                    self._hints = action.hints
                    self.asr.reset(action.hints)
            elif isinstance(action, CreateTicket):
                await self._create_ticket(action)
            elif isinstance(action, Transfer):
                await self.transfer.to_person(action)
            elif isinstance(action, HangUp):
                self.record.outcome = self.record.outcome or action.reason
                await self._goodbye(action.reason)
                return
        if self._listen is not None and not interrupted:
            # What silence means (re-prompt, read the menu, give up) is the bot's policy.
            self.silence.arm(self._listen.timeout_s)

    async def _file_unfinished(self, actions: list[Any]) -> None:
        """The caller hung up before the bot got to its ticket (say, during "transferring
        you..."): the work order the bot decided on is still filed."""
        for action in actions:
            ticket = getattr(action, "ticket", None)
            if (
                isinstance(action, CreateTicket | Transfer)
                and ticket is not None
                and not self.filer.number
            ):
                queue = action.queue if isinstance(action, Transfer) else "general"
                await self.filer.file(self._evidence(ticket.model_copy(deep=True)), queue)

    # ---- actions ----
    async def _media_lost(self, direction: str, why: str) -> None:
        """The call's audio is not flowing: the bot can neither hear nor be heard, so the
        caller goes to a person (hang-up unmarked: the dialplan queues them) with the work
        order of what was said so far."""
        if self._hung_up:
            return
        METRICS.media_stalled.labels(direction=direction).inc()
        log.error("call %s: media not flowing (%s): handed to a person", self.call.call_id, why)
        self.record.outcome = "media-lost"
        self.journal.write(JournalEvent.HANDOVER, {"reason": f"media-{direction}"})
        await self._hangup(mark_done=False)

    async def _create_ticket(self, action: CreateTicket) -> str:
        draft = self._evidence(action.ticket.model_copy(deep=True))
        draft.callback_promised = action.callback_promised
        number = await self.filer.file(draft, "general")
        if action.callback_promised and (number or self.filer.spooled):
            fallback = self.dialogue.prompt_text("callback_registered")
            await self.player.confirm_callback(action.confirmation, number, fallback)
        return number

    def _over(self) -> bool:
        """Our leg is ending (we hung up, or were redirected) or has ended."""
        return self._hung_up or self.call.ended.is_set()

    def _redirected(self) -> None:
        self._hung_up = True  # Asterisk's Redirect ends our leg with a BYE

    async def _goodbye(self, reason: str) -> None:
        # Survey and thanks after a request was served; the bot's own farewell already
        # ended silent, abusive and callback calls.
        if reason == "answered" and not self.transfer.requested:
            if self.deps.survey:
                question = self.dialogue.prompt_text("survey")
                self.record.satisfaction = await self.survey.ask(
                    lambda: self.player.say_text(question)
                )
            await self.player.say_text(self.dialogue.prompt_text("goodbye"), barge_in=False)
        await self._hangup()

    def hand_over(self) -> None:
        """The controller is shutting down: end our leg unmarked, so the dialplan takes the
        caller to the human queue (what a crash does); the bot files what it took down."""
        if self._over():
            return
        log.warning("call %s handed over: controller shutting down", self.call.call_id)
        self.record.outcome = self.record.outcome or "handover"
        self._hung_up = True
        self.journal.write(JournalEvent.HANDOVER, {"reason": "shutdown"})
        self.call.hangup()

    async def _hangup(self, mark_done: bool = True) -> None:
        if self._hung_up:
            return
        self._hung_up = True
        sb = self.deps.switchboard
        if mark_done and sb is not None and sb.connected and self.call.asterisk_channel:
            with contextlib.suppress(Exception):
                await sb.mark_done(self.call.asterisk_channel)
        self.call.hangup()

    # ---- records ----
    def _line(self, speaker: str, text: str, confidence: float = 1.0) -> None:
        at = round(time.monotonic() - self.t0, 2)
        self.record.transcript.append({"speaker": speaker, "text": text,
                                       "confidence": round(confidence, 3), "at_s": at})  # fmt: skip

    def _evidence(self, draft: TicketDraft) -> TicketDraft:
        draft.call_id = self.call.call_id
        draft.caller.number = draft.caller.number or self.call.caller
        draft.started_at = self.started
        draft.ended_at = datetime.now(UTC)
        draft.menu_path = list(self.record.path)
        draft.dtmf = self.record.dtmf
        draft.transcript = [TranscriptLine(speaker=t["speaker"], text=t["text"],
                                           confidence=t["confidence"], start_s=t["at_s"])
                            for t in self.record.transcript]  # fmt: skip
        draft.recording_path = str(self.recorder.path)
        return draft

    async def _finish(self) -> None:
        self.silence.cancel()
        if not self._hung_up and self.call.ended.is_set():
            self.record.outcome = self.record.outcome or (
                "answered" if self._answered else "abandoned"
            )
        try:
            decision = self.dialogue.handle(CallEnded())
            for action in decision.actions:  # e.g. a complaint half told: still a ticket
                if isinstance(action, CreateTicket) and not self.filer.number:
                    draft = self._evidence(action.ticket.model_copy(deep=True))
                    draft.callback_promised = action.callback_promised  # night: call back
                    await self.filer.file(draft, "general")
        except Exception:
            # Not swallowed: a half-told complaint must not vanish without a trace. The
            # journal stays open, so orphan recovery files what the caller said.
            self.filer.unfiled = True
            log.exception("call %s: the bot's end-of-call decision failed; the call journal "
                          "is kept for recovery", self.call.call_id)  # fmt: skip
        self.asr.finish()
        await asyncio.to_thread(self.asr.join, 5.0)
        self.record.hangup_by = self.call.hangup_by
        self.record.ended_at = datetime.now(UTC).isoformat()
        try:
            self.record.recording = await self.recorder.save()
            turns = getattr(self.dialogue, "turns", None)
            self.record.turns = (
                [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []
            )
            await save_or_report("call record", self.call.call_id, self.record.save,
                                 self.deps.data_dir / "calls")  # fmt: skip
            if self.deps.record_sink is not None:
                try:
                    await asyncio.to_thread(self.deps.record_sink, self.record)
                except Exception as exc:  # database away: `hotline calls import` catches up
                    log.warning("call %s not recorded in SQL: %s", self.call.call_id, exc)
        finally:
            # Always: a journal left open would make recover_orphans file a second ticket.
            said = any(line["speaker"] == "caller" for line in self.record.transcript)
            if self.call.hangup_by == "no-ack" and not said and not self.record.dtmf:
                await self.journal.discard()  # an INVITE nobody followed up: keep nothing
            else:
                await self.journal.close(self.record.outcome, for_recovery=self.filer.unfiled)
