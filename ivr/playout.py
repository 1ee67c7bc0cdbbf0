"""Playing the bot's prompts to the caller.

A prompt is rendered off the event loop (``PromptSource`` may synthesise), queued on the
call's line and waited for until its last packet has gone out (True) or the caller cut
it short (False: the line is flushed at once, within one 20 ms packet). A read-back
comes in clauses, each queued as soon as it is rendered, so the caller hears the first
while the rest renders; a barge-in stops the rendering too. A callback's confirmation
reads the work order's number out digit by digit.

A prompt whose playout has not finished long after it should have (its length x
``PLAYOUT_SLACK`` + ``PLAYOUT_GRACE_S``) is not being sent: the media process died or
stalled, and ``media_lost`` is told.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from bot.events import Say
from ivr.journal import CallRecord, JournalEvent, JournalWriter
from voice.prompts import TICKET_NO, Prompt

PLAYOUT_SLACK = 1.5
PLAYOUT_GRACE_S = 3.0
BYTES_PER_S = 16000  # 8 kHz 16-bit mono


class Line(Protocol):
    """The outgoing side of the call (``ivr.rtp.RtpStream``)."""

    def play(self, pcm8k: bytes, done: Callable[[], None] | None = None) -> None: ...

    def flush(self) -> list[Any]: ...


class PromptSource(Protocol):
    """Where prompts' audio comes from (``voice.prompts.PromptLibrary``)."""

    def get(self, text: str, prompt_id: str | None = None, slow: bool = False) -> Prompt: ...

    def stream(
        self, text: str, prompt_id: str | None = None, slow: bool = False
    ) -> Iterator[Prompt]: ...

    def ticket_number(self, number: str) -> Prompt: ...

    def with_ticket_number(self, wording: str, number: str) -> Prompt: ...


class BargeInTurns(Protocol):
    """What playout needs of turn-taking (``ivr.turns.TurnTaking``)."""

    def prompt_started(self, stop: Callable[[], None], *, barge_in: bool) -> None: ...

    def prompt_ended(self) -> None: ...


class PromptPlayer:
    def __init__(
        self,
        line: Line,
        prompts: PromptSource,
        turns: BargeInTurns,
        call_ended: asyncio.Event,
        record: CallRecord,  # counts the barge-ins
        journal: JournalWriter,
        *,
        said: Callable[[str], None],  # the bot's words, for the call's transcript
        on_prompt: Callable[[], None],  # a prompt starts (the silence timer stops)
        played: Callable[[bytes], None],  # the audio that went out (the recording)
        media_lost: Callable[[str], Awaitable[None]],  # why, for the log
        slack: float = PLAYOUT_SLACK,
        grace_s: float = PLAYOUT_GRACE_S,
    ) -> None:
        self.line = line
        self.prompts = prompts
        self.turns = turns
        self.call_ended = call_ended
        self.record = record
        self.journal = journal
        self.said = said
        self.on_prompt = on_prompt
        self.played = played
        self.media_lost = media_lost
        self.slack = slack
        self.grace_s = grace_s

    async def say(self, say: Say) -> bool:
        """The bot's ``Say``: played to the end (True) or cut short by the caller."""
        pieces = self.prompts.stream(say.text, say.prompt, say.slow)
        first = await asyncio.to_thread(next, pieces, None)
        self.said(say.text)
        self.journal.write(JournalEvent.SAY, {"text": say.text, "prompt": say.prompt or ""})
        if first is None:
            return True
        return await self.play(first, say.barge_in, more=pieces)

    async def say_text(self, text: str, barge_in: bool = True) -> bool:
        """Words the session says itself (survey, thanks, a callback's confirmation)."""
        prompt = await asyncio.to_thread(self.prompts.get, text)
        self.said(text)
        return await self.play(prompt, barge_in)

    async def confirm_callback(self, wording: str, number: str, fallback: str) -> None:
        """The bot's confirmation of a callback (``ticket_created_night``, the wording a
        manager edits) with the work order's number read out. A spooled draft has no
        number yet (the promise holds); a bot that sends no wording: ``fallback``."""
        if wording and number and TICKET_NO in wording:
            self.said(wording.replace(TICKET_NO, number))
            await self.play(
                await asyncio.to_thread(self.prompts.with_ticket_number, wording, number)
            )
            return
        await self.say_text(wording if wording and TICKET_NO not in wording else fallback)
        if number:
            await self.play(await asyncio.to_thread(self.prompts.ticket_number, number))

    async def play(
        self, prompt: Prompt, barge_in: bool = True, more: Iterator[Prompt] | None = None
    ) -> bool:
        """Play to the end (True) or until the caller interrupts (False). ``more``: the
        prompt's next pieces, queued behind it as they are rendered."""
        self.on_prompt()
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def stop() -> None:  # the caller barged in: the line goes quiet at once
            self.line.flush()
            self.record.barge_ins += 1
            if not done.done():
                done.set_result(False)

        self.turns.prompt_started(stop, barge_in=barge_in)
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
            seconds += len(piece.pcm) / BYTES_PER_S
            self.played(piece.pcm)
            self.line.play(piece.pcm, done=finished)

        ended: asyncio.Future[Any] = asyncio.ensure_future(self.call_ended.wait())
        try:
            enqueue(prompt)
            while more is not None and not done.done() and not self.call_ended.is_set():
                piece = await asyncio.to_thread(next, more, None)
                if piece is None or done.done():  # rendered all, or the caller barged in
                    break
                enqueue(piece)
            all_queued = True
            if unplayed == 0 and not done.done():
                done.set_result(True)
            deadline = seconds * self.slack + self.grace_s
            await asyncio.wait([done, ended], timeout=deadline,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            ended.cancel()
            self.turns.prompt_ended()
        if not done.done() and not self.call_ended.is_set():
            await self.media_lost(f"a {seconds:.1f} s prompt was "
                                  f"still not played after {deadline:.1f} s")  # fmt: skip
        return done.done() and done.result()
