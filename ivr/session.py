"""One call: transport, recogniser, bot and prompts wired together.

Threads and the loop: the RTP socket is read on the event loop; caller audio goes to a
per-call recogniser thread (``Recognizer.accept`` may block ~0.3 s for a Whisper decode
at the end of an utterance, which must never stall the loop or the media clock); its
events come back with ``call_soon_threadsafe``. Outgoing audio is queued on the
``RtpStream`` and paced by the process's ``MediaClock``.

Turn-taking (``ivr.turns``): a prompt plays until it ends, the caller speaks (barge-in:
the recogniser's SpeechStarted flushes the queue, so the prompt stops within one 20 ms
packet plus the VAD onset of ~100 ms) or presses a key. After the bot's ``Listen``,
silence for its timeout (capped by ``ivr.silence_timeout_s``) goes to the bot as
``SilenceTimeout`` (``ivr.silence``): the bot decides whether to re-prompt, read the
keypad menu or end the call.

The session coordinates its parts: ``TurnTaking``, ``SilenceTimer``, ``CallRecorder``,
``TicketFiler``, ``CallTransfer`` (``ivr.transfer``), ``SatisfactionSurvey``
(``ivr.survey``) and the ``CallJournal``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
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
from hotline.audio import StreamResampler
from hotline.audio.frames import FrameBuffer
from hotline.draft import TicketDraft, TranscriptLine
from hotline.metrics import METRICS, ReplyClock
from ivr.filing import TicketFiler, TicketSink
from ivr.journal import CallJournal, CallRecord, JournalEvent, mask_number
from ivr.recorder import CallRecorder, recording_path, save_or_report
from ivr.rtp import PCMA, RtpStream
from ivr.silence import SilenceTimer
from ivr.sip import IncomingCall
from ivr.survey import SatisfactionSurvey
from ivr.transfer import CallTransfer, Switchboard
from ivr.turns import ReversibleDialogue, TurnTaking
from voice.prompts import TICKET_NO, Prompt, PromptLibrary

log = logging.getLogger(__name__)

# A prompt whose playout has not finished this long after it should have (its length x
# PLAYOUT_SLACK + PLAYOUT_GRACE_S) is not being sent: the media process died or stalled.
PLAYOUT_SLACK = 1.5
PLAYOUT_GRACE_S = 3.0


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


GAP_S = 0.1  # how often the recogniser thread looks at a quiet line
FILL_AFTER_S = 0.3  # no caller packet for this long: the line went quiet (DTX, loss)
GAP_FILL_S = 2.0  # at most this much silence is filled in after the last packet


@dataclass(frozen=True, slots=True)
class AudioJob:
    pcm8k: bytes  # the caller's audio (or silence filled into a gap)


@dataclass(frozen=True, slots=True)
class ResetJob:
    hints: tuple[str, ...]  # the bot listens for other words now


@dataclass(frozen=True, slots=True)
class FinishJob:
    """The call ended: the last words, then the recogniser is closed."""


AsrJob = AudioJob | ResetJob | FinishJob


class AsrWorker:
    """The call's recogniser thread: 8 kHz in, 16 kHz 20 ms frames to the recogniser.

    Peers with silence suppression (DTX) and lost packets leave gaps; a recogniser that
    gets no frames never sees the silence that ends a turn, so gaps are filled with
    silence (up to ``GAP_FILL_S`` after the last packet). Filling starts only after
    ``FILL_AFTER_S`` without packets, then catches up at once: packets merely delayed
    (a busy peer or network; measured: 5 of 30 bench calls had 100-200 ms stalls
    mid-speech) must not get fake pauses put into the caller's words, while a real
    end of speech still reaches the recogniser's end-of-turn silence on time.
    """

    def __init__(self, rec: Recognizer, post: Callable[[AsrEvent], None]) -> None:
        self.rec = rec
        self.post = post
        self._jobs: queue.SimpleQueue[AsrJob] = queue.SimpleQueue()
        self._resampler = StreamResampler(8000, 16000)
        self._frames = FrameBuffer(16000)
        self._thread = threading.Thread(target=self._run, name="asr-call", daemon=True)
        self._thread.start()

    def audio(self, pcm8k: bytes) -> None:
        self._jobs.put(AudioJob(pcm8k))

    def reset(self, hints: tuple[str, ...]) -> None:
        self._jobs.put(ResetJob(hints))

    def finish(self) -> None:
        self._jobs.put(FinishJob())

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        last_audio = 0.0  # monotonic time of the last packet (0: none yet)
        filled = 0.0  # seconds of silence filled in since then
        while True:
            try:
                job = self._jobs.get(timeout=GAP_S)
            except queue.Empty:
                quiet = time.monotonic() - last_audio
                if not last_audio or quiet < FILL_AFTER_S or filled >= GAP_FILL_S:
                    continue
                missing = min(quiet, GAP_FILL_S) - filled
                samples = int(missing / 0.02) * 160  # whole 20 ms packets at 8 kHz
                if samples <= 0:
                    continue
                job = AudioJob(b"\x00\x00" * samples)
                filled += samples / 8000
            else:
                if isinstance(job, AudioJob):
                    last_audio, filled = time.monotonic(), 0.0
            try:
                if isinstance(job, AudioJob):
                    for frame in self._frames.push(self._resampler.process(job.pcm8k)):
                        for event in self.rec.accept(frame):
                            self.post(event)
                elif isinstance(job, ResetJob):
                    self.rec.reset(job.hints)
                else:
                    for event in self.rec.finish():
                        self.post(event)
                    self.rec.close()
                    return
            except Exception:  # a recogniser failure must not kill the call: log, go on
                log.exception("recogniser failed")


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
        self._hints = deps.hints
        self.asr = AsrWorker(deps.new_recognizer(), self._post_asr)
        stream.on_audio = self._on_audio
        stream.on_dtmf = self._on_dtmf
        call.on_dtmf_info = self._on_dtmf

    # ---- media callbacks (event loop) ----
    def _on_audio(self, pcm8k: bytes) -> None:
        self.asr.audio(pcm8k)
        self.recorder.caller(pcm8k)

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
        watcher = asyncio.ensure_future(self._watch_inbound())
        try:
            seats = self.deps.switchboard.seats_available() if self.deps.switchboard else True
            # Night (no seat): an orphaned call's ticket carries the callback promise the
            # dialplan's hotline/night-callback makes (ivr.journal.draft_from_journal).
            self.journal.write(JournalEvent.SEATS, {"available": seats})
            await self._dispatch(CallStarted(self.call.caller, seats))
            while not self._hung_up and not self.call.ended.is_set():
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

    def _journal_entry(self, event: Event, decision: Any) -> dict[str, Any]:
        """What orphan recovery needs to file this call as the bot would have: the work
        order decided (CreateTicket or Transfer), else the one being taken down, the skill
        queue and the callback promise (ivr.journal.draft_from_journal)."""
        actions = decision.actions
        decided = next((a for a in actions if isinstance(a, CreateTicket | Transfer)
                        and a.ticket is not None), None)  # fmt: skip
        ticket = decided.ticket if decided is not None else None
        partial = getattr(self.dialogue, "ticket", None) if ticket is None else None
        transfer = next((a for a in actions if isinstance(a, Transfer)), None)
        return {
            "event": type(event).__name__, "state": decision.state,
            "actions": [type(a).__name__ for a in actions],
            "ticket": ticket.model_dump(mode="json") if ticket else None,
            "partial": partial.model_dump(mode="json")
            if isinstance(partial, TicketDraft) else None,
            "queue": transfer.queue if transfer is not None else None,
            "callback_promised": any(isinstance(a, CreateTicket) and a.callback_promised
                                     for a in actions),
        }  # fmt: skip

    async def _execute(self, actions: list[Any], answers: bool = False) -> None:
        """``answers``: the first thing said is the answer to the caller's question."""
        interrupted = False
        said = 0
        for index, action in enumerate(actions):
            if self._hung_up or self.call.ended.is_set():
                await self._file_unfinished(actions[index:])
                return
            if isinstance(action, Say):
                if not interrupted:
                    interrupted = not await self._say(action)
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
    async def _say(self, say: Say) -> bool:
        # A read-back comes in clauses, each played as soon as it is rendered (the
        # caller hears the first while the rest renders); a fixed prompt in one piece.
        pieces = self.deps.prompts.stream(say.text, say.prompt, say.slow)
        first = await asyncio.to_thread(next, pieces, None)
        self._line("bot", say.text)
        self.journal.write(JournalEvent.SAY, {"text": say.text, "prompt": say.prompt or ""})
        if first is None:
            return True
        return await self._play(first, say.barge_in, more=pieces)

    async def _play(
        self, prompt: Prompt, barge_in: bool = True, more: Iterator[Prompt] | None = None
    ) -> bool:
        """Play to the end (True) or until the caller interrupts (False). ``more``: the
        prompt's next pieces, queued behind it as they are rendered."""
        self.silence.cancel()
        done: asyncio.Future[bool] = self.loop.create_future()  # True = played to the end

        def stop() -> None:  # the caller barged in: the line goes quiet at once
            self.stream.flush()
            self.record.barge_ins += 1
            if not done.done():
                done.set_result(False)

        self.turns.prompt_started(stop, barge_in=barge_in)
        self.reply_clock.reply_started()
        unplayed = 0  # pieces handed to the media clock and not yet played out
        all_queued = more is None
        seconds = 0.0

        def finished() -> None:
            nonlocal unplayed
            unplayed -= 1
            if unplayed == 0 and all_queued and not done.done():
                done.set_result(True)

        def enqueue(piece: Prompt) -> None:
            nonlocal unplayed, seconds
            unplayed += 1
            seconds += len(piece.pcm) / 16000
            self.recorder.bot(piece.pcm)
            self.stream.play(piece.pcm, done=finished)

        ended: asyncio.Future[Any] = asyncio.ensure_future(self.call.ended.wait())
        try:
            enqueue(prompt)
            while more is not None and not done.done() and not self.call.ended.is_set():
                piece = await asyncio.to_thread(next, more, None)
                if piece is None or done.done():  # rendered all, or the caller barged in
                    break
                enqueue(piece)
            all_queued = True
            if unplayed == 0 and not done.done():
                done.set_result(True)
            deadline = seconds * PLAYOUT_SLACK + PLAYOUT_GRACE_S
            await asyncio.wait([done, ended], timeout=deadline,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            ended.cancel()
            self.turns.prompt_ended()
        if not done.done() and not self.call.ended.is_set():
            await self._media_lost("out", f"a {seconds:.1f} s prompt was "
                                   f"still not played after {deadline:.1f} s")  # fmt: skip
        return done.done() and done.result()

    async def _watch_inbound(self) -> None:
        """A trunk sends RTP all through a call, silence included: none for
        ``media_stall_s`` means the caller's audio no longer reaches us."""
        seen, since = self.stream.stats.packets_in, time.monotonic()
        while not self._hung_up and not self.call.ended.is_set():
            await asyncio.sleep(1.0)
            if self.stream.stats.packets_in != seen:
                seen, since = self.stream.stats.packets_in, time.monotonic()
            elif time.monotonic() - since >= self.deps.media_stall_s:
                await self._media_lost("in", f"no RTP from the caller for "
                                       f"{self.deps.media_stall_s:.0f} s")  # fmt: skip
                return

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
            await self._promise_callback(action.confirmation, number)
        return number

    async def _promise_callback(self, wording: str, number: str) -> None:
        """The bot's confirmation (``ticket_created_night``, the wording a manager edits)
        with the number read out. A spooled draft has no number yet (the promise holds),
        and a bot that sends no wording: the session's own sentence."""
        if wording and number and TICKET_NO in wording:
            self._line("bot", wording.replace(TICKET_NO, number))
            prompts = self.deps.prompts
            await self._play(await asyncio.to_thread(prompts.with_ticket_number, wording, number))
            return
        await self._play_text(
            wording
            if wording and TICKET_NO not in wording
            else self.dialogue.prompt_text("callback_registered")
        )
        if number:
            await self._play(await asyncio.to_thread(self.deps.prompts.ticket_number, number))

    def _redirected(self) -> None:
        self._hung_up = True  # Asterisk's Redirect ends our leg with a BYE

    async def _goodbye(self, reason: str) -> None:
        # Survey and thanks after a request was served; the bot's own farewell already
        # ended silent, abusive and callback calls.
        if reason == "answered" and not self.transfer.requested:
            if self.deps.survey:
                question = self.dialogue.prompt_text("survey")
                self.record.satisfaction = await self.survey.ask(lambda: self._play_text(question))
            await self._play_text(self.dialogue.prompt_text("goodbye"), barge_in=False)
        await self._hangup()

    async def _play_text(self, text: str, barge_in: bool = True) -> bool:
        prompt = await asyncio.to_thread(self.deps.prompts.get, text)
        self._line("bot", text)
        return await self._play(prompt, barge_in)

    def hand_over(self) -> None:
        """The controller is shutting down: end our leg unmarked, so the dialplan takes the
        caller to the human queue (what a crash does); the bot files what it took down."""
        if self._hung_up or self.call.ended.is_set():
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
