"""Issue 14 (1 and 4): recordings by call id only, call evidence only from the controller,
tickets worked only by whoever holds them, screen pops only to one's own seat, dispatch
only to configured departments. Each test is an attack that worked before the fix."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hotline.settings import Settings
from ivr.recorder import recording_path
from tests.console.helpers import PASSWORD, ConsoleEnv, make_env, web_client
from tests.tickets.support import make_draft
from tickets.accounts import Role
from tickets.service import TicketService
from tickets.ticket import Status

STARTED = datetime(2026, 3, 14, 23, 59, 30, tzinfo=UTC)  # just before midnight UTC


@pytest.fixture
def env(settings: Settings, service: TicketService) -> ConsoleEnv:
    env = make_env(settings, service)
    env.accounts.add("op2", PASSWORD, Role.OPERATOR, display_name="二号", extension="8004")
    env.accounts.add(
        "social", PASSWORD, Role.OPERATOR, extension="8005", skills=["social_insurance"]
    )
    return env


@pytest.fixture
def controller(env: ConsoleEnv) -> str:
    """The call controller's service identity, as an administrator would create it."""
    env.accounts.add("ctl", PASSWORD, Role.SERVICE)
    return "ctl"


@pytest.fixture
def client(env: ConsoleEnv) -> Iterator[TestClient]:
    with TestClient(env.app) as client:
        yield client


def csrf_of(env: ConsoleEnv, browser: TestClient) -> str:
    login = env.accounts.session(browser.cookies["hotline_session"])
    assert login is not None
    return login.csrf_token


def held_by_op2(env: ConsoleEnv, i: int = 1) -> str:
    """A ticket whose call the controller connected to op2's seat (8004)."""
    number = env.service.intake(make_draft(i)).number
    env.service.screen_pop(number, "8004")
    assert env.service.store.get(number).assigned_to == "op2"
    return number


def controller_file(data_dir: Path, call_id: str, started: datetime) -> Path:
    """Where the call controller writes this call's recording (its own code decides)."""
    path = recording_path(data_dir, started.isoformat()[:10], call_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ---- 1. recordings ----


def test_recordings_are_found_by_call_id_where_the_controller_writes_them(
    env: ConsoleEnv, client: TestClient, settings: Settings
) -> None:
    call_id = "SIP/call-7@10.0.0.1:5060"
    wav = controller_file(settings.data_dir, call_id, STARTED)
    wav.write_bytes(b"RIFF-call-7-WAVE")
    number = env.service.intake(make_draft(1, call_id=call_id, started_at=STARTED)).number
    browser = web_client(env.app, "op")
    served = browser.get(f"/tickets/{number}/recording")
    assert served.status_code == 200 and served.content == b"RIFF-call-7-WAVE"
    assert served.headers["content-type"] == "audio/wav"
    assert f'src="/tickets/{number}/recording"' in browser.get(f"/tickets/{number}").text
    # A ticket that does not know when its call started: the day folders are searched.
    other = controller_file(settings.data_dir, "call-no-start", datetime(2026, 1, 2, tzinfo=UTC))
    other.write_bytes(b"RIFF-no-start-WAVE")
    unknown = env.service.intake(make_draft(2, call_id="call-no-start")).number
    assert browser.get(f"/tickets/{unknown}/recording").content == b"RIFF-no-start-WAVE"


def test_a_stored_recording_path_never_reaches_the_file_system(
    env: ConsoleEnv, client: TestClient, settings: Settings
) -> None:
    data_dir = settings.data_dir
    database = data_dir / "tickets.db"  # the SQLite record itself on that backend
    if not database.exists():
        database.write_bytes(b"SQLite format 3\x00 stand-in")
    (data_dir / "secret.wav").write_bytes(b"RIFF-not-a-recording")
    someone_elses = controller_file(data_dir, "call-of-someone-else", STARTED)
    someone_elses.write_bytes(b"RIFF-someone-else-WAVE")
    attacks = [
        "tickets.db",
        str(database),
        "recordings/../tickets.db",
        "../../etc/passwd",
        "/etc/passwd",
        "secret.wav",
        str(someone_elses),  # another call's recording, under a ticket of a different call
    ]
    browser = web_client(env.app, "op")
    for i, stored in enumerate(attacks):
        # Stored as an old API client or a forged draft could have stored it.
        number = env.service.intake(make_draft(i, recording_path=stored)).number
        response = browser.get(f"/tickets/{number}/recording")
        assert response.status_code == 404, (stored, response.content[:40])
        assert b"SQLite" not in response.content and b"RIFF" not in response.content


def test_recordings_symlinked_out_of_the_recordings_folder_are_refused(
    env: ConsoleEnv, client: TestClient, settings: Settings
) -> None:
    data_dir = settings.data_dir
    database = data_dir / "tickets.db"
    if not database.exists():
        database.write_bytes(b"SQLite format 3\x00 stand-in")
    notes = data_dir / "recordings" / "notes.txt"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text("RIFF but not audio")
    (data_dir / "outside.wav").write_bytes(b"RIFF-outside-WAVE")
    targets = {
        "leak-db": database,
        "leak-passwd": Path("/etc/passwd"),
        "leak-notes": notes,  # inside the recordings folder, but no .wav
        "leak-outside": data_dir / "outside.wav",  # a .wav, but outside the folder
    }
    browser = web_client(env.app, "op")
    for i, (call_id, target) in enumerate(targets.items()):
        link = controller_file(data_dir, call_id, STARTED)
        link.symlink_to(target)
        draft = make_draft(i, call_id=call_id, started_at=STARTED, recording_path=str(link))
        number = env.service.intake(draft).number
        response = browser.get(f"/tickets/{number}/recording")
        assert response.status_code == 404, (call_id, response.content[:40])
    # A whole day folder linked out of the recordings folder.
    (data_dir / "leak_day.wav").write_bytes(b"RIFF-day-WAVE")
    (data_dir / "recordings" / "2026-03-16").symlink_to(data_dir)
    day = datetime(2026, 3, 16, 8, tzinfo=UTC)
    number = env.service.intake(make_draft(9, call_id="leak-day", started_at=day)).number
    assert browser.get(f"/tickets/{number}/recording").status_code == 404


# ---- 1. call evidence ----


def test_operators_cannot_file_call_evidence(env: ConsoleEnv, client: TestClient) -> None:
    forged = {
        "call_id": "forged-call-1",
        "recording_path": "tickets.db",
        "transcript": [{"speaker": "caller", "text": "我没说过这句话", "confidence": 1.0}],
        "caller": {"number": "13900000000"},
        "started_at": "2026-03-14T08:00:00Z",
        "ended_at": "2026-03-14T08:05:00Z",
        "menu_path": ["main", "complaint"],
        "dtmf": "2",
        "caller_words": ["我要投诉"],
        "kb_answers": ["kb-noise-01"],
    }
    named = {"caller": "caller.number"}
    for user in ("op", "boss"):  # a 班长 is no call controller either
        headers = env.token(client, user)
        for field, value in forged.items():
            body = {"draft": {"type": "complaint", "summary": "夜间施工", field: value}}
            refused = client.post("/api/v1/tickets", json=body, headers=headers)
            assert refused.status_code == 403, (user, field, refused.text)
            assert named.get(field, field) in refused.json()["detail"]
    assert env.service.store.count() == 0
    typed_by_a_person = {
        "type": "complaint",
        "summary": "夜间施工",
        "caller": {"name": "王先生", "callback_number": "13907551234"},
    }
    filed = client.post(
        "/api/v1/tickets", json={"draft": typed_by_a_person}, headers=env.token(client, "op")
    )
    assert filed.status_code == 201, filed.text
    assert filed.json()["call_id"] == "" and filed.json()["caller"]["number"] == ""


def test_the_controller_identity_files_evidence_and_pops_any_seat(
    env: ConsoleEnv, client: TestClient, controller: str
) -> None:
    headers = env.token(client, controller)
    draft = make_draft(1, started_at=STARTED).model_dump(mode="json")
    filed = client.post("/api/v1/tickets", json={"draft": draft}, headers=headers)
    assert filed.status_code == 201, filed.text
    number = filed.json()["number"]
    ticket = env.service.store.get(number)
    assert ticket.call_id == draft["call_id"] and ticket.transcript[0].text == "工地晚上施工太吵了"
    popped = client.post(
        f"/api/v1/tickets/{number}/screen-pop", json={"seat": "8004"}, headers=headers
    )
    assert popped.status_code == 204, popped.text
    assert env.service.store.get(number).assigned_to == "op2"
    assert env.service.pending_pop("8004")["ticket"] == number  # type: ignore[index]


# ---- 4. who works on which ticket ----


def test_an_operator_cannot_work_on_another_seats_ticket(
    env: ConsoleEnv, client: TestClient
) -> None:
    op, op2 = env.token(client, "op"), env.token(client, "op2")
    number = held_by_op2(env)
    before = env.service.store.get(number)
    attempts: list[tuple[str, str, dict[str, object] | None]] = [
        ("PATCH", "", {"topic": "被人改过的主题"}),
        ("POST", "/dispatch", {"department": "市水务局"}),
        ("POST", "/close", {"satisfaction": "satisfied"}),
        ("POST", "/release", None),
        ("POST", "/follow-up", {"result": "没人回访过"}),
        ("POST", "/call", None),
    ]
    for method, step, body in attempts:
        url = f"/api/v1/tickets/{number}{step}"
        refused = client.request(method, url, json=body, headers=op)
        assert refused.status_code == 403, (step, refused.status_code, refused.text)
        assert "op2" in refused.json()["detail"]
    after = env.service.store.get(number)
    assert after.history == before.history
    assert (after.status, after.assigned_to, after.topic) == (Status.INTAKE, "op2", before.topic)
    assert env.dialer.calls == []
    assert not env.service.queue.waiting()  # still held at op2's seat, not released
    # Once dispatched by its holder, the department's steps are the holder's to record too.
    dispatched = client.post(
        f"/api/v1/tickets/{number}/dispatch", json={"department": "市水务局"}, headers=op2
    )
    assert dispatched.status_code == 200, dispatched.text
    for step, body in (("/accept", {}), ("/reply", {"reply": "已处理"})):
        refused = client.post(f"/api/v1/tickets/{number}{step}", json=body, headers=op)
        assert refused.status_code == 403, (step, refused.text)
    assert env.service.store.get(number).status == Status.DISPATCHED


def test_an_operator_works_only_the_queues_of_their_skills(
    env: ConsoleEnv, client: TestClient
) -> None:
    social = env.token(client, "social")
    general = env.service.intake(make_draft(1), skill="general").number
    insurance = env.service.intake(make_draft(2), skill="social_insurance").number
    refused = client.patch(f"/api/v1/tickets/{general}", json={"topic": "x"}, headers=social)
    assert refused.status_code == 403 and "技能队列" in refused.json()["detail"]
    allowed = client.patch(f"/api/v1/tickets/{insurance}", json={"topic": "社保"}, headers=social)
    assert allowed.status_code == 200, allowed.text


def test_a_shift_leader_acts_on_any_ticket_and_reassigns_it(
    env: ConsoleEnv, client: TestClient
) -> None:
    op, op2, boss = (env.token(client, u) for u in ("op", "op2", "boss"))
    number = held_by_op2(env)
    edited = client.patch(f"/api/v1/tickets/{number}", json={"topic": "班长改过"}, headers=boss)
    assert edited.status_code == 200, edited.text
    assign, ticket_url = f"/api/v1/tickets/{number}/assign", f"/api/v1/tickets/{number}"
    assert client.post(assign, json={"username": "op"}, headers=op).status_code == 403
    assert env.service.store.get(number).assigned_to == "op2"
    moved = client.post(assign, json={"username": "op"}, headers=boss)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["assigned_to"], moved.json()["seat"]) == ("op", "8001")
    assert [e.seat for e in env.service.queue.entries() if e.ticket == number] == ["8001"]
    ghost = client.post(assign, json={"username": "ghost"}, headers=boss)
    assert ghost.status_code == 422 and "ghost" in ghost.json()["detail"]
    assert client.patch(ticket_url, json={"topic": "a"}, headers=op2).status_code == 403
    assert client.patch(ticket_url, json={"topic": "b"}, headers=op).status_code == 200
    released = client.post(f"/api/v1/tickets/{number}/release", headers=op)
    assert released.status_code == 200 and released.json()["assigned_to"] is None
    assert [e.ticket for e in env.service.queue.waiting()] == [number]
    closed = client.post(f"{ticket_url}/close", json={"satisfaction": "satisfied"}, headers=boss)
    assert closed.status_code == 200, closed.text
    assert client.post(assign, json={"username": "op2"}, headers=boss).status_code == 409


def test_pages_refuse_work_on_another_seats_ticket(env: ConsoleEnv, client: TestClient) -> None:
    number = held_by_op2(env)
    before = env.service.store.get(number)
    browser = web_client(env.app, "op")
    token = csrf_of(env, browser)
    edit = browser.post(
        f"/tickets/{number}/edit",
        data={"csrf_token": token, "type": "complaint", "urgency": "normal", "topic": "改了"},
    )
    assert "op2 办理" in edit.text
    for step, form in (
        ("close", {"satisfaction": "satisfied"}),
        ("release", {}),
        ("dispatch", {"department": "市水务局"}),
    ):
        refused = browser.post(f"/tickets/{number}/{step}", data={"csrf_token": token, **form})
        assert "您无权操作" in refused.text, step
    after = env.service.store.get(number)
    assert after.history == before.history and after.assigned_to == "op2"
    page = browser.get(f"/tickets/{number}")
    assert "您只能查看" in page.text and 'id="dispatch-form"' not in page.text
    # The 班长 sees the ticket as workable, with the form to hand it to someone else.
    leader = web_client(env.app, "boss")
    assert 'id="assign-form"' in leader.get(f"/tickets/{number}").text
    moved = leader.post(
        f"/tickets/{number}/assign", data={"csrf_token": csrf_of(env, leader), "username": "op"}
    )
    assert "已改派给 op" in moved.text
    assert env.service.store.get(number).assigned_to == "op"


def test_screen_pops_go_only_to_the_requesters_own_seat(
    env: ConsoleEnv, client: TestClient
) -> None:
    op, boss = env.token(client, "op"), env.token(client, "boss")
    waiting = env.service.intake(make_draft(1)).number
    pushed = client.post(f"/api/v1/tickets/{waiting}/screen-pop", json={"seat": "8004"}, headers=op)
    assert pushed.status_code == 403 and "自己的坐席" in pushed.json()["detail"]
    assert env.service.pending_pop("8004") is None
    assert env.service.store.get(waiting).assigned_to is None
    mine = client.post(f"/api/v1/tickets/{waiting}/screen-pop", json={"seat": "8001"}, headers=op)
    assert mine.status_code == 204
    assert env.service.store.get(waiting).assigned_to == "op"
    # Popping someone else's ticket onto one's own seat would be taking it.
    taken = held_by_op2(env, 2)
    grab = client.post(f"/api/v1/tickets/{taken}/screen-pop", json={"seat": "8001"}, headers=op)
    assert grab.status_code == 403
    assert env.service.store.get(taken).assigned_to == "op2"
    led = client.post(f"/api/v1/tickets/{taken}/screen-pop", json={"seat": "8001"}, headers=boss)
    assert led.status_code == 204
    assert env.service.store.get(taken).assigned_to == "op"


# ---- 4. dispatch ----


def test_dispatch_goes_only_to_configured_departments(
    env: ConsoleEnv, client: TestClient, settings: Settings
) -> None:
    op = env.token(client, "op")
    number = env.service.intake(make_draft(1)).number
    for unknown in ("不存在的局", "市水务局局长本人", "<script>alert(1)</script>"):
        refused = client.post(
            f"/api/v1/tickets/{number}/dispatch", json={"department": unknown}, headers=op
        )
        assert refused.status_code == 422, (unknown, refused.text)
        assert "不是已配置的承办单位" in refused.json()["detail"]
    browser = web_client(env.app, "op")
    page = browser.post(
        f"/tickets/{number}/dispatch",
        data={"csrf_token": csrf_of(env, browser), "department": "不存在的局"},
    )
    assert "不是已配置的承办单位" in page.text
    assert env.service.store.get(number).status == Status.INTAKE
    department = settings.tickets.departments[0].name
    done = client.post(
        f"/api/v1/tickets/{number}/dispatch", json={"department": department}, headers=op
    )
    assert done.status_code == 200 and done.json()["department"] == department
