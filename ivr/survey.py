"""The satisfaction survey after an answered call: the bot's ``survey`` prompt asks for a
key (1-3); one pressed while it plays or within ``wait_s`` after it is the score."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from ivr.journal import JournalEvent, JournalWriter

SURVEY_WAIT_S = 6.0
SCORES = "123"


class SatisfactionSurvey:
    def __init__(self, journal: JournalWriter, wait_s: float = SURVEY_WAIT_S) -> None:
        self.journal = journal
        self.wait_s = wait_s
        self._answer: asyncio.Future[str] | None = None

    def key_pressed(self, key: str) -> bool:
        """True: the key answers the survey (the bot does not get it)."""
        if self._answer is None or self._answer.done():
            return False
        self._answer.set_result(key)
        return True

    async def ask(self, play_question: Callable[[], Awaitable[object]]) -> int | None:
        """The caller's score; None for no key, or a key that is not a score."""
        self._answer = asyncio.get_running_loop().create_future()
        await play_question()
        with contextlib.suppress(TimeoutError):
            key = await asyncio.wait_for(asyncio.shield(self._answer), self.wait_s)
            if key in SCORES:
                self.journal.write(JournalEvent.SATISFACTION, {"score": int(key)})
                return int(key)
        return None
