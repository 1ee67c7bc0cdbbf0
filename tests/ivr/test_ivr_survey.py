"""The satisfaction survey alone (``ivr.survey``): which key is a score, when the caller
may press it, and that keys outside the survey stay the bot's."""

from __future__ import annotations

import asyncio
from typing import Any

from ivr.journal import JournalEvent
from ivr.survey import SatisfactionSurvey


class Journal:
    def __init__(self) -> None:
        self.entries: list[tuple[JournalEvent, dict[str, Any]]] = []

    def write(self, kind: JournalEvent, data: dict[str, Any]) -> None:
        self.entries.append((kind, data))


def run_survey(
    *, while_asking: str = "", after_s: float | None = None, key: str = "", wait_s: float = 0.2
) -> tuple[int | None, Journal, list[bool]]:
    """Ask; the caller presses ``while_asking`` during the question, or ``key`` once
    ``after_s`` has passed after it. Returns the score, the journal and whether each key
    was the survey's."""
    journal, taken = Journal(), []

    async def scenario() -> int | None:
        survey = SatisfactionSurvey(journal, wait_s=wait_s)

        async def question() -> None:
            if while_asking:
                taken.append(survey.key_pressed(while_asking))
            await asyncio.sleep(0.01)
            if after_s is not None:
                asyncio.get_running_loop().call_later(
                    after_s, lambda: taken.append(survey.key_pressed(key))
                )

        return await survey.ask(question)

    return asyncio.run(scenario()), journal, taken


def test_a_key_after_the_question_is_the_score_and_journalled() -> None:
    score, journal, taken = run_survey(after_s=0.05, key="2")
    assert score == 2 and taken == [True]
    assert journal.entries == [(JournalEvent.SATISFACTION, {"score": 2})]


def test_a_key_pressed_while_the_question_plays_counts() -> None:
    score, _, taken = run_survey(while_asking="1")
    assert score == 1 and taken == [True]


def test_a_key_that_is_not_a_score_gives_none_and_is_not_the_bots() -> None:
    score, journal, taken = run_survey(after_s=0.05, key="9")
    assert score is None and taken == [True]
    assert journal.entries == []


def test_no_key_within_the_wait_is_no_score() -> None:
    score, journal, _ = run_survey(wait_s=0.1)
    assert score is None and journal.entries == []


def test_keys_before_and_after_the_survey_are_the_bots() -> None:
    async def scenario() -> tuple[bool, bool]:
        survey = SatisfactionSurvey(Journal(), wait_s=0.2)
        before = survey.key_pressed("1")

        async def question() -> None:
            survey.key_pressed("3")

        await survey.ask(question)
        return before, survey.key_pressed("2")

    assert asyncio.run(scenario()) == (False, False)
