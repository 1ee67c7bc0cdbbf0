"""The calls bench's split: wrong on the text vs wrong because of recognition."""

from __future__ import annotations

from bot.brain import Brain
from bot.events import Decision, Say, Transfer, Utterance
from hotline.draft import RequestType, TicketDraft
from testkit.bench import (
    DialogueRecorder,
    _verdict,
    confirms,
    outcome_after_confirm,
    outcome_label,
    split_by_label,
    text_outcome,
)


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


class ScriptedDialogue:
    """The bot's decisions, one per event, as a recorded call made them."""

    def __init__(self, decisions: list[Decision]) -> None:
        self.decisions = decisions

    def handle(self, event: object) -> Decision:
        return self.decisions.pop(0)


def test_what_a_yes_to_the_bots_doubt_reached() -> None:
    answer = "社保卡丢失后请先挂失，再到社保经办机构补办。"
    answers = {answer: "sb-card-lost"}
    question = Decision([Say("您是想问社保卡丢了怎么办吗？")], state="confirm:sb-card-lost")
    answered = Decision([Say(answer)], state="answered")
    yes_then_answer = DialogueRecorder(ScriptedDialogue([question, answered]))
    yes_then_answer.handle(Utterance("为我社保卡照不见了在正"))
    yes_then_answer.handle(Utterance("对，是的。"))
    assert outcome_label(yes_then_answer, answers) == "confirm:kb:sb-card-lost"
    assert outcome_after_confirm(yes_then_answer, answers) == "kb:sb-card-lost"
    # The caller never answered (the yes was not heard): nothing was reached.
    unanswered = DialogueRecorder(ScriptedDialogue([question]))
    unanswered.handle(Utterance("为我社保卡照不见了在正"))
    assert outcome_after_confirm(unanswered, answers) == "unknown"
    # Answered at once, no question asked: there is no yes to credit.
    direct = DialogueRecorder(ScriptedDialogue([answered]))
    direct.handle(Utterance("社保卡丢了怎么补办"))
    assert outcome_after_confirm(direct, answers) == "unknown"
    # A yes to the danger question hands an emergency over.
    danger = Decision([Say("请问现在有人有生命危险吗？", prompt="emergency_check")])
    ticket = TicketDraft(type=RequestType.EMERGENCY)
    handed = Decision([Transfer("emergency", "danger to life", ticket=ticket)])
    emergency = DialogueRecorder(ScriptedDialogue([danger, handed]))
    emergency.handle(Utterance("有言其刀商言"))
    emergency.handle(Utterance("对，是的。"))
    assert outcome_after_confirm(emergency, answers) == "emergency"
