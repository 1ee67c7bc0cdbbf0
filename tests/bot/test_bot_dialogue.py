from __future__ import annotations

from bot.brain import Brain
from bot.dialogue import Dialogue
from bot.events import (
    BargeIn,
    CallEnded,
    CallStarted,
    CreateTicket,
    Decision,
    Dtmf,
    HangUp,
    Listen,
    Say,
    SilenceTimeout,
    Transfer,
    Utterance,
)
from hotline.draft import RequestType, Urgency


def _call(brain: Brain, night: bool = False) -> tuple[Dialogue, Decision]:
    d = Dialogue(brain)
    return d, d.handle(CallStarted("13912345678", seats_available=not night))


def _kinds(decision: Decision) -> list[str]:
    return [type(a).__name__ for a in decision.actions]


def _said(decision: Decision) -> str:
    return "".join(a.text for a in decision.actions if isinstance(a, Say))


def test_greeting_listens_with_hints(brain: Brain) -> None:
    _, first = _call(brain)
    assert _kinds(first) == ["Say", "Listen"]
    listen = first.actions[1]
    assert isinstance(listen, Listen) and "人工" in listen.hints
    _, night = _call(brain, night=True)
    assert "夜间" in _said(night)


def test_kb_answer_then_closing(brain: Brain) -> None:
    d, _ = _call(brain)
    answer = d.handle(Utterance("社保卡丢了怎么办", 0.9))
    entry = brain.kb.get("si-card-lost")
    assert entry is not None and entry.answer in _said(answer)
    assert answer.state == "answered"
    bye = d.handle(Utterance("没有了谢谢"))
    assert isinstance(bye.actions[-1], HangUp) and bye.state == "ended"


def test_unknown_asks_once_then_hands_over(brain: Brain) -> None:
    d, _ = _call(brain)
    first = d.handle(Utterance("火星上能种菜吗"))
    # The bot heard fine: it says it cannot answer, not that it did not hear.
    assert first.state == "rephrase" and "暂时答不了" in _said(first)
    assert "没有听清" not in _said(first)
    second = d.handle(Utterance("明年的高考政策有什么变化"))
    transfer = second.actions[-1]
    assert isinstance(transfer, Transfer) and transfer.ticket is not None
    assert "not answered" in transfer.reason
    assert transfer.ticket.caller_words == ["火星上能种菜吗", "明年的高考政策有什么变化"]


def test_low_asr_confidence_is_not_guessed(brain: Brain) -> None:
    """Unsure words that point at one answer are confirmed out loud, never answered."""
    d, _ = _call(brain)
    decision = d.handle(Utterance("社保卡丢了怎么办", confidence=0.1))
    assert decision.state.startswith("confirm:")
    assert "您是想问" in _said(decision) and d.s.kb_answers == []
    unsure = d.handle(Utterance("嗯啊那个", confidence=0.1))  # nothing to confirm: rephrase
    assert unsure.state == "rephrase" and d.s.kb_answers == []


def test_emergency_advises_and_hands_over_at_once(brain: Brain) -> None:
    d, _ = _call(brain)
    decision = d.handle(Utterance("我家着火了"))
    say = decision.actions[0]
    assert isinstance(say, Say) and not say.barge_in and "一一九" in say.text
    transfer = decision.actions[-1]
    assert isinstance(transfer, Transfer) and transfer.ticket is not None
    assert (
        transfer.ticket.urgency == Urgency.EMERGENCY
        and transfer.ticket.type == RequestType.EMERGENCY
    )
    # At night too: advice that fits the danger and a person at once, never a callback.
    d, _ = _call(brain, night=True)
    night = d.handle(Utterance("有人晕倒了快不行了"))
    assert _kinds(night) == ["Say", "Transfer"] and "一二零" in _said(night)


def test_abusive_warns_once_then_ends(brain: Brain) -> None:
    d, _ = _call(brain)
    first = d.handle(Utterance("你们都是吃干饭的"))
    assert "文明" in _said(first) and first.state == "main"
    second = d.handle(Utterance("一群废物"))
    assert isinstance(second.actions[-1], HangUp) and second.actions[-1].reason == "abusive"


def test_person_from_any_state(brain: Brain) -> None:
    d, _ = _call(brain)
    d.handle(Utterance("我要投诉楼下饭店油烟太大"))
    assert d.state == "where:area"  # 楼下 is where the caller lives, not an address
    out = d.handle(Dtmf("0"))
    transfer = out.actions[-1]
    assert isinstance(transfer, Transfer) and transfer.ticket is not None
    assert transfer.ticket.type == RequestType.COMPLAINT  # what was taken down goes along
    d, _ = _call(brain)
    d.handle(Utterance("社保卡丢了怎么办"))
    out = d.handle(Utterance("我要人工"))
    assert isinstance(out.actions[-1], Transfer)


def test_human_at_night_takes_the_matter_down(brain: Brain) -> None:
    d, _ = _call(brain, night=True)
    out = d.handle(Utterance("转人工"))
    assert "夜间" in _said(out) and out.state == "main"
    out = d.handle(Utterance("人工"))
    assert _kinds(out) == ["CreateTicket", "HangUp"]
    created = out.actions[0]
    assert isinstance(created, CreateTicket) and created.callback_promised
    # The session confirms it in the wording a manager edits, not in words of its own.
    assert created.confirmation == brain.prompts.text("ticket_created_night")
    assert "{ticket_no}" in created.confirmation


def test_complaint_dialogue_with_corrections(brain: Brain) -> None:
    d, _ = _call(brain)
    out = d.handle(Utterance("我要投诉阳光花园旁边的工地半夜施工吵得睡不着"))
    # where, when (半夜) and who (工地) were said: only what the caller wants is asked.
    assert out.state == "ask:caller_wants", _said(out)
    out = d.handle(Utterance("希望他们晚上别施工"))
    assert out.state == "contact:name" and "匿名" in _said(out)
    out = d.handle(Utterance("我姓李，请帮我保密"))
    assert out.state == "contact:number"
    out = d.handle(Utterance("可以"))
    assert out.state == "readback"
    assert "阳光花园" in _said(out) and "半夜" in _said(out)
    out = d.handle(Utterance("不对，地点是幸福里三号楼"))
    assert out.state == "readback" and "幸福里三号楼" in _said(out)
    out = d.handle(Utterance("不对"))
    assert out.state == "correct"
    out = d.handle(Utterance("时间"))
    assert out.state == "fix:when"
    out = d.handle(Utterance("每天晚上十一点以后"))
    assert out.state == "readback" and "每天晚上十一点以后" in _said(out)
    out = d.handle(Utterance("对的"))
    transfer = out.actions[-1]
    assert isinstance(transfer, Transfer) and out.state == "ended"
    ticket = transfer.ticket
    assert ticket is not None
    assert ticket.type == RequestType.COMPLAINT and ticket.topic == "噪声扰民"
    assert ticket.department == "市生态环境局"
    e = ticket.elements
    assert e.address.community == "幸福里社区" and e.address.district == "东湖区"
    assert e.when == "每天晚上十一点以后" and e.who_what == "工地" and "施工" in e.caller_wants
    assert ticket.caller_words[0] == "我要投诉阳光花园旁边的工地半夜施工吵得睡不着"
    assert ticket.handover_reason and ticket.summary.startswith("投诉")
    assert not e.missing()
    assert ticket.caller.name == "李（姓）" and ticket.caller.confidential
    assert not ticket.caller.anonymous and ticket.caller.callback_number == ticket.caller.number


def test_bare_complaint_asks_every_element_in_order(brain: Brain) -> None:
    d, _ = _call(brain, night=True)
    answers = {
        "ask:what_happened": "物业把消防通道锁了",
        "ask:where": "翠湖苑小区",
        "ask:when": "上个星期开始",
        "ask:who_what": "物业公司",
        "ask:caller_wants": "尽快打开",
        "contact:name": "我不想留名字",
    }
    out = d.handle(Utterance("我要投诉"))
    asked = []
    while out.state in answers and len(asked) < 8:
        asked.append(out.state)
        out = d.handle(Utterance(answers[out.state]))
    assert asked[0] == "ask:what_happened" and out.state == "readback"
    assert asked[-1] == "contact:name"  # declined: no number asked, anonymous
    assert len(asked) == len(set(asked)) >= 5  # each missing element asked once
    out = d.handle(Dtmf("1"))  # 1 confirms a read-back
    assert _kinds(out) == ["CreateTicket", "HangUp"]
    created = out.actions[0]
    assert isinstance(created, CreateTicket) and created.callback_promised
    e = created.ticket.elements
    assert e.address.district == "北山区" and e.when == "上个星期" and e.caller_wants == "尽快打开"
    assert e.what_happened == "物业把消防通道锁了"
    assert created.ticket.caller.anonymous and created.ticket.caller.confidential
    assert created.ticket.caller.name == ""


def test_caller_name_and_callback_number_spoken_or_keyed(brain: Brain) -> None:
    for answers in (
        [Utterance("我叫王建国"), Utterance("不是，打这个幺三九一二三四五六七八")],
        [Utterance("王先生"), Utterance("不行"), *(Dtmf(k) for k in "02188886666#")],
    ):
        d, _ = _call(brain)
        out = d.handle(Utterance("我要投诉阳光花园旁边的工地半夜施工吵得睡不着"))
        out = d.handle(Utterance("希望他们晚上别施工"))
        assert out.state == "contact:name"
        for answer in answers:
            out = d.handle(answer)
        assert out.state == "readback", _said(out)
        caller = d.ticket.caller if d.ticket else None
        assert caller is not None and not caller.anonymous and not caller.confidential
        if caller.name == "王建国":
            assert caller.callback_number == "13912345678"
        else:
            assert caller.name == "王先生" and caller.callback_number == "02188886666"


def test_anonymous_from_the_first_sentence_skips_the_contact_questions(brain: Brain) -> None:
    d, _ = _call(brain)
    d.handle(Utterance("我要匿名投诉阳光花园旁边的工地半夜施工吵得睡不着"))
    out = d.handle(Utterance("希望他们晚上别施工"))
    assert out.state == "readback"
    assert d.ticket is not None and d.ticket.caller.anonymous and d.ticket.caller.confidential


def test_report_and_help_and_praise_types(brain: Brain) -> None:
    for text, kind in (
        ("我要举报有人在河里电鱼", RequestType.REPORT),
        ("我们单元下水道堵了", RequestType.HELP),
        ("我想表扬社区的王医生", RequestType.PRAISE),
        ("我建议公交车晚上多开几班", RequestType.SUGGESTION),
    ):
        d, _ = _call(brain)
        d.handle(Utterance(text))
        assert d.ticket is not None and d.ticket.type == kind, text


def test_menu_keys(brain: Brain) -> None:
    d, _ = _call(brain)
    sub = d.handle(Dtmf("3"))
    assert sub.state == "submenu" and "社保医保请按1" in _said(sub)
    out = d.handle(Dtmf("1"))
    transfer = out.actions[-1]
    assert isinstance(transfer, Transfer) and transfer.queue == "social_insurance"
    assert transfer.ticket is not None and transfer.ticket.menu_path == ["3:专席服务", "1:社保医保"]
    d, _ = _call(brain)
    bad = d.handle(Dtmf("8"))
    assert "没有这个选项" in _said(bad)
    intake = d.handle(Dtmf("2"))
    assert intake.state == "ask:what_happened"


def test_silence_barge_in_and_hangup(brain: Brain) -> None:
    d, _ = _call(brain)
    assert d.handle(BargeIn()).actions == [Listen(hints=brain.hints())]
    assert d.handle(SilenceTimeout()).state == "main"
    second = d.handle(SilenceTimeout())
    assert "请按" in _said(second)
    third = d.handle(SilenceTimeout())
    assert isinstance(third.actions[-1], HangUp)
    # A caller hanging up mid-intake leaves a ticket with what was said.
    d, _ = _call(brain, night=True)
    d.handle(Utterance("小区门口的路灯坏了"))
    ended = d.handle(CallEnded())
    assert _kinds(ended) == ["CreateTicket"]
    created = ended.actions[0]
    assert isinstance(created, CreateTicket) and "hung up" in created.ticket.handover_reason
    assert d.handle(Utterance("还在吗")).actions == []


def test_restore_takes_a_turn_back_completely(brain: Brain) -> None:
    d, _ = _call(brain)
    before = d.snapshot()
    fragment = d.handle(Utterance("我要投诉。", 0.9))  # starts a complaint ticket
    assert d.ticket is not None and d.state.startswith("ask:") and len(d.turns) == 1
    assert _kinds(fragment)[-1] == "Listen"
    d.restore(before)
    assert d.ticket is None and d.state == "main" and d.turns == []
    # The same dialogue then takes the whole sentence as one turn, as a fresh call would.
    fresh, _ = _call(brain)
    whole = "我要投诉，我们小区旁边的工地半夜还在施工"
    assert _said(d.handle(Utterance(whole, 0.9))) == _said(fresh.handle(Utterance(whole, 0.9)))
    assert d.state == fresh.state and len(d.turns) == 1
    # A snapshot is a copy: what happens after it does not change it.
    d.restore(before)
    assert d.ticket is None
