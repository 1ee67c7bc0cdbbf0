"""Dashboard figures against a seeded data set with known answers (SQLite and PostgreSQL);
call records from JSON; hot-topic clusters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hotline.draft import Address, FiveElements, RequestType
from hotline.settings import Settings
from manage.calls import CallRecordError, import_records, record_call
from manage.config import ConfigStore
from manage.figures import Figures, period_bounds
from manage.hot import hot_topics
from tests.tickets.support import make_draft
from tickets.store import TicketStore
from tickets.ticket import Satisfaction

TZ = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 3, 2, tzinfo=TZ)  # a Monday


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hour, minutes=minute)


def kb_turn(kb_id: str, text: str = "社保卡丢了怎么办") -> dict[str, object]:
    return {
        "input": "speech",
        "text": text,
        "intent": "consultation",
        "kb_id": kb_id,
        "kb_confidence": 0.9,
        "answered": True,
        "unanswered": False,
    }


HUMAN = {
    "input": "speech",
    "text": "我要人工",
    "intent": "human",
    "kb_id": "",
    "answered": False,
    "unanswered": False,
}


def call(call_id: str, start: datetime, **fields: object) -> dict[str, object]:
    return {
        "call_id": call_id,
        "caller": "13812345678",
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(minutes=2)).isoformat(),
        "answered_ms": 2000.0,
        **fields,
    }


def at_clock(store: TicketStore, moment: datetime) -> None:
    store.clock = lambda: moment.astimezone(UTC)


def seed(store: TicketStore, settings: Settings) -> dict[str, str]:
    ConfigStore(store, settings).seed()  # the sample KB: topics of answered entries
    at_clock(store, at(8, 41))
    t1 = store.create_from_draft(make_draft(1, type=RequestType.HUMAN, topic="社会保障卡"))
    at_clock(store, at(9, 6))
    t2 = store.create_from_draft(make_draft(2, topic="夜间施工噪音"))
    at_clock(store, at(9, 7))
    store.assign(t2.number, "op", "8001", "op")  # 60 s after intake
    store.dispatch(t2.number, "市城市管理局", "op")
    at_clock(store, at(10))
    store.close(t1.number, Satisfaction.SATISFIED, "op")  # answered on the call, not dispatched
    at_clock(store, at(10, days=-40))  # long overdue, still open
    store.create_from_draft(make_draft(3, type=RequestType.COMPLAINT, topic="路灯不亮"))
    store.clock = lambda: datetime.now(UTC)
    records = [
        call(
            "c1",
            at(8, 10),
            outcome="answered",
            satisfaction=1,
            answered_ms=3000,
            turns=[kb_turn("si-card-lost")],
        ),
        call(
            "c2",
            at(8, 40),
            outcome="transfer",
            ticket=t1.number,
            seat_wait_s=20,
            turns=[kb_turn("si-card-lost"), HUMAN],
        ),
        call(
            "c3",
            at(9, 5),
            outcome="transfer",
            ticket=t2.number,
            seat_wait_s=40,
            answered_ms=20000,
            turns=[
                {"input": "speech", "text": "驾照怎么换", "intent": "unknown", "unanswered": True},
                HUMAN,
            ],
        ),
        call("c4", at(9, 30), outcome="abandoned", answered_ms=1000),
        call(
            "c5",
            at(14),
            outcome="answered",
            satisfaction=3,
            turns=[kb_turn("si-card-lost", "社保卡掉了")],
        ),
        call("c6", at(23, 30, days=-1), outcome="answered", turns=[kb_turn("si-card-lost")]),
    ]
    for record in records:
        assert record_call(store, record, settings.tickets.timezone)
    assert not record_call(store, records[0], settings.tickets.timezone)  # idempotent
    return {"t1": t1.number, "t2": t2.number}


def test_figures_match_the_seeded_answers(store: TicketStore, settings: Settings) -> None:
    seed(store, settings)
    start, end = period_bounds("day", DAY.date(), "Asia/Shanghai")
    f = Figures(store, "Asia/Shanghai").compute(start, end, now=at(18))
    assert f.calls == 5
    assert [(h, n) for h, n in enumerate(f.per_hour) if n] == [(8, 2), (9, 2), (14, 1)]
    assert f.handled == {"bot": 2, "person": 2, "abandoned": 1}
    assert f.connect_rate_15s == 0.8
    assert f.direct_answer_rate == 0.75  # c1, c5 by the bot, c2's ticket closed undispatched
    assert f.satisfaction == {1: 1, 3: 1} and f.satisfaction_rate == 0.5
    assert f.avg_seat_wait_s == 30.0
    assert f.avg_ticket_wait_s == 60.0
    assert f.tickets_created == 2 and f.tickets_closed == 1 and f.on_time_rate == 1.0
    assert f.follow_up_satisfaction_rate == 1.0
    assert f.tickets_overdue == 1
    assert dict(f.by_type) == {"consultation": 2, "human": 1, "complaint": 1, "unknown": 1}
    assert dict(f.by_district) == {"美兰区": 2, "（未知）": 3}
    # c1, c5: the answered entry's topic; c2: its ticket's topic
    assert f.by_topic == [("社会保障卡", 3), ("夜间施工噪音", 1), ("（未分类）", 1)]
    assert f.kb_hits == [("si-card-lost", 3)]
    assert f.unanswered == [("驾照怎么换", 1)]
    assert f.followed_by_human == [("si-card-lost", 1)]
    csv_text = f.csv()
    assert "summary,direct_answer_rate,0.75" in csv_text
    assert "calls_per_hour,08,2" in csv_text and "unanswered,驾照怎么换,1" in csv_text

    week = Figures(store, "Asia/Shanghai").compute(
        *period_bounds("week", DAY.date(), "Asia/Shanghai"), now=at(18)
    )
    assert week.calls == 5  # c6 was on Sunday, the week before
    month = Figures(store, "Asia/Shanghai").compute(
        *period_bounds("month", DAY.date(), "Asia/Shanghai"), now=at(18)
    )
    assert month.calls == 6 and month.per_day == {"2026-03-01": 1, "2026-03-02": 5}


def test_call_records_import_and_bad_records(
    store: TicketStore, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "calls" / "2026-03-02"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text(
        json.dumps(call("x1", at(10), outcome="answered", turns=[kb_turn("si-card-lost")]))
    )
    (folder / "b.json").write_text("{not json")
    (folder / "c.json").write_text(json.dumps({"call_id": "x3"}))
    result = import_records(store, tmp_path / "calls")
    assert result.imported == 1 and len(result.errors) == 2
    assert any("started_at" in e for e in result.errors)
    again = import_records(store, tmp_path / "calls")
    assert again.imported == 0 and again.known == 1
    try:
        record_call(store, {"call_id": "y", "started_at": "yesterday"})
    except CallRecordError as exc:
        assert "started_at" in str(exc)
    else:
        raise AssertionError("a bad time was accepted")


def test_hot_topics_flag_growing_clusters(store: TicketStore) -> None:
    now = at(20)
    lane = FiveElements(
        where="翠湖苑小区消防通道",
        what_happened="车辆堵塞消防通道",
        address=Address(district="北山区", street="北山街道", community="翠湖苑"),
    )
    plan = [
        (-40, lane, "消防通道占用"),
        (-5, lane, "消防通道占用"),
        (-3, lane, "消防通道占用"),
        (-1, lane, "消防通道占用"),
    ]
    noise = FiveElements(where="海甸五西路28号工地", what_happened="夜间施工")
    plan += [
        (-30, noise, "夜间施工噪音"),
        (-29, noise, "夜间施工噪音"),
        (-28, noise.model_copy(update={"where": "海甸五西路28号工地旁边"}), "夜间施工噪音"),
    ]
    plan += [(-2, lane, "路灯不亮")]  # same place, another topic: not in the cluster
    for i, (hours, elements, topic) in enumerate(plan):
        at_clock(store, now + timedelta(hours=hours))
        store.create_from_draft(make_draft(100 + i, topic=topic, elements=elements))
    clusters = hot_topics(store, now=now.astimezone(UTC), days=7, min_size=3)
    assert [(c.topic, c.count, c.recent, c.previous, c.growing) for c in clusters] == [
        ("消防通道占用", 4, 3, 1, True),
        ("夜间施工噪音", 3, 0, 3, False),
    ]
    assert clusters[0].place == "北山区北山街道翠湖苑"


def test_a_real_dialogue_record_reaches_the_kb_figures(
    store: TicketStore, settings: Settings
) -> None:
    """The controller's path: Dialogue.turns -> CallRecord -> record_call -> KB figures."""
    from bot.brain import BotPaths, Brain
    from bot.dialogue import Dialogue
    from bot.events import CallStarted, Utterance
    from ivr.journal import CallRecord

    dialogue = Dialogue(Brain.load(BotPaths(semantic=False)))
    dialogue.handle(CallStarted("13800000000"))
    dialogue.handle(Utterance("社保卡丢了怎么办", 0.9))
    dialogue.handle(Utterance("转人工", 0.9))
    record = CallRecord(
        call_id="live-1",
        caller="13800000000",
        started_at=datetime.now(UTC).isoformat(),
        outcome="transfer",
        turns=list(dialogue.turns),
    )  # type: ignore[arg-type]
    assert record_call(store, record, "Asia/Shanghai")
    now = datetime.now(UTC)
    f = Figures(store).compute(now - timedelta(hours=1), now + timedelta(hours=1))
    assert f.kb_hits == [("si-card-lost", 1)] and f.followed_by_human == [("si-card-lost", 1)]
    assert f.handled == {"person": 1}


def test_prompts_render_in_the_background(tmp_path: Path) -> None:
    import shutil

    import pytest

    from manage.render import RenderJob, missing_texts
    from voice.prompts import EspeakEngine, PromptLibrary

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    library = PromptLibrary(tmp_path / "rec", tmp_path / "cache", [EspeakEngine()])
    texts = ["您好", "请稍候", "再见"]
    job = RenderJob(library)
    progress = job.start(texts)
    assert progress.total == 3
    job.wait(60)
    assert (progress.done, progress.rendered, progress.running) == (3, 3, False)
    assert missing_texts(library, [*texts, "新的提示"]) == ["新的提示"]
    assert job.start(texts).total == 0  # nothing changed: nothing to render


def test_on_time_and_dispatch_rule_rates(store: TicketStore) -> None:
    def make(i: int, moment: datetime, **changes: object) -> str:
        at_clock(store, moment)
        return store.create_from_draft(make_draft(i, **changes)).number

    consultation = {"type": RequestType.CONSULTATION}
    in_time = make(1, at(9))
    late = make(2, at(9))
    waiting_late = make(3, at(11))  # still in 受理 at 18:00
    waiting_now = make(4, at(17, 50))  # 10 minutes old at 18:00: not decided yet
    answered = make(5, at(12), **consultation)
    old = make(6, at(9, days=-10), **consultation)  # due 2 working days later
    at_clock(store, at(9, 20))
    store.dispatch(in_time, "市城市管理局", "op")
    at_clock(store, at(9, 45))
    store.dispatch(late, "市城市管理局", "op")
    at_clock(store, at(12, 5))
    store.close(answered, Satisfaction.SATISFIED, "op")  # on time, never dispatched
    at_clock(store, at(15))
    store.close(old, Satisfaction.SATISFIED, "op")  # days late
    at_clock(store, at(18))

    f = Figures(store, "Asia/Shanghai").compute(*period_bounds("day", DAY.date(), "Asia/Shanghai"))
    assert f.tickets_closed == 2 and f.on_time_rate == 0.5
    # in_time kept the rule; late and waiting_late broke it; answered needed no dispatch.
    assert f.dispatch_late == 2
    assert f.dispatch_on_time_rate == 0.3333
    csv_text = f.csv()
    assert "summary,on_time_rate,0.5\n" in csv_text
    assert "summary,dispatch_on_time_rate,0.3333\n" in csv_text
    assert "summary,dispatch_late,2\n" in csv_text
    assert waiting_now and waiting_late

    # An hour later the last one is late too.
    at_clock(store, at(19))
    f = Figures(store, "Asia/Shanghai").compute(*period_bounds("day", DAY.date(), "Asia/Shanghai"))
    assert (f.dispatch_late, f.dispatch_on_time_rate) == (3, 0.25)


def test_a_call_answered_and_then_hung_up_counts_as_handled_by_the_bot() -> None:
    """The session's outcome ``answered`` (the caller hung up after hearing the answer) is
    the bot's, even in a record without the bot's turns (an older controller's)."""
    from manage.calls import handled_by

    assert handled_by("answered", [], "") == "bot"
    assert handled_by("abandoned", [], "") == "abandoned"
    assert handled_by("abandoned", [{"answered": True}], "") == "bot"
    assert handled_by("answered", [], "20261129-0001") == "person"  # a work order: people
