"""Server-rendered pages through HTTP: login, workbench, ticket, actions, search, SSE."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from hotline.draft import TranscriptLine, TranscriptWord
from hotline.settings import Settings
from tests.console.helpers import PASSWORD, ConsoleEnv, make_env
from tests.tickets.support import make_draft
from tickets.service import TicketService


@pytest.fixture
def env(settings: Settings, service: TicketService) -> ConsoleEnv:
    return make_env(settings, service)


@pytest.fixture
def client(env: ConsoleEnv) -> Iterator[TestClient]:
    with TestClient(env.app) as client:
        client.get("/login")
        client.post(
            "/login",
            data={
                "username": "op",
                "password": PASSWORD,
                "csrf_token": client.cookies["hotline_login_csrf"],
            },
        )
        yield client


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_login_page_and_wrong_password(env: ConsoleEnv) -> None:
    with TestClient(env.app) as anonymous:
        page = anonymous.get("/login")
        assert "坐席登录" in page.text
        wrong = anonymous.post(
            "/login",
            data={
                "username": "op",
                "password": "bad",
                "csrf_token": anonymous.cookies["hotline_login_csrf"],
            },
        )
        assert "用户名或密码错误" in wrong.text
        assert anonymous.get("/search", follow_redirects=False).status_code == 303


def test_workbench_shows_queues_and_claims(env: ConsoleEnv, client: TestClient) -> None:
    night = env.service.intake(make_draft(1), callback_promised=True)
    urgent = env.service.intake(make_draft(2, urgency="urgent"))
    page = client.get("/")
    assert "共享队列" in page.text and "我的工单" in page.text
    assert page.text.index(urgent.number) < page.text.index(night.number)  # urgent first
    assert "需回电" in page.text
    claimed = client.post("/claim", data={"csrf_token": csrf(page.text)}, follow_redirects=False)
    assert claimed.headers["location"] == f"/tickets/{urgent.number}"
    fragment = client.get("/fragments/queues").text
    assert urgent.number in fragment.split("共享队列")[0]  # now in "my tickets"


def test_ticket_page_marks_doubtful_words_and_runs_the_workflow(
    env: ConsoleEnv, client: TestClient
) -> None:
    draft = make_draft(
        3,
        transcript=[
            TranscriptLine(
                speaker="caller",
                text="海甸五西路工地",
                confidence=0.5,
                words=[
                    TranscriptWord(text="海甸", confidence=0.3),
                    TranscriptWord(text="五西路工地"),
                ],
            ),
            TranscriptLine(speaker="bot", text="请问您要反映什么问题", confidence=1.0),
        ],
    )
    number = env.service.intake(draft).number
    page = client.get(f"/tickets/{number}")
    assert "<mark" in page.text and ">海甸</mark>" in page.text
    assert "五西路工地</mark>" not in page.text
    assert "30 分钟内送达承办单位" in page.text  # Haikou's dispatch rule, while in intake
    token = csrf(page.text)
    edit = client.post(
        f"/tickets/{number}/edit",
        data={
            "csrf_token": token,
            "type": "complaint",
            "urgency": "normal",
            "skill": "general",
            "topic": "施工噪音",
            "caller_name": "王建国",
            "where": "美兰区海甸五西路3号",
            "what_happened": "夜间施工",
        },
    )
    assert "已保存" in edit.text
    dispatched = client.post(
        f"/tickets/{number}/dispatch", data={"csrf_token": token, "department": "市生态环境局"}
    )
    assert "已转办至 市生态环境局" in dispatched.text
    assert "30 分钟内送达承办单位" not in dispatched.text
    client.post(f"/tickets/{number}/reply", data={"csrf_token": token, "reply": "已停工"})
    called = client.post(f"/tickets/{number}/call", data={"csrf_token": token})
    assert "正在呼叫" in called.text
    assert env.dialer.calls[-1] == ("8001", "13907551234", number)
    client.post(f"/tickets/{number}/follow-up", data={"csrf_token": token, "result": "满意"})
    closed = client.post(
        f"/tickets/{number}/close", data={"csrf_token": token, "satisfaction": "satisfied"}
    )
    assert "工单已办结" in closed.text
    ticket = env.service.store.get(number)
    assert ticket.status == "closed" and ticket.caller.name == "王建国"
    assert [h.action for h in ticket.history] == [
        "created",
        "edited",
        "dispatch",
        "reply",
        "call_placed",
        "follow_up",
        "close",
    ]
    refused = client.post(
        f"/tickets/{number}/dispatch", data={"csrf_token": token, "department": "市水务局"}
    )
    assert "不能转办" in refused.text


def test_search_page(env: ConsoleEnv, client: TestClient) -> None:
    number = env.service.intake(make_draft(5)).number
    assert number in client.get("/search", params={"phone": "7551234"}).text
    assert number in client.get("/search", params={"text": "海甸五西路5号"}).text
    assert number in client.get("/search", params={"number": number}).text
    bad = client.get("/search", params={"date_from": "2026-99-99"})
    assert "日期格式" in bad.text
    assert "没有符合条件" in client.get("/search", params={"text": "不存在的地方"}).text
    assert client.get("/tickets/20000101-0001").status_code == 404


def test_recording_is_served_only_from_the_recordings_folder(
    env: ConsoleEnv, client: TestClient, settings: Settings
) -> None:
    # Where the controller writes call c-1's recording; the stored path is not used.
    wav = settings.data_dir / "recordings" / "2026-11-22" / "c_1.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF....WAVE")
    started = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    good = env.service.intake(make_draft(1, call_id="c-1", started_at=started)).number
    evil = env.service.intake(make_draft(2, recording_path="/etc/passwd")).number
    assert client.get(f"/tickets/{good}/recording").content == b"RIFF....WAVE"
    assert client.get(f"/tickets/{evil}/recording").status_code == 404


def test_login_never_redirects_to_another_site() -> None:
    from console.routers.operator import _safe_next

    assert _safe_next("/tickets/20261122-0001") == "/tickets/20261122-0001"
    for evil in ("https://evil.example", "//evil.example", "/\\evil.example", "evil", ""):
        assert _safe_next(evil) == "/"


def test_the_close_form_makes_the_operator_ask_about_satisfaction(
    env: ConsoleEnv, client: TestClient
) -> None:
    """满意 pre-selected recorded a satisfied citizen whenever nobody asked: the rate the
    city is judged on was inflated. Nothing is chosen until the operator chooses."""
    number = env.service.intake(make_draft(7)).number
    env.service.store.dispatch(number, "市城市管理局", "op")
    env.service.store.record_reply(number, "已处理", "dept")
    page = client.get(f"/tickets/{number}").text
    form = page.split('id="close-form"')[1].split("</form>")[0]
    assert '<option value="" selected disabled>' in form
    assert form.count("selected") == 1
    refused = client.post(f"/tickets/{number}/close", data={"csrf_token": csrf(page)})
    assert refused.status_code == 422
    assert env.service.store.get(number).is_open


def test_the_history_column_reads_in_chinese(env: ConsoleEnv, client: TestClient) -> None:
    """It showed the code's keys: ``changes: {'caller.name': ['', '张先生']}``,
    ``satisfaction: satisfied``, ``call_id: ...``."""
    from tickets.ticket import Satisfaction, TicketEdit

    number = env.service.intake(make_draft(8, call_id="call-history-1")).number
    store = env.service.store
    store.edit(number, TicketEdit(caller_name="张先生", urgency="urgent"), "op")
    store.dispatch(number, "市城市管理局", "op", "请尽快处理")
    store.record_reply(number, "已处理", "dept")
    store.close(number, Satisfaction.SATISFIED, "op")
    page = client.get(f"/tickets/{number}").text
    history = page.split('id="history"')[1].split("</table>")[0]
    assert "修改 姓名：王先生 → 张先生" in history
    assert "修改 紧急程度：" in history and "urgent" not in history
    assert "承办单位：市城市管理局" in history and "说明：请尽快处理" in history
    assert "满意度：满意" in history and "satisfied" not in history
    assert "call-history-1" not in history and "changes" not in history
    assert not re.search(r"[a-z_]{4,}:", history)  # no code key left anywhere
