"""回电清单 and the 需回电 mark, and the caller's earlier work orders (issue 19)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hotline.draft import Caller
from hotline.settings import Settings
from tests.console.helpers import ConsoleEnv, make_env, web_client
from tests.tickets.support import make_draft
from tickets.service import TicketService


@pytest.fixture
def env(settings: Settings, service: TicketService) -> ConsoleEnv:
    return make_env(settings, service)


@pytest.fixture
def client(env: ConsoleEnv) -> Iterator[TestClient]:
    with web_client(env.app, "op") as client:
        yield client


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def listed(page: str) -> list[str]:
    return re.findall(r'<tr id="cb-([\d-]+)"', page)


def nav_count(page: str) -> str:
    match = re.search(
        r'id="nav-callbacks">回电清单(?: <span class="badge cb">(\d+)</span>)?</a>', page
    )
    assert match, "no 回电清单 link in the navigation"
    return match.group(1) or "0"


def test_callback_list_oldest_first_until_reached(env: ConsoleEnv, client: TestClient) -> None:
    first = env.service.intake(make_draft(1), callback_promised=True)
    env.service.intake(make_draft(2))  # answered by day: no promise
    second = env.service.intake(
        make_draft(3, caller=Caller(number="13800000003")), callback_promised=True
    )

    page = client.get("/callbacks")
    assert page.status_code == 200
    assert listed(page.text) == [first.number, second.number]
    assert nav_count(page.text) == "2"
    assert f'action="/tickets/{first.number}/call"' in page.text  # click to call
    assert 'id="needs-callback"' in client.get(f"/tickets/{first.number}").text
    assert 'id="pop-needs-callback"' in client.get(f"/tickets/{first.number}/pop").text

    tried = client.post(
        f"/tickets/{first.number}/callback",
        data={"csrf_token": csrf(page.text), "outcome": "unreached", "note": "无人接听",
              "from_list": "true"},
        follow_redirects=False,
    )  # fmt: skip
    assert tried.status_code == 303
    assert tried.headers["location"] == "/callbacks?msg=callback_recorded"
    page = client.get(tried.headers["location"])
    assert "已登记回电结果" in page.text
    assert listed(page.text) == [first.number, second.number]  # not reached: stays
    assert "回电：未接通" in page.text

    reached = client.post(
        f"/tickets/{first.number}/callback",
        data={"csrf_token": csrf(page.text), "outcome": "reached", "note": "已告知处理进度"},
        follow_redirects=False,
    )
    assert reached.headers["location"] == f"/tickets/{first.number}?msg=callback_recorded"
    ticket_page = client.get(reached.headers["location"]).text
    assert 'id="needs-callback"' not in ticket_page
    history = ticket_page.split('id="history"')[1]
    assert "回电：未接通" in history and "无人接听" in history
    assert "回电：已回电" in history and "已告知处理进度" in history
    assert 'id="pop-needs-callback"' not in client.get(f"/tickets/{first.number}/pop").text
    page = client.get("/callbacks").text
    assert listed(page) == [second.number]
    assert nav_count(page) == "1"
    assert nav_count(client.get("/").text) == "1"


def test_callback_of_a_ticket_held_by_someone_else_is_refused(
    env: ConsoleEnv, client: TestClient
) -> None:
    ticket = env.service.intake(make_draft(4), callback_promised=True)
    boss = env.accounts.get("boss")
    assert boss is not None
    env.service.reassign(ticket.number, "boss", boss)
    page = client.get("/callbacks").text
    assert listed(page) == []  # not the operator's to call back
    assert nav_count(page) == "0"
    refused = client.post(
        f"/tickets/{ticket.number}/callback",
        data={"csrf_token": csrf(page), "outcome": "reached"},
    )
    assert refused.status_code == 403
    assert "回电：已回电" not in refused.text
    with web_client(env.app, "boss") as lead:  # a 班长 sees and may act on any
        assert listed(lead.get("/callbacks").text) == [ticket.number]


def test_callback_outcome_needs_a_promise_and_a_known_outcome(
    env: ConsoleEnv, client: TestClient
) -> None:
    plain = env.service.intake(make_draft(5))
    token = csrf(client.get("/callbacks").text)
    refused = client.post(
        f"/tickets/{plain.number}/callback", data={"csrf_token": token, "outcome": "reached"}
    )
    assert refused.status_code == 422
    assert "没有回电承诺" in refused.text
    night = env.service.intake(make_draft(6), callback_promised=True)
    bad = client.post(
        f"/tickets/{night.number}/callback", data={"csrf_token": token, "outcome": "maybe"}
    )
    assert bad.status_code == 422
    assert listed(client.get("/callbacks").text) == [night.number]


def test_caller_history_on_the_ticket_and_the_pop(env: ConsoleEnv, client: TestClient) -> None:
    same = "13911112222"
    older = [
        env.service.intake(make_draft(10 + i, caller=Caller(number=same), summary=f"第{i}次来电"))
        for i in range(6)
    ]
    by_callback = env.service.intake(
        make_draft(20, caller=Caller(number="075566667777", callback_number=same))
    )
    env.service.intake(make_draft(21, caller=Caller(number="13700000000")))  # someone else
    current = env.service.intake(make_draft(22, caller=Caller(number=same)))
    later = env.service.intake(make_draft(23, caller=Caller(number=same)))

    for path in (f"/tickets/{current.number}", f"/tickets/{current.number}/pop"):
        section = client.get(path).text.split('id="caller-history"')[1].split("</section>")[0]
        shown = re.findall(r'href="/tickets/([\d-]+)"', section)
        expected = [by_callback.number, *[t.number for t in reversed(older)][:4]]
        assert shown == expected, path  # newest first, at most five, earlier ones only
        assert current.number not in shown and later.number not in shown
        assert "第5次来电" in section and "投诉" in section and "受理" in section

    first = client.get(f"/tickets/{older[0].number}").text
    assert "该号码此前没有工单" in first


def test_operators_look_the_knowledge_base_up_read_only(
    env: ConsoleEnv, client: TestClient
) -> None:
    from console.routers.manager import get_manager

    assert client.get("/manage/kb").status_code == 403  # editing stays with the 班长
    page = client.get("/kb", params={"q": "公积金 租房"})
    assert page.status_code == 200
    assert 'id="kb-hf-withdraw-rent"' in page.text
    assert "可以每年提取一次住房公积金支付房租" in page.text  # the answer itself
    assert 'id="kb-hf-withdraw-retire"' not in page.text  # not every word matches
    assert "/manage/kb" not in page.text and 'method="post" action="/kb' not in page.text
    assert client.post("/kb", data={"csrf_token": csrf(page.text)}).status_code == 405

    ticket = env.service.intake(make_draft(30))
    assert 'action="/kb"' in client.get(f"/tickets/{ticket.number}").text  # beside the ticket

    config = get_manager(env.app.state.console).config
    config.kb_save([], "boss", "停用", retire=["hf-withdraw-rent"])
    page = client.get("/kb", params={"q": "公积金 租房"})
    assert 'id="kb-hf-withdraw-rent"' not in page.text  # retired: not given to callers
    assert "没有找到相关条目" in page.text


def test_operator_files_a_ticket_by_hand(env: ConsoleEnv, client: TestClient) -> None:
    form = client.get("/tickets/new")
    assert form.status_code == 200 and 'id="new-ticket-form"' in form.text
    fields = {
        "csrf_token": csrf(form.text),
        "type": "complaint",
        "urgency": "urgent",
        "skill": "general",
        "topic": "路灯不亮",
        "caller_name": "赵女士",
        "callback_number": "13612345678",
        "callback_promised": "true",
        "where": "海甸岛人民大道58号",
        "what_happened": "小区门口路灯坏了一个星期",
        "caller_wants": "尽快修好",
    }
    filed = client.post("/tickets/new", data=fields, follow_redirects=False)
    assert filed.status_code == 303
    number = re.fullmatch(
        r"/tickets/([\d-]+)\?msg=ticket_filed&ticket=\1", filed.headers["location"]
    )
    assert number, filed.headers["location"]
    page = client.get(filed.headers["location"]).text
    assert f"已新建工单 {number.group(1)}" in page
    ticket = env.service.store.get(number.group(1))
    assert ticket.type.value == "complaint" and ticket.urgency.value == "urgent"
    assert ticket.caller.callback_number == "13612345678" and ticket.caller.number == ""
    assert ticket.elements.what_happened == "小区门口路灯坏了一个星期"
    assert ticket.assigned_to == "op" and ticket.history[0].actor == "op"
    assert ticket.number not in [e.ticket for e in env.service.queue.waiting(None)]  # held
    assert listed(client.get("/callbacks").text) == [ticket.number]  # promised a call back


def test_a_ticket_by_hand_needs_what_happened_and_a_known_queue(
    env: ConsoleEnv, client: TestClient
) -> None:
    token = csrf(client.get("/tickets/new").text)
    base = {"csrf_token": token, "type": "help", "urgency": "normal", "topic": "求助登记"}
    empty = client.post("/tickets/new", data={**base, "skill": "general", "what_happened": "  "})
    assert empty.status_code == 422
    assert "请填写事情经过" in empty.text and 'value="求助登记"' in empty.text  # kept
    unknown = client.post("/tickets/new", data={**base, "skill": "nope", "what_happened": "有事"})
    assert unknown.status_code == 422 and "请从列表中选择队列" in unknown.text
    assert env.service.store.count() == 0
