"""The calls bench's split: wrong on the text vs wrong because of recognition."""

from __future__ import annotations

from bot.brain import Brain
from testkit.bench import _verdict, confirms, split_by_label, text_outcome


def test_verdicts_split_understanding_from_recognition() -> None:
    assert _verdict("kb:low-income", "kb:low-income", "kb:low-income") == "correct"
    assert _verdict("kb:low-income", "confirm:kb:low-income", "kb:low-income") == "confirmed"
    assert _verdict("emergency", "emergency_check", "emergency") == "confirmed"
    assert _verdict("kb:low-income", "unknown", "kb:low-income") == "wrong_by_recognition"
    assert _verdict("kb:low-income", "unknown", "unknown") == "wrong_on_text"
    # On the written words the bot would ask to confirm the right entry: the miss is the
    # recogniser's, not understanding's.
    on_text = "confirm:kb:low-income"
    assert _verdict("kb:low-income", "kb:vaccine", on_text) == "wrong_by_recognition"
    assert _verdict("kb:low-income", "kb:vaccine", "confirm:kb:vaccine") == "wrong_on_text"
    assert not confirms("kb:low-income", "confirm:kb:vaccine")
    rows = [
        {"expected": "kb:a", "verdict": "correct"},
        {"expected": "kb:b", "verdict": "wrong_by_recognition"},
        {"expected": "human", "verdict": "wrong_on_text"},
        {"expected": "human", "failed": "no reply"},
    ]
    table = split_by_label(rows)
    assert table["kb"] == {"calls": 2, "correct": 1, "confirmed": 0, "wrong_on_text": 0,
                           "wrong_by_recognition": 1}  # fmt: skip
    assert table["human"]["calls"] == 2 and table["human"]["wrong_on_text"] == 1


def test_text_outcome_is_the_bot_on_the_clean_words() -> None:
    brain = Brain.load()
    answers = {entry.answer: entry.id for entry in brain.kb}
    assert text_outcome(brain, "我要找人工", answers) == "human"
    assert text_outcome(brain, "我家着火了", answers) == "emergency"
