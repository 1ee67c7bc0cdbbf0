"""One call: transport, recogniser, bot and prompts wired together.

Threads and the loop: the RTP socket is read on the event loop; caller audio goes to a
per-call recogniser thread (``Recognizer.accept`` may block ~0.3 s for a Whisper decode
at the end of an utterance, which must never stall the loop or the media clock); its
events come back with ``call_soon_threadsafe``. Outgoing audio is queued on the
``RtpStream`` and paced by the process's ``MediaClock``.

Turn-taking: a prompt plays until it ends, the caller speaks (barge-in: the recogniser's
SpeechStarted flushes the queue, so the prompt stops within one 20 ms packet plus the
VAD onset of ~100 ms) or presses a key. After the bot's ``Listen``, silence for its
timeout (capped by ``ivr.silence_timeout_s``) goes to the bot as ``SilenceTimeout``: the
bot decides whether to re-prompt, read the keypad menu or end the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import queue
import shutil
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from asr.base import AsrEvent, Recognizer, SpeechStarted, Transcript
from asr.recognizer import TRAILING_MARKS
from bot.events import (
    BargeIn,
    CallEnded,
    CallStarted,
    CreateTicket,
    Decision,
    Dtmf,
    Event,
    HangUp,
    Listen,
    Say,
    SilenceTimeout,
    Transfer,
    Utterance,
)
from hotline.audio import StreamResampler
from hotline.audio.frames import FrameBuffer
from hotline.metrics import METRICS, ReplyClock
from ivr.journal import CallJournal, CallRecord, mask_number
from ivr.prompts import TICKET_NO, Prompt, PromptLibrary
from ivr.rtp import PCMA, RtpStream
from ivr.sip import IncomingCall
from tickets.draft import TicketDraft, TranscriptLine

log = logging.getLogger(__name__)

SURVEY_TEXT = "请对本次服务进行评价：满意请按1，基本满意请按2，不满意请按3。"
THANKS_TEXT = "感谢您的来电，再见。"
CALLBACK_TEXT = "现在是非工作时间，我们已为您登记，工作人员上班后会给您回电。"
SURVEY_WAIT_S = 6.0
# A prompt whose playout has not finished this long after it should have (its length x
# PLAYOUT_SLACK + PLAYOUT_GRACE_S) is not being sent: the media process died or stalled.
PLAYOUT_SLACK = 1.5
PLAYOUT_GRACE_S = 3.0


class Dialogue(Protocol):
    """The bot's per-call policy (bot/): pure, one decision per event."""

    def handle(self, event: Event) -> Decision: ...

    def snapshot(self) -> object: ...

    def restore(self, snapshot: object) -> None: ...


class WorkOrderHeld(Exception):
    """``TicketSink.intake``: neither SQL nor the spool took the work order; the sink holds
    it in memory and files it later (the session keeps its journal open meanwhile)."""


class TicketSink(Protocol):
    """The ticket store (tickets/): returns the ticket number."""

    async def intake(self, draft: TicketDraft, skill: str) -> str: ...


class Switchboard(Protocol):
    """What the session asks of Asterisk (ivr.ami)."""

    connected: bool

    async def transfer(self, channel: str, queue: str, ticket: str) -> bool: ...

    async def mark_done(self, channel: str) -> None: ...

    def seats_available(self, queue: str = "general") -> bool: ...


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
    turn_continuation_s: float = 1.0  # see _OpenTurn; 0: off
    max_call_s: float = 900.0
    survey: bool = True
    record_audio: bool = True
    recordings_reserve_bytes: int = 0  # a data disk with less free keeps no recordings
    hints: tuple[str, ...] = ()  # what new_recognizer() was built with
    # Called (in a worker thread) with the finished CallRecord: manage.calls.record_call,
    # so the managers' figures see the call at once (the JSON file stays the fallback).
    record_sink: Callable[[CallRecord], Any] | None = None


@dataclass(slots=True)
class _OpenTurn:
    """The caller's last turn while they may still be going on with it.

    The recogniser ends a turn after a short pause (300 ms) so the bot answers fast; a
    caller who had only paused ("我想反映一下。[pause] 我们小区门口的路灯坏了") starts
    speaking again within ``turn_continuation_s``. If the bot's reply to the first part
    only spoke (no ticket, transfer or hang-up yet), it is taken back: the dialogue returns
    to ``snapshot`` and the whole sentence is answered as one turn.
    """

    snapshot: object
    utterance: Utterance
    ended_at: float  # monotonic: when the bot took the turn
    resumed: bool = False


_REVERSIBLE = (Say, Listen)
GAP_S = 0.1  # how often the recogniser thread looks at a quiet line
FILL_AFTER_S = 0.3  # no caller packet for this long: the line went quiet (DTX, loss)
GAP_FILL_S = 2.0  # at most this much silence is filled in after the last packet


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
        self._jobs: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._resampler = StreamResampler(8000, 16000)
        self._frames = FrameBuffer(16000)
        self._thread = threading.Thread(target=self._run, name="asr-call", daemon=True)
        self._thread.start()

    def audio(self, pcm8k: bytes) -> None:
        self._jobs.put(("audio", pcm8k))

    def reset(self, hints: tuple[str, ...]) -> None:
        self._jobs.put(("reset", hints))

    def finish(self) -> None:
        self._jobs.put(("finish", None))

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        last_audio = 0.0  # monotonic time of the last packet (0: none yet)
        filled = 0.0  # seconds of silence filled in since then
        while True:
            try:
                kind, value = self._jobs.get(timeout=GAP_S)
            except queue.Empty:
                quiet = time.monotonic() - last_audio
                if not last_audio or quiet < FILL_AFTER_S or filled >= GAP_FILL_S:
                    continue
                missing = min(quiet, GAP_FILL_S) - filled
                samples = int(missing / 0.02) * 160  # whole 20 ms packets at 8 kHz
                if samples <= 0:
                    continue
                kind, value = "audio", b"\x00\x00" * samples
                filled += samples / 8000
            else:
                if kind == "audio":
                    last_audio, filled = time.monotonic(), 0.0
            try:
                if kind == "audio":
                    for frame in self._frames.push(self._resampler.process(value)):
                        for event in self.rec.accept(frame):
                            self.post(event)
                elif kind == "reset":
                    self.rec.reset(value)
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
        self._playing: asyncio.Future[bool] | None = None  # True = played to the end
        self.reply_clock = ReplyClock(METRICS.reply_latency.observe)
        self._barge_allowed = True
        self._listen: Listen | None = None
        self._silence: asyncio.TimerHandle | None = None
        self._survey: asyncio.Future[str] | None = None
        self._transferred = False
        # The bot's answer was heard to its end: a caller who hangs up now does what the
        # follow-up invites (「没有的话可以直接挂机」); the call is answered, not abandoned.
        self._answered = False
        self._ticket_number = ""
        self._spooled = False  # the work order waits in the durable spool (SQL was away)
        self._unfiled = False  # not even spooled: the journal keeps it for orphan recovery
        self._hung_up = False
        self._in_audio = bytearray()
        self._out_audio = bytearray()
        self.barge_in_ms: list[float] = []
        self._barge_at = 0.0
        self._hints = deps.hints
        self._open_turn: _OpenTurn | None = None
        self.asr = AsrWorker(deps.new_recognizer(), self._post_asr)
        stream.on_audio = self._on_audio
        stream.on_dtmf = self._on_dtmf
        call.on_dtmf_info = self._on_dtmf

    # ---- media callbacks (event loop) ----
    def _on_audio(self, pcm8k: bytes) -> None:
        self.asr.audio(pcm8k)
        if self.deps.record_audio:
            self._in_audio += pcm8k

    def _post_asr(self, event: AsrEvent) -> None:  # recogniser thread
        self.loop.call_soon_threadsafe(self._on_asr, event)

    def _on_asr(self, event: AsrEvent) -> None:
        if isinstance(event, SpeechStarted):
            self._cancel_silence()
            self._note_resumption()
            if self._playing is not None and self._barge_allowed and self.stream.playing:
                self._barge_in()
                self.events.put_nowait(BargeIn())
        elif isinstance(event, Transcript) and event.is_final and event.text.strip():
            self.reply_clock.turn_ended()
            self._cancel_silence()
            self._line("caller", event.text, event.confidence)
            self.journal.write("utterance", {"text": event.text, "confidence": event.confidence})
            self.events.put_nowait(Utterance(event.text, event.confidence))

    def _on_dtmf(self, key: str) -> None:
        self.record.dtmf += key
        self.journal.write("dtmf", {"digit": key})
        if self._survey is not None and not self._survey.done():
            self._survey.set_result(key)
            return
        self._cancel_silence()
        if self._playing is not None and self._barge_allowed:
            self._barge_in()
        self.events.put_nowait(Dtmf(key))

    def _barge_in(self) -> None:
        self._barge_at = time.monotonic()
        self.stream.flush()
        self.record.barge_ins += 1
        if self._playing is not None and not self._playing.done():
            self._playing.set_result(False)

    # ---- the call ----
    async def run(self) -> CallRecord:
        log.info("call %s from %s answered in %.0f ms", self.call.call_id,
                 mask_number(self.call.caller), self.call.answer_ms)  # fmt: skip
        self.journal.start(self.call.caller, self.call.asterisk_channel)
        ended = asyncio.ensure_future(self.call.ended.wait())
        watcher = asyncio.ensure_future(self._watch_inbound())
        try:
            seats = self.deps.switchboard.seats_available() if self.deps.switchboard else True
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

    def _note_resumption(self) -> None:
        turn = self._open_turn
        if turn is None:
            return
        # A second start with no words in between (a cough, line noise) or a start after
        # the window is new speech, not the sentence going on.
        if turn.resumed or time.monotonic() - turn.ended_at > self.deps.turn_continuation_s:
            self._open_turn = None
        else:
            turn.resumed = True

    def _continue_turn(self, utterance: Utterance) -> Utterance:
        """The caller's words, joined to the turn they went on with (see ``_OpenTurn``)."""
        turn, self._open_turn = self._open_turn, None
        if turn is None or not turn.resumed:
            return utterance
        self.dialogue.restore(turn.snapshot)
        self.record.continued_turns += 1
        first = turn.utterance
        self.journal.write("continued", {"text": first.text})
        weight = len(first.text) + len(utterance.text) or 1
        confidence = (first.confidence * len(first.text)
                      + utterance.confidence * len(utterance.text)) / weight  # fmt: skip
        return Utterance(first.text.rstrip(TRAILING_MARKS) + "，" + utterance.text, confidence)

    async def _dispatch(self, event: Event) -> None:
        snapshot = None
        if isinstance(event, Utterance):
            event = self._continue_turn(event)
            if self.deps.turn_continuation_s > 0:
                snapshot = self.dialogue.snapshot()
        elif not isinstance(event, BargeIn):
            self._open_turn = None  # a key press or a timeout: the caller has moved on
        decision = self.dialogue.handle(event)
        if isinstance(event, Utterance):
            reversible = all(isinstance(a, _REVERSIBLE) for a in decision.actions)
            self._open_turn = (
                _OpenTurn(snapshot, event, time.monotonic())
                if snapshot is not None and reversible
                else None
            )
        if decision.state:
            self.record.path.append(decision.state)
        ticket = next((a.ticket for a in decision.actions if isinstance(a, CreateTicket)), None)
        self.journal.write("decision", {
            "event": type(event).__name__, "state": decision.state,
            "actions": [type(a).__name__ for a in decision.actions],
            "ticket": ticket.model_dump(mode="json") if ticket else None,
        })  # fmt: skip
        if decision.state and decision.state != "answered":
            self._answered = False  # the caller moved on to something else
        await self._execute(decision.actions, answers=decision.state == "answered")

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
                await self._transfer(action)
            elif isinstance(action, HangUp):
                self.record.outcome = self.record.outcome or action.reason
                await self._goodbye(action.reason)
                return
        if self._listen is not None and not interrupted:
            self._arm_silence()

    async def _file_unfinished(self, actions: list[Any]) -> None:
        """The caller hung up before the bot got to its ticket (say, during "transferring
        you..."): the work order the bot decided on is still filed."""
        for action in actions:
            ticket = getattr(action, "ticket", None)
            if (
                isinstance(action, CreateTicket | Transfer)
                and ticket is not None
                and not self._ticket_number
            ):
                queue = action.queue if isinstance(action, Transfer) else "general"
                await self._intake(self._evidence(ticket.model_copy(deep=True)), queue)

    # ---- actions ----
    async def _say(self, say: Say) -> bool:
        prompt = await asyncio.to_thread(self.deps.prompts.get, say.text, say.prompt, say.slow)
        self._line("bot", say.text)
        self.journal.write("say", {"text": say.text, "prompt": say.prompt or ""})
        return await self._play(prompt, say.barge_in)

    async def _play(self, prompt: Prompt, barge_in: bool = True) -> bool:
        """Play to the end (True) or until the caller interrupts (False)."""
        self._cancel_silence()
        self._barge_allowed = barge_in
        done: asyncio.Future[bool] = self.loop.create_future()
        self._playing = done
        self.reply_clock.reply_started()

        def finished() -> None:
            if not done.done():
                done.set_result(True)

        if self.deps.record_audio:
            self._out_audio += prompt.pcm
        self.stream.play(prompt.pcm, done=finished)
        ended: asyncio.Future[Any] = asyncio.ensure_future(self.call.ended.wait())
        waiting: list[asyncio.Future[Any]] = [done, ended]
        deadline = len(prompt.pcm) / 16000 * PLAYOUT_SLACK + PLAYOUT_GRACE_S
        try:
            await asyncio.wait(waiting, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            self._playing = None
        if not done.done() and not self.call.ended.is_set():
            await self._media_lost("out", f"a {len(prompt.pcm) / 16000:.1f} s prompt was "
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
        self.journal.write("handover", {"reason": f"media-{direction}"})
        await self._hangup(mark_done=False)

    def _arm_silence(self) -> None:
        self._cancel_silence()
        # The bot asks for its timeout; the deployment's setting caps it.
        timeout = self.deps.silence_timeout_s
        if self._listen is not None:
            timeout = min(timeout, self._listen.timeout_s)
        self._silence = self.loop.call_later(timeout, self._silence_expired)

    def _cancel_silence(self) -> None:
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None

    def _silence_expired(self) -> None:
        # What silence means (re-prompt, read the menu, give up) is the bot's policy.
        self._silence = None
        self.events.put_nowait(SilenceTimeout())

    async def _create_ticket(self, action: CreateTicket) -> str:
        draft = self._evidence(action.ticket.model_copy(deep=True))
        draft.callback_promised = action.callback_promised
        number = await self._intake(draft, "general")
        if action.callback_promised and (number or self._spooled):
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
        await self._play_text(wording if wording and TICKET_NO not in wording else CALLBACK_TEXT)
        if number:
            await self._play(await asyncio.to_thread(self.deps.prompts.ticket_number, number))

    async def _intake(self, draft: TicketDraft, skill: str) -> str:
        if self.deps.tickets is None:
            log.error("no ticket store configured: ticket for %s kept in the journal only",
                      self.call.call_id)  # fmt: skip
            return ""
        try:
            number = await self.deps.tickets.intake(draft, skill)
        except Exception as exc:
            # Neither SQL nor the spool took it: the journal stays open, so orphan
            # recovery files the work order from it later. Never lost with the call.
            self._unfiled = True
            held = isinstance(exc, WorkOrderHeld)  # the sink files it itself later
            self._spooled = held
            log.critical("call %s: work order neither filed nor spooled (%s); kept in the "
                         "call journal for recovery", self.call.call_id, exc,
                         exc_info=not held)  # fmt: skip
            return ""
        if not number:  # kept in the durable spool (SQL away): filed when it returns
            self._spooled = True
            self.record.outcome = "ticket"
            self.journal.write("ticket", {"number": "", "spooled": True})
            return ""
        self._ticket_number = number
        self.record.ticket = number
        self.record.outcome = "ticket"
        self.journal.write("ticket", {"number": number})
        return number

    async def _transfer(self, action: Transfer) -> None:
        number = self._ticket_number
        if action.ticket is not None and not number:
            number = await self._intake(self._evidence(action.ticket.model_copy(deep=True)),
                                        action.queue)  # fmt: skip
        self.record.outcome = "transfer"
        self.record.transfer_queue = action.queue
        self._transferred = True
        sb = self.deps.switchboard
        channel = self.call.asterisk_channel
        if (
            sb is not None and sb.connected and channel
            and await sb.transfer(channel, action.queue, number)
        ):  # fmt: skip
            self._hung_up = True  # Asterisk's Redirect ends our leg with a BYE
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.call.ended.wait(), 5)
            return
        # No AMI: hang up without marking the call done; the dialplan sends the caller
        # to the human queue (extensions.conf, after Dial).
        await self._hangup(mark_done=False)

    async def _goodbye(self, reason: str) -> None:
        # Survey and thanks after a request was served; the bot's own farewell already
        # ended silent, abusive and callback calls.
        if reason == "answered" and not self._transferred:
            if self.deps.survey:
                self.record.satisfaction = await self._ask_satisfaction()
            await self._play_text(THANKS_TEXT, barge_in=False)
        await self._hangup()

    async def _ask_satisfaction(self) -> int | None:
        self._survey = self.loop.create_future()
        await self._play_text(SURVEY_TEXT)
        with contextlib.suppress(TimeoutError):
            key = await asyncio.wait_for(asyncio.shield(self._survey), SURVEY_WAIT_S)
            if key in "123":
                self.journal.write("satisfaction", {"score": int(key)})
                return int(key)
        return None

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
        self.journal.write("handover", {"reason": "shutdown"})
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
        draft.recording_path = str(self._recording_path())
        return draft

    def _recording_path(self) -> Path:
        return (
            self.deps.data_dir
            / "recordings"
            / self.record.started_at[:10]
            / ("".join(c if c.isalnum() else "_" for c in self.call.call_id)[:100] + ".wav")
        )

    async def _finish(self) -> None:
        self._cancel_silence()
        if not self._hung_up and self.call.ended.is_set():
            self.record.outcome = self.record.outcome or (
                "answered" if self._answered else "abandoned"
            )
        try:
            decision = self.dialogue.handle(CallEnded())
            for action in decision.actions:  # e.g. a complaint half told: still a ticket
                if isinstance(action, CreateTicket) and not self._ticket_number:
                    draft = self._evidence(action.ticket.model_copy(deep=True))
                    draft.callback_promised = action.callback_promised  # night: call back
                    await self._intake(draft, "general")
        except Exception:
            # Not swallowed: a half-told complaint must not vanish without a trace. The
            # journal stays open, so orphan recovery files what the caller said.
            self._unfiled = True
            log.exception("call %s: the bot's end-of-call decision failed; the call journal "
                          "is kept for recovery", self.call.call_id)  # fmt: skip
        self.asr.finish()
        await asyncio.to_thread(self.asr.join, 5.0)
        self.record.hangup_by = self.call.hangup_by
        self.record.ended_at = datetime.now(UTC).isoformat()
        try:
            if self.deps.record_audio and self._room_for_recording():
                path = self._recording_path()
                await self._save("recording", _write_stereo, path, bytes(self._in_audio),
                                 bytes(self._out_audio))  # fmt: skip
                self.record.recording = str(path) if path.exists() else ""
            turns = getattr(self.dialogue, "turns", None)
            self.record.turns = (
                [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []
            )
            await self._save("call record", self.record.save, self.deps.data_dir / "calls")
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
                await self.journal.close(self.record.outcome, for_recovery=self._unfiled)

    def _room_for_recording(self) -> bool:
        """Recordings are the first thing a filling data disk refuses, so the space left
        keeps taking work orders (SQLite and the spool live on the same disk)."""
        try:
            free = shutil.disk_usage(self.deps.data_dir).free
        except OSError:
            return True  # no data dir yet: the write itself reports what is wrong
        if free >= self.deps.recordings_reserve_bytes:
            return True
        METRICS.recording_failures.labels(reason="reserve").inc()
        log.error("call %s: recording not saved: %.0f MB free on the data disk, below the "
                  "%.0f MB kept for work orders; the call and its ticket are unaffected",
                  self.call.call_id, free / 1e6,
                  self.deps.recordings_reserve_bytes / 1e6)  # fmt: skip
        return False

    async def _save(self, what: str, write: Callable[..., Any], *args: Any) -> None:
        """Disk full or read-only: say so clearly, count it, and let the call end normally."""
        try:
            await asyncio.to_thread(write, *args)
        except OSError as exc:
            reason = errno.errorcode.get(exc.errno or 0, "OSError")
            METRICS.recording_failures.labels(reason=reason).inc()
            log.error("call %s: %s not saved (%s: %s); the call and its ticket are unaffected",
                      self.call.call_id, what, reason, exc.strerror or exc)  # fmt: skip
            if what == "recording":
                with contextlib.suppress(OSError):  # no half-written WAV left behind
                    args[0].unlink(missing_ok=True)


def _write_stereo(path: Path, caller: bytes, bot: bytes) -> None:
    """Left: the caller; right: what the bot played (prompts back to back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(len(caller), len(bot)) // 2
    left = np.zeros(n, dtype="<i2")
    right = np.zeros(n, dtype="<i2")
    left[: len(caller) // 2] = np.frombuffer(caller, dtype="<i2")
    right[: len(bot) // 2] = np.frombuffer(bot, dtype="<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(np.column_stack([left, right]).astype("<i2").tobytes())
