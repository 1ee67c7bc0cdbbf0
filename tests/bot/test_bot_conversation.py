"""Whole conversations through ``Dialogue.handle``: safety in every state, the confirm
band, follow-ups and corrections, repeat, polite close, work-order status, read-back."""

from __future__ import annotations

from bot.brain import Brain
from bot.dialogue import Dialogue
from bot.events import (
    CallStarted,
    CreateTicket,
    Decision,
    DialogueState,
    Dtmf,
    HangUp,
    Phase,
    Say,
    TicketStatus,
    Transfer,
    Utterance,
)
from hotline.draft import RequestType, Urgency


class Tickets:
    """The session's ticket lookup, as an in-memory table."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def ticket_status(self, number: str) -> TicketStatus | None:
        self.asked.append(number)
        if number == "20261122-0042":
            return TicketStatus(number, "已转交市城市管理局办理，办理时限还有三个工作日")
        return None


def _call(brain: Brain, night: bool = False, lookup: Tickets | None = None) -> Dialogue:
    d = Dialogue(brain, lookup)
    d.handle(CallStarted("13912345678", seats_available=not night))
    return d


def _said(decision: Decision) -> str:
    return "".join(a.text for a in decision.actions if isinstance(a, Say))


def _transfer(decision: Decision) -> Transfer:
    action = decision.actions[-1]
    assert isinstance(action, Transfer), decision
    return action


def test_emergency_mid_intake_keeps_what_was_taken_down(brain: Brain) -> None:
    d = _call(brain, night=True)
    assert d.handle(Utterance("我要投诉翠湖苑小区的物业")).state.startswith("ask:")
    out = d.handle(Utterance("哎呀不好了楼道里着火了好大的烟"))
    transfer = _transfer(out)  # night: still a person at once, never a callback
    assert not any(isinstance(a, CreateTicket | HangUp) for a in out.actions)
    say = out.actions[0]
    assert isinstance(say, Say) and not say.barge_in and "一一九" in say.text
    ticket = transfer.ticket
    assert ticket is not None and ticket.urgency == Urgency.EMERGENCY
    assert ticket.type == RequestType.EMERGENCY
    assert "物业" in "".join(ticket.caller_words) and "翠湖苑" in "".join(ticket.caller_words)


def test_advice_fits_the_danger(brain: Brain) -> None:
    for said, number in (
        ("我爸突然倒在地上叫不醒了", "一二零"),
        ("有个人拿着刀在小区里追人", "一一零"),
        ("路口两辆车撞了有人被压住了", "一二二"),
    ):
        out = _call(brain).handle(Utterance(said))
        assert number in _said(out), (said, _said(out))
        assert _transfer(out).ticket is not None


def test_an_uncertain_danger_signal_gets_one_question(brain: Brain) -> None:
    d = _call(brain)
    asked = d.handle(Utterance("快递什么时候运到"))  # 运到 sounds like 晕倒
    if asked.state == "emergency_check":  # the model is unsure: it asks, never guesses
        assert "生命危险" in _said(asked)
        after = d.handle(Utterance("没有没有"))
        assert after.state != "ended" or not isinstance(after.actions[-1], Transfer)
    d = _call(brain)
    d.s.pending_text = "隔壁老人好几天没出门了"
    d.s.state = DialogueState.of(Phase.EMERGENCY_CHECK)
    out = d.handle(Utterance("有，快点"))
    assert _transfer(out).ticket is not None
    assert out.actions[0].barge_in is False  # type: ignore[union-attr]


def test_confirm_band_yes_answers_and_no_asks_again_then_a_person(brain: Brain) -> None:
    d = _call(brain)
    out = d.handle(Utterance("狗的事情"))
    assert out.state == "confirm:pet-dog" and "您是想问" in _said(out)
    entry = brain.kb.get("pet-dog")
    assert entry is not None
    yes = d.handle(Utterance("对"))
    assert yes.state == "answered" and entry.answer in _said(yes)

    d = _call(brain)
    first = d.handle(Utterance("月亮上有水吗"))
    assert first.state.startswith("confirm:")
    no = d.handle(Utterance("不是"))
    assert no.state == "rephrase" and entry.answer not in _said(no)
    d.handle(Utterance("狗的事情"))  # offered again (another entry), and no again
    assert d.state.startswith("confirm:")
    second_no = d.handle(Utterance("不对"))
    assert _transfer(second_no).ticket is not None


def test_wrong_answer_is_corrected_and_not_repeated(brain: Brain) -> None:
    d = _call(brain)
    first = d.handle(Utterance("身份证到期了怎么换"))
    assert first.state == "answered"
    fixed = d.handle(Utterance("不是身份证，我问的是驾照到期怎么换"))
    licence = brain.kb.get("driving-license")
    assert licence is not None and licence.answer in _said(fixed)
    assert d.turns[-1]["kb_id"] == "driving-license"
    bare = d.handle(Utterance("不是这个"))
    assert bare.state == "rephrase" and licence.answer not in _said(bare)


def test_follow_up_is_read_against_the_last_answer(brain: Brain) -> None:
    d = _call(brain)
    d.handle(Utterance("我想领结婚证"))
    assert d.state == "answered" and d.s.last_entry == "marriage-register"
    follow = d.handle(Utterance("那要带什么材料"))
    entry = brain.kb.get("marriage-register")
    assert entry is not None and entry.answer in _said(follow)


def test_repeat_says_the_last_prompt_again_slowly(brain: Brain) -> None:
    d = _call(brain)
    answer = d.handle(Utterance("社保卡丢了怎么补"))
    again = d.handle(Utterance("没听清，再说一遍"))
    said = [a for a in again.actions if isinstance(a, Say)]
    assert [a.text for a in said] == [a.text for a in answer.actions if isinstance(a, Say)]
    assert all(a.slow for a in said) and again.state == "answered"


def test_thanks_closes_politely_in_any_state(brain: Brain) -> None:
    d = _call(brain)
    out = d.handle(Utterance("好的知道了谢谢"))
    assert isinstance(out.actions[-1], HangUp) and "再见" in _said(out)
    d = _call(brain)
    d.handle(Utterance("社保卡丢了怎么补"))
    out = d.handle(Utterance("明白了"))
    assert isinstance(out.actions[-1], HangUp)


def test_status_of_an_earlier_work_order_is_looked_up(brain: Brain) -> None:
    tickets = Tickets()
    d = _call(brain, lookup=tickets)
    ask = d.handle(Utterance("我上次反映的那个事情处理得怎么样了"))
    assert ask.state == "status:number" and "工单编号" in _said(ask)
    found = d.handle(Utterance("二零二六一一二二零零四二"))
    assert tickets.asked == ["20261122-0042"]
    assert "城市管理局" in _said(found) and found.state == "answered"
    # keyed, not found twice: a person
    d = _call(brain, lookup=tickets)
    d.handle(Utterance("查一下工单进度"))
    for key in "202611229999#":
        out = d.handle(Dtmf(key))
    assert out.state == "status:number" and "没有查到" in _said(out)
    assert _transfer(d.handle(Utterance("二零二六一一二二一二三四"))).ticket is not None


def test_read_back_is_short_and_a_fix_rereads_only_the_change(brain: Brain) -> None:
    d = _call(brain)
    answers = {
        "where:area": "北山区翠湖苑小区三号楼门口",
        "ask:when": "每天晚上十点以后",
        "ask:who_what": "楼下那家烧烤店",
        "ask:caller_wants": "希望让他们装个油烟净化器不要再熏我们了",
        "contact:name": "我姓王",
        "contact:number": "可以",
    }
    out = d.handle(Utterance("我要投诉楼下烧烤店油烟太大了天天晚上熏得我们家窗户都不敢开"))
    while out.state in answers:
        out = d.handle(Utterance(answers[out.state]))
    assert out.state == "readback", out
    said = _said(out)
    summary = said.split("我复述一下：")[1].split("；联系人")[0]
    assert len(summary) <= 64, summary
    assert "1 3 9 1 2 3 4 5 6 7 8" in said  # callback number digit by digit
    fix = d.handle(Utterance("不对，时间是每天晚上八点到十二点"))
    assert fix.state == "readback" and "时间改为" in _said(fix)
    assert "翠湖苑" not in _said(fix)  # only what changed is read again
    done = d.handle(Utterance("对"))
    assert isinstance(done.actions[-1], Transfer)
    ticket = _transfer(done).ticket
    assert ticket is not None and "八点到十二点" in ticket.elements.when


def test_two_failed_corrections_hand_over(brain: Brain) -> None:
    d = _call(brain)
    out = d.handle(Utterance("我要投诉东湖小区门口的烧烤摊天天晚上油烟很大希望取缔"))
    answers = {"ask:when": "每天晚上", "ask:who_what": "烧烤摊", "contact:name": "匿名",
               "ask:where": "东湖小区门口", "ask:caller_wants": "取缔"}  # fmt: skip
    while out.state in answers:
        out = d.handle(Utterance(answers[out.state]))
    assert out.state == "readback"
    first = d.handle(Utterance("呃我想想"))
    assert first.state == "correct"
    second = d.handle(Utterance("那个那个"))
    assert _transfer(second).ticket is not None


def test_a_vague_address_gets_exactly_the_missing_part_asked(brain: Brain) -> None:
    d = _call(brain)
    out = d.handle(Utterance("我要投诉小区旁边有人半夜施工吵得睡不着"))
    assert out.state == "where:area" and "街道" in _said(out)  # 「小区旁边」 is nowhere
    out = d.handle(Utterance("东湖区的阳光花园小区"))
    assert out.state == "where:spot" and "几号楼" in _said(out)  # the area, not the spot
    out = d.handle(Utterance("三号楼后面那个工地"))
    assert not out.state.startswith("where:")
    assert d.ticket is not None
    e = d.ticket.elements
    assert "阳光花园" in e.where and "三号楼" in e.where
    assert e.address.community == "阳光花园" and e.address.district == "东湖区"


def test_a_still_vague_address_is_asked_once_more_then_taken_as_said(brain: Brain) -> None:
    d = _call(brain, night=True)
    out = d.handle(Utterance("我要投诉楼下烧烤店油烟太大熏得窗户都不敢开"))
    assert out.state == "where:area"
    out = d.handle(Utterance("就在我家楼下"))
    assert out.state == "where:area"  # once more, still vague
    out = d.handle(Utterance("就是那一片"))
    assert not out.state.startswith("where:")  # no third time: an operator calls back
    assert d.ticket is not None and "楼下" in d.ticket.elements.where


def test_a_caller_who_does_not_know_more_is_not_pressed(brain: Brain) -> None:
    d = _call(brain)
    assert d.handle(Utterance("我要投诉小区旁边有人半夜施工")).state == "where:area"
    assert not d.handle(Utterance("我也说不清楚")).state.startswith("where:")


def test_the_place_the_caller_named_wins_over_the_gazetteer(brain: Brain) -> None:
    d = _call(brain)
    d.handle(Utterance("我要投诉锦绣华庭小区五栋的电梯老是坏"))
    assert d.ticket is not None
    e = d.ticket.elements
    assert e.where.startswith("锦绣华庭小区五栋")  # not the gazetteer's 锦绣家园
    assert e.address.community != "锦绣家园"
    d = _call(brain)
    d.handle(Utterance("万达广场门口天天有人摆摊占道"))
    assert d.ticket is not None and d.ticket.elements.address.community != "人民广场"
    assert "万达广场门口" in d.ticket.elements.where


def test_a_spoken_address_correction_updates_the_structured_fields(brain: Brain) -> None:
    d = _call(brain)
    answers = {"ask:when": "每天晚上", "ask:caller_wants": "希望他们晚上别施工",
               "contact:name": "匿名"}  # fmt: skip
    out = d.handle(Utterance("我要投诉阳光花园旁边的工地半夜施工"))
    while out.state in answers:
        out = d.handle(Utterance(answers[out.state]))
    assert out.state == "readback" and d.ticket is not None
    assert d.ticket.elements.address.district == "东湖区"
    fix = d.handle(Utterance("不对，地点是北山区翠湖苑小区五号楼"))
    assert fix.state == "readback" and "翠湖苑" in _said(fix)
    address = d.ticket.elements.address
    assert (address.district, address.community) == ("北山区", "翠湖苑")


def test_the_department_comes_from_the_matter(brain: Brain) -> None:
    for words, department in (
        ("我要投诉我家暖气一点都不热，屋里冷得穿棉袄", "市住房和城乡建设局"),
        ("投诉一下快递老是把我的件弄丢", "市市场监督管理局"),
        ("老板三个月没发工资了我要投诉", "市人力资源和社会保障局"),
    ):
        d = _call(brain)
        d.handle(Utterance(words))
        assert d.ticket is not None and d.ticket.department == department, words
