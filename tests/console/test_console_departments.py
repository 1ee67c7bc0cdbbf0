"""承办单位 as users: a department signs, asks for more time, sends work back or replies
with files, and sees nothing but its own unit's work orders; the hotline approves 延期,
re-dispatches 退单, supervises and merges duplicates."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hotline.settings import Settings
from tests.console.helpers import ConsoleEnv, add_department_users, make_env, web_client
from tests.tickets.support import make_draft
from tickets.accounts import AccountError, Role
from tickets.service import TicketService
from tickets.ticket import Status

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def env(settings: Settings, service: TicketService) -> ConsoleEnv:
    env = make_env(settings, service)
    add_department_users(env)
    return env


@pytest.fixture
def clients(env: ConsoleEnv) -> Iterator[dict[str, TestClient]]:
    names = ("op", "boss", "cgj-user", "swj-user", "zjj-user")
    made = {name: web_client(env.app, name) for name in names}
    yield made
    for client in made.values():
        client.close()


def csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text[:500]
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def dispatched(env: ConsoleEnv, op: TestClient, i: int = 1) -> str:
    """A complaint the operator took and dispatched: 城管 leads, 水务 assists."""
    ticket = env.service.intake(make_draft(i))
    claimed = env.service.claim_next(env.accounts.get("op"))  # type: ignore[arg-type]
    assert claimed is not None and claimed.number == ticket.number
    token = csrf(op, f"/tickets/{ticket.number}")
    done = op.post(
        f"/tickets/{ticket.number}/dispatch",
        data={
            "csrf_token": token,
            "department": "市城市管理局",
            "co_departments": ["市水务局"],
            "note": "请核查",
        },
    )
    assert done.status_code == 200 and "已转办至 市城市管理局" in done.text
    return ticket.number


def test_department_signs_gets_an_extension_and_replies_with_a_photo(
    env: ConsoleEnv, clients: dict[str, TestClient]
) -> None:
    op, boss, lead, assist = (clients[n] for n in ("op", "boss", "cgj-user", "swj-user"))
    number = dispatched(env, op)
    # The unit's queue: 主办 for 城管, 协办 for 水务.
    assert number in lead.get("/dept").text and "主办" in lead.get("/dept").text
    assert "协办" in assist.get("/dept").text
    token = csrf(lead, f"/dept/tickets/{number}")
    signed = lead.post(f"/dept/tickets/{number}/accept", data={"csrf_token": token})
    assert "已签收" in signed.text
    assert env.service.store.get(number).status == Status.IN_PROGRESS
    due_before = env.service.store.get(number).due_at
    asked = lead.post(
        f"/dept/tickets/{number}/extension",
        data={"csrf_token": token, "days": "5", "reason": "需协调施工单位停工整改"},
    )
    assert "等待热线审批" in asked.text
    # The 班长's workbench lists it; an operator sees it on the ticket, only a 班长 decides.
    assert number in boss.get("/").text.split('id="pending-extensions"')[1]
    assert 'id="pending-extensions"' not in op.get("/").text
    page = op.get(f"/tickets/{number}").text
    assert "申请延期 5 个工作日" in page and "extension-approve" not in page
    refused = op.post(
        f"/tickets/{number}/extension",
        data={"csrf_token": csrf(op, "/"), "decision": "approve"},
    )
    assert refused.status_code == 403
    approved = boss.post(
        f"/tickets/{number}/extension",
        data={"csrf_token": csrf(boss, "/"), "decision": "approve", "note": "同意"},
    )
    assert "已同意延期" in approved.text
    ticket = env.service.store.get(number)
    assert ticket.extension_request is None and (ticket.due_at - due_before).days >= 5
    # The 协办 unit adds its note but cannot reply for the 主办.
    assist_token = csrf(assist, f"/dept/tickets/{number}")
    noted = assist.post(
        f"/dept/tickets/{number}/assist", data={"csrf_token": assist_token, "text": "已排查管网"}
    )
    assert "协办意见已提交" in noted.text
    stolen = assist.post(
        "/dept/reply", data={"csrf_token": assist_token, "number": number, "reply": "已办"}
    )
    assert stolen.status_code == 403 and "协办单位" in stolen.text
    replied = lead.post(
        "/dept/reply",
        data={"csrf_token": token, "number": number, "reply": "已责令工地停止夜间施工"},
        files=[("files", ("../../现场.png", PNG, "image/png"))],
    )
    assert "办理结果已反馈热线" in replied.text
    ticket = env.service.store.get(number)
    assert ticket.status == Status.REPORTED
    assert [a.filename for a in ticket.attachments] == ["现场.png"]
    # The hotline reads the reply and downloads the photo.
    page = op.get(f"/tickets/{number}").text
    assert "已责令工地停止夜间施工" in page and "现场.png" in page
    photo = op.get(f"/tickets/{number}/attachments/{ticket.attachments[0].id}")
    assert photo.content == PNG and photo.headers["content-disposition"].startswith("attachment")


def test_a_department_sees_only_its_own_work_orders(
    env: ConsoleEnv, clients: dict[str, TestClient]
) -> None:
    op, other = clients["op"], clients["zjj-user"]
    number = dispatched(env, op)
    waiting = env.service.intake(make_draft(2)).number  # not dispatched to anyone yet
    assert number not in other.get("/dept").text
    for path in (f"/dept/tickets/{number}", f"/dept/tickets/{waiting}"):
        assert other.get(path).status_code == 404
    token = csrf(other, "/dept")
    for step, data in (
        ("accept", {}),
        ("extension", {"days": "3", "reason": "x"}),
        ("return", {"reason": "x"}),
        ("assist", {"text": "x"}),
    ):
        answer = other.post(f"/dept/tickets/{number}/{step}", data={"csrf_token": token, **data})
        assert answer.status_code == 404, step
    answer = other.post("/dept/reply", data={"csrf_token": token, "number": number, "reply": "x"})
    assert answer.status_code == 404
    assert env.service.store.get(number).status == Status.DISPATCHED
    # No hotline page, no API, no event stream for a department user.
    assert other.get("/", follow_redirects=False).headers["location"] == "/dept"
    for path in ("/search", f"/tickets/{number}", "/callbacks", "/kb", "/tickets/new", "/events"):
        assert other.get(path).status_code == 403, path
    assert other.get("/api/v1/tickets").status_code == 403
    # Nor do hotline users get the department's pages.
    assert op.get("/dept").status_code == 403


def test_return_goes_back_to_the_hotline_for_re_dispatch(
    env: ConsoleEnv, clients: dict[str, TestClient]
) -> None:
    op, lead = clients["op"], clients["cgj-user"]
    number = dispatched(env, op)
    token = csrf(lead, f"/dept/tickets/{number}")
    empty = lead.post(f"/dept/tickets/{number}/return", data={"csrf_token": token, "reason": " "})
    assert empty.status_code == 409 and "请填写退单理由" in empty.text
    sent_back = lead.post(
        f"/dept/tickets/{number}/return",
        data={"csrf_token": token, "reason": "供水管网属市水务局"},
    )
    assert "已退单" in sent_back.text and number not in sent_back.text
    assert lead.get(f"/dept/tickets/{number}").status_code == 404
    page = op.get(f"/tickets/{number}").text
    assert "市城市管理局 退单：供水管网属市水务局" in page
    assert number in op.get("/").text  # still the operator's, with status 退单
    again = op.post(
        f"/tickets/{number}/dispatch",
        data={"csrf_token": csrf(op, "/"), "department": "市水务局"},
    )
    assert "已转办至 市水务局" in again.text
    ticket = env.service.store.get(number)
    assert ticket.status == Status.DISPATCHED and ticket.co_departments == []
    assert number in clients["swj-user"].get("/dept").text


def test_dispatch_takes_only_configured_departments_and_their_time_limits(
    env: ConsoleEnv, settings: Settings, clients: dict[str, TestClient]
) -> None:
    op = clients["op"]
    ticket = env.service.intake(make_draft(3))
    env.service.claim_next(env.accounts.get("op"))  # type: ignore[arg-type]
    token = csrf(op, f"/tickets/{ticket.number}")
    for field in ("department", "co_departments"):
        data = {"csrf_token": token, "department": "市城市管理局", field: "不存在的局"}
        refused = op.post(f"/tickets/{ticket.number}/dispatch", data=data)
        assert refused.status_code == 422 and "不是已配置的承办单位" in refused.text
    assert env.service.store.get(ticket.number).status == Status.INTAKE
    # A unit with its own time limit: the due date counts from dispatch.
    env.service.departments[1] = env.service.departments[1].model_copy(
        update={"time_limit_days": 1}
    )
    op.post(
        f"/tickets/{ticket.number}/dispatch",
        data={"csrf_token": token, "department": env.service.departments[1].name},
    )
    after = env.service.store.get(ticket.number)
    calendar = env.service.store.calendar
    assert after.due_at == calendar.due_at(after.history[-1].at, 1)


def test_supervision_escalates_and_reaches_the_department(
    env: ConsoleEnv, clients: dict[str, TestClient]
) -> None:
    op, boss, lead = clients["op"], clients["boss"], clients["cgj-user"]
    number = dispatched(env, op)
    refused = op.post(f"/tickets/{number}/supervise", data={"csrf_token": csrf(op, "/")})
    assert refused.status_code == 403
    boss.post(
        f"/tickets/{number}/supervise",
        data={
            "csrf_token": csrf(boss, "/"),
            "note": "群众反映强烈，请今日处理",
            "escalate": "true",
        },
    )
    ticket = env.service.store.get(number)
    assert ticket.status == Status.SUPERVISED and ticket.urgency.value == "urgent"
    page = lead.get(f"/dept/tickets/{number}").text
    assert "升级督办" in page and "群众反映强烈，请今日处理" in page


def test_merge_closes_the_duplicate_into_the_main_work_order(
    env: ConsoleEnv, clients: dict[str, TestClient]
) -> None:
    op = clients["op"]
    main = env.service.intake(make_draft(4))
    duplicate = env.service.intake(make_draft(4))  # same topic and place
    assert duplicate.duplicate_of == main.number
    account = env.accounts.get("op")
    assert account is not None
    env.service.claim_next(account)
    env.service.claim_next(account)
    token = csrf(op, f"/tickets/{duplicate.number}")
    itself = op.post(
        f"/tickets/{duplicate.number}/merge",
        data={"csrf_token": token, "into": duplicate.number},
    )
    assert itself.status_code == 422
    merged = op.post(
        f"/tickets/{duplicate.number}/merge",
        data={"csrf_token": token, "into": main.number, "note": "同一工地"},
    )
    assert f"已并案至工单 {main.number}" in merged.text
    closed = env.service.store.get(duplicate.number)
    assert closed.status == Status.CLOSED and closed.duplicate_of == main.number
    history = env.service.store.get(main.number).history
    assert history[-1].action == "merged_in" and history[-1].detail["duplicate"] == duplicate.number


def test_a_department_account_needs_a_unit_and_others_none(env: ConsoleEnv) -> None:
    with pytest.raises(AccountError):
        env.accounts.add("nounit", "long-enough-1", Role.DEPARTMENT)
    with pytest.raises(AccountError):
        env.accounts.add("opunit", "long-enough-1", Role.OPERATOR, department="cgj")
