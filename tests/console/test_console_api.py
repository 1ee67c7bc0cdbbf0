"""The REST API: authentication, roles, CSRF, the workflow, bad input, audit history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from hotline.draft import EVIDENCE_FIELDS
from hotline.settings import Settings
from tests.console.helpers import PASSWORD, ConsoleEnv, make_env
from tests.tickets.support import make_draft
from tickets.models import SessionRow
from tickets.service import TicketService


@pytest.fixture
def env(settings: Settings, service: TicketService) -> ConsoleEnv:
    return make_env(settings, service)


@pytest.fixture
def client(env: ConsoleEnv) -> Iterator[TestClient]:
    with TestClient(env.app) as client:
        yield client


def draft_body(i: int = 1) -> dict[str, object]:
    """A draft as a person files it: no call evidence, which only the call controller's
    service identity may send (see test_console_security_tickets)."""
    typed = make_draft(i).model_dump(mode="json", exclude=set(EVIDENCE_FIELDS))
    typed["caller"] = {"name": "王先生", "callback_number": "13907551234"}
    return {"draft": typed, "skill": "general"}


def test_requires_login_and_rejects_bad_tokens(client: TestClient) -> None:
    assert client.get("/api/v1/tickets").status_code == 401
    bad = {"Authorization": "Bearer nonsense"}
    assert client.get("/api/v1/tickets", headers=bad).status_code == 401
    wrong = client.post("/api/v1/auth/token", json={"username": "op", "password": "nope"})
    assert wrong.status_code == 401
    ghost = client.post("/api/v1/auth/token", json={"username": "ghost", "password": "x"})
    assert ghost.status_code == 401


def test_the_whole_workflow_through_the_api(env: ConsoleEnv, client: TestClient) -> None:
    op, boss = env.token(client, "op"), env.token(client, "boss")
    created = client.post("/api/v1/tickets", json=draft_body(), headers=op)
    assert created.status_code == 201, created.text
    number = created.json()["number"]
    claimed = client.post("/api/v1/queue/claim", headers=op)
    assert claimed.status_code == 200 and claimed.json()["number"] == number
    assert client.post("/api/v1/queue/claim", headers=op).status_code == 204
    queue = client.get("/api/v1/queue", headers=op).json()
    assert [i["ticket"] for i in queue["mine"]] == [number] and queue["waiting"] == []
    patched = client.patch(
        f"/api/v1/tickets/{number}", headers=op, json={"topic": "建筑噪音", "caller_name": "王建国"}
    )
    assert patched.json()["caller"]["name"] == "王建国"
    steps = [
        ("dispatch", {"department": "市生态环境局", "note": "30 分钟内转办"}, op),
        ("accept", {"note": "签收"}, op),
        ("supervise", {"note": "加快"}, boss),
        ("reply", {"reply": "已停工"}, op),
        ("follow-up", {"result": "市民确认"}, op),
        ("close", {"satisfaction": "satisfied"}, op),
    ]
    for step, body, who in steps:
        response = client.post(f"/api/v1/tickets/{number}/{step}", json=body, headers=who)
        assert response.status_code == 200, (step, response.text)
    ticket = client.get(f"/api/v1/tickets/{number}", headers=op).json()
    assert ticket["status"] == "closed" and ticket["satisfaction"] == "satisfied"
    history = client.get(f"/api/v1/tickets/{number}/history", headers=op).json()
    assert [(h["actor"], h["action"]) for h in history] == [
        ("op", "created"),
        ("op", "assigned"),
        ("op", "edited"),
        ("op", "dispatch"),
        ("op", "accept"),
        ("boss", "supervise"),
        ("op", "reply"),
        ("op", "follow_up"),
        ("op", "close"),
    ]
    assert env.service.queue.entries() == []
    found = client.get("/api/v1/tickets", params={"text": "海甸", "status": "closed"}, headers=op)
    assert [t["number"] for t in found.json()] == [number]


def test_roles_are_enforced(env: ConsoleEnv, client: TestClient) -> None:
    op, boss, root = (env.token(client, u) for u in ("op", "boss", "root"))
    number = env.service.intake(make_draft()).number
    env.service.store.dispatch(number, "市水务局", "op")
    assert (
        client.post(f"/api/v1/tickets/{number}/supervise", json={}, headers=op).status_code == 403
    )
    assert (
        client.post(f"/api/v1/tickets/{number}/supervise", json={}, headers=boss).status_code == 200
    )
    new_user = {"username": "newbie", "password": "long-enough-1", "role": "operator"}
    assert client.post("/api/v1/users", json=new_user, headers=boss).status_code == 403
    assert client.post("/api/v1/users", json=new_user, headers=root).status_code == 201
    assert client.post("/api/v1/users", json=new_user, headers=root).status_code == 422
    assert "newbie" in [u["username"] for u in client.get("/api/v1/users", headers=root).json()]
    stored = (
        env.accounts.store.engine.connect()
        .exec_driver_sql("SELECT password_hash FROM users WHERE username='newbie'")
        .scalar_one()
    )
    assert stored.startswith("$argon2id$") and "long-enough-1" not in stored


def test_invalid_steps_and_unknown_tickets(env: ConsoleEnv, client: TestClient) -> None:
    op = env.token(client, "op")
    number = env.service.intake(make_draft()).number
    conflict = client.post(f"/api/v1/tickets/{number}/reply", json={"reply": "x"}, headers=op)
    assert conflict.status_code == 409 and "不能" in conflict.json()["detail"]
    assert client.get("/api/v1/tickets/20000101-0001", headers=op).status_code == 404
    assert client.get("/api/v1/tickets/not-a-number", headers=op).status_code == 422
    empty = client.post(f"/api/v1/tickets/{number}/dispatch", json={"department": ""}, headers=op)
    assert empty.status_code == 422
    assert client.post(f"/api/v1/tickets/{number}/call", headers=op).status_code == 200
    assert env.dialer.calls == [("8001", "13907551234", number)]


def test_malformed_and_oversized_requests(env: ConsoleEnv, client: TestClient) -> None:
    op = env.token(client, "op")
    broken = client.post(
        "/api/v1/tickets", content=b"{not json", headers={**op, "Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    wrong_type = client.post("/api/v1/tickets", json={"draft": {"type": "weather"}}, headers=op)
    assert wrong_type.status_code == 422
    nul = draft_body()
    nul["draft"]["summary"] = "a\x00b"  # type: ignore[index]
    assert client.post("/api/v1/tickets", json=nul, headers=op).status_code == 422
    huge = draft_body()
    huge["draft"]["summary"] = "吵" * 1_000_000  # type: ignore[index]
    assert client.post("/api/v1/tickets", json=huge, headers=op).status_code == 413
    assert (
        client.get("/api/v1/tickets", params={"date_from": "2026-13-40"}, headers=op).status_code
        == 422
    )
    assert client.get("/api/v1/tickets", params={"limit": 10_000}, headers=op).status_code == 422
    assert env.service.store.count() == 0  # nothing half-created


def test_cookie_sessions_need_csrf_and_expire(env: ConsoleEnv, client: TestClient) -> None:
    login_page = client.get("/login")
    csrf_login = login_page.cookies.get("hotline_login_csrf") or client.cookies.get(
        "hotline_login_csrf"
    )
    assert csrf_login
    bad = client.post(
        "/login",
        data={"username": "op", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert bad.status_code == 303 and "/login" in bad.headers["location"]
    ok = client.post(
        "/login",
        data={"username": "op", "password": PASSWORD, "csrf_token": csrf_login},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert "httponly" in ok.headers["set-cookie"].lower()
    number = env.service.intake(make_draft()).number
    # The browser's cookie alone cannot change anything: a forged cross-site form fails.
    forged = client.post(f"/api/v1/tickets/{number}/dispatch", json={"department": "市水务局"})
    assert forged.status_code == 403
    page_forged = client.post(f"/tickets/{number}/dispatch", data={"department": "市水务局"})
    assert page_forged.status_code == 403
    login = env.accounts.session(client.cookies["hotline_session"])
    assert login is not None
    allowed = client.post(
        f"/api/v1/tickets/{number}/dispatch",
        json={"department": "市水务局"},
        headers={"X-CSRF-Token": login.csrf_token},
    )
    assert allowed.status_code == 200
    assert client.get("/api/v1/tickets").status_code == 200
    # Expire the session: the next request is refused and the page asks for a login.
    with env.accounts.store.writing() as session:
        session.execute(
            update(SessionRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert client.get("/api/v1/tickets").status_code == 401
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert env.accounts.purge_expired() >= 1


def test_openapi_documents_the_operations(env: ConsoleEnv, client: TestClient) -> None:
    admin = env.token(client, "root")  # the spec and the docs are for admins (issue 14)
    spec = client.get("/openapi.json", headers=admin).json()
    paths = spec["paths"]
    for path in (
        "/api/v1/tickets",
        "/api/v1/tickets/{number}/dispatch",
        "/api/v1/tickets/{number}/close",
        "/api/v1/queue/claim",
        "/api/v1/auth/token",
    ):
        assert path in paths
    assert not any(p.startswith("/tickets") for p in paths)  # pages stay out of the API docs
    assert client.get("/openapi.json").status_code == 401
