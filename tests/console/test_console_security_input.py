"""Console security, the input side (issue 14, items 5 and 6).

An attacker's findings, each turned into a test against the real app (real SQL on SQLite
and PostgreSQL, real Redis):

* bodies with a lone surrogate, bad UTF-8, NaN or infinities got 500s with tracebacks (or
  stored ``null`` where the schema says a number); validation errors echoed the input;
* ``?msg=`` / ``?err=`` put any text an attacker wrote into the console's banner;
* CSV exports carried formula cells (``=HYPERLINK(...)``) from callers' or KB text;
* one login could hold any number of event streams open;
* uploads over 1 MB got a raw JSON error although the form allows 20 MB.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
import wave
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from hotline.draft import TranscriptLine, TranscriptWord
from hotline.settings import Settings
from manage.calls import record_call
from tests.console.helpers import PASSWORD, ConsoleEnv, make_env
from tests.tickets.support import make_draft, make_settings
from tickets.service import TicketService
from tickets.ticket import Satisfaction

MARK = "ZZ-攻击者原文-ZZ"  # attacker's text: must never come back in a response
PHISH = "账号已冻结，请致电 400-123-4567 解冻"
FORMULA = '=HYPERLINK("http://evil.example/x","点此领取补贴")'


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_server: str, key_prefix: str) -> Settings:
    """The manager pages' settings too (words-only bot, offline voice), as tests/manage."""
    base = make_settings(tmp_path, database_url, redis_server, key_prefix)
    bot = base.bot.model_copy(update={"semantic": False})
    ivr = base.ivr.model_copy(update={"tts_engine": "espeak", "prompts_dir": tmp_path / "prompts"})
    return base.model_copy(update={"bot": bot, "ivr": ivr})


@pytest.fixture
def env(settings: Settings, service: TicketService) -> ConsoleEnv:
    return make_env(settings, service)


@pytest.fixture
def anonymous(env: ConsoleEnv) -> Iterator[TestClient]:
    # raise_server_exceptions=False: a 500 is what a real client sees, so the test sees it.
    with TestClient(env.app, raise_server_exceptions=False) as client:
        yield client


def log_in(client: TestClient, user: str) -> str:
    """Log the client's browser session in; returns the session's CSRF token."""
    client.get("/login")
    client.post(
        "/login",
        data={
            "username": user,
            "password": PASSWORD,
            "csrf_token": client.cookies["hotline_login_csrf"],
        },
    )
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert match, "login failed"
    return match.group(1)


@pytest.fixture
def operator(env: ConsoleEnv) -> Iterator[tuple[TestClient, str]]:
    with TestClient(env.app, raise_server_exceptions=False) as client:
        yield client, log_in(client, "op")


@pytest.fixture
def manager(env: ConsoleEnv) -> Iterator[tuple[TestClient, str]]:
    with TestClient(env.app, raise_server_exceptions=False) as client:
        yield client, log_in(client, "boss")


def assert_clean_refusal(response: httpx.Response, *secrets: str) -> None:
    """4xx, no traceback, none of the attacker's input echoed back."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text and 'File "' not in response.text
    for secret in secrets:
        assert secret not in response.text


def draft_body(i: int = 1) -> dict[str, object]:
    return {"draft": make_draft(i).model_dump(mode="json"), "skill": "general"}


# ---- item 5: bodies that used to get a 500, validation that echoed input ----


def test_a_lone_surrogate_in_json_is_refused_not_a_500(
    env: ConsoleEnv, anonymous: TestClient
) -> None:
    json_type = {"Content-Type": "application/json"}
    login = anonymous.post(
        "/api/v1/auth/token",
        content=b'{"username": "\\ud800op", "password": "x"}',
        headers=json_type,
    )
    assert_clean_refusal(login)
    op = env.token(anonymous, "op")
    body = json.dumps(draft_body()).replace('"summary": "', '"summary": "\\udfff', 1)
    created = anonymous.post("/api/v1/tickets", content=body, headers={**op, **json_type})
    assert_clean_refusal(created)
    assert created.status_code in (400, 422)
    assert env.service.store.count() == 0


def test_undecodable_and_unparseable_json_bodies_are_refused(
    env: ConsoleEnv, anonymous: TestClient
) -> None:
    json_type = {"Content-Type": "application/json"}
    op = env.token(anonymous, "op")
    for body in (
        b'{"username": "\xff\xfeop", "password": "x"}',  # not UTF-8
        b'{"username": "op", "password": ' + b"[" * 100_000,  # nested past the recursion limit
        b'{"username": "op", "password": ' + b"9" * 5000 + b"}",  # over int digits limit
    ):
        refused = anonymous.post("/api/v1/auth/token", content=body, headers=json_type)
        assert_clean_refusal(refused)
        # One answer whatever is wrong with the JSON: 422, where and what, in the usual shape.
        assert refused.status_code == 422, refused.text[:300]
        [error] = refused.json()["detail"]
        assert error["loc"][0] == "body" and error["type"] == "json_invalid"
        assert error["msg"] == "请求体不是有效的 JSON"
    broken = anonymous.post(
        "/api/v1/tickets", content=b'{"draft": ' + MARK.encode(), headers={**op, **json_type}
    )
    assert broken.status_code == 422
    assert_clean_refusal(broken, MARK)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinite_confidence_are_refused_on_both_databases(
    env: ConsoleEnv, anonymous: TestClient, token: str
) -> None:
    """PostgreSQL answered NaN with a 500, SQLite stored null (the schema says a number)."""
    op = env.token(anonymous, "op")
    body = draft_body()
    body["draft"]["transcript"][0]["confidence"] = 0.123456  # type: ignore[index]
    words = [{"text": "工地", "confidence": 0.654321}]
    body["draft"]["transcript"][0]["words"] = words  # type: ignore[index]
    sent = json.dumps(body)
    for field in ("0.123456", "0.654321"):
        response = anonymous.post(
            "/api/v1/tickets",
            content=sent.replace(field, token),
            headers={**op, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, (field, response.status_code, response.text[:300])
        assert_clean_refusal(response)
    assert env.service.store.count() == 0


def test_the_draft_itself_refuses_what_no_sql_column_holds() -> None:
    """Whatever hands a draft over (the API, the call session, the spool), a NaN or
    infinite confidence is refused where the draft is made, not stored as null."""
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValidationError, match="finite"):
            TranscriptLine(speaker="caller", text="工地", confidence=bad)
        with pytest.raises(ValidationError, match="finite"):
            TranscriptWord(text="工地", confidence=bad)
        with pytest.raises(ValidationError, match="finite"):
            TranscriptLine(speaker="caller", text="工地", start_s=bad)


def test_api_validation_errors_name_the_field_but_never_echo_the_input(
    env: ConsoleEnv, anonymous: TestClient
) -> None:
    op = env.token(anonymous, "op")
    body = draft_body()
    body["draft"]["type"] = MARK  # type: ignore[index]
    body["skill"] = MARK * 10  # too long
    response = anonymous.post("/api/v1/tickets", json=body, headers=op)
    assert response.status_code == 422
    assert_clean_refusal(response, MARK, "ZZ-")
    errors = response.json()["detail"]
    assert {tuple(e["loc"]) for e in errors} == {("body", "draft", "type"), ("body", "skill")}
    assert all(set(e) == {"loc", "type", "msg"} for e in errors)
    assert {e["type"] for e in errors} == {"enum", "string_too_long"}
    login = anonymous.post("/api/v1/auth/token", json={"username": MARK, "password": 5})
    assert login.status_code == 422
    assert_clean_refusal(login, MARK)


def test_page_form_errors_get_a_chinese_page_without_the_input(
    env: ConsoleEnv, operator: tuple[TestClient, str], manager: tuple[TestClient, str]
) -> None:
    client, token = operator
    number = env.service.intake(make_draft()).number
    closed = client.post(
        f"/tickets/{number}/close", data={"csrf_token": token, "satisfaction": MARK}
    )
    assert closed.status_code == 422
    assert closed.headers["content-type"].startswith("text/html")
    assert "提交的内容无效" in closed.text and "满意度" in closed.text
    assert_clean_refusal(closed, MARK)
    boss, _ = manager
    bad_query = boss.get("/manage/hot", params={"days": MARK})
    assert bad_query.status_code == 422 and bad_query.headers["content-type"].startswith(
        "text/html"
    )
    assert_clean_refusal(bad_query, MARK)


def test_nul_characters_in_pages_are_refused_before_the_database(
    env: ConsoleEnv, operator: tuple[TestClient, str]
) -> None:
    """PostgreSQL cannot store NUL in text: from a form or a query it used to give a 500."""
    client, token = operator
    number = env.service.intake(make_draft()).number
    env.service.store.dispatch(number, "市水务局", "op")
    reply = client.post(f"/tickets/{number}/reply", data={"csrf_token": token, "reply": "a\x00b"})
    assert_clean_refusal(reply)
    assert reply.status_code == 422 and "提交的内容无效" in reply.text
    searched = client.get("/search", params={"text": "海甸\x00"})
    assert_clean_refusal(searched)
    anonymous = TestClient(env.app, raise_server_exceptions=False)
    anonymous.get("/login")
    nul_login = anonymous.post(
        "/login",
        data={
            "username": "op\x00",
            "password": "x",
            "csrf_token": anonymous.cookies["hotline_login_csrf"],
        },
    )
    assert_clean_refusal(nul_login)
    assert env.service.store.get(number).department_reply in ("", None)


def test_forged_tokens_outside_ascii_are_refused_not_a_500(
    env: ConsoleEnv, anonymous: TestClient, operator: tuple[TestClient, str]
) -> None:
    """The token comparison took only ASCII text and raised on anything else."""
    anonymous.get("/login")
    login = anonymous.post(
        "/login",
        data={"username": "op", "password": PASSWORD, "csrf_token": "伪造的令牌"},
        follow_redirects=False,
    )
    assert login.status_code == 303 and login.headers["location"] == "/login?err=login_expired"
    client, _ = operator
    number = env.service.intake(make_draft()).number
    forged = {"csrf_token": "伪造", "department": "x"}
    form = client.post(f"/tickets/{number}/dispatch", data=forged)
    assert_clean_refusal(form)
    assert form.status_code == 403
    header = client.post(
        f"/api/v1/tickets/{number}/dispatch",
        json={"department": "x"},
        headers={"X-CSRF-Token": "é".encode("latin-1")},  # type: ignore[dict-item]
    )
    assert_clean_refusal(header)
    assert header.status_code == 403
    assert env.service.store.get(number).department != "x"


# ---- item 6: banners only from the catalogue ----


def test_query_string_text_never_reaches_the_banner(
    anonymous: TestClient, operator: tuple[TestClient, str], manager: tuple[TestClient, str]
) -> None:
    for client, path in ((anonymous, "/login"), (operator[0], "/"), (manager[0], "/manage/kb")):
        for name in ("msg", "err"):
            page = client.get(path, params={name: PHISH})
            assert page.status_code == 200
            assert PHISH not in page.text and "flash" not in page.text, (path, name)
    known = operator[0].get("/", params={"msg": "queue_empty"})
    assert '<div class="flash ok">队列中暂无待接工单</div>' in known.text
    failed = anonymous.get("/login", params={"err": "bad_login"})
    assert '<div class="flash err">用户名或密码错误</div>' in failed.text
    # A known key in the wrong slot, or a catalogue message with a forged detail: nothing.
    assert "flash" not in operator[0].get("/", params={"err": "queue_empty"}).text
    forged = operator[0].get("/", params={"msg": "released", "ticket": "见 http://evil.example"})
    assert "flash" not in forged.text and "evil.example" not in forged.text


def test_redirects_carry_message_keys_and_checked_details_only(
    env: ConsoleEnv, operator: tuple[TestClient, str]
) -> None:
    client, token = operator
    empty = client.post("/claim", data={"csrf_token": token}, follow_redirects=False)
    assert empty.headers["location"] == "/?msg=queue_empty"
    number = env.service.intake(make_draft()).number
    claimed = client.post("/claim", data={"csrf_token": token}, follow_redirects=False)
    assert claimed.headers["location"] == f"/tickets/{number}"
    saved = client.post(
        f"/tickets/{number}/dispatch",
        data={"csrf_token": token, "department": "市生态环境局"},
        follow_redirects=False,
    )
    assert saved.headers["location"] == f"/tickets/{number}?msg=dispatched"
    assert "已转办至 市生态环境局" in client.get(saved.headers["location"]).text
    released = client.post(
        f"/tickets/{number}/release", data={"csrf_token": token}, follow_redirects=False
    )
    assert released.headers["location"] == f"/?msg=released&ticket={number}"
    assert f"工单 {number} 已退回队列" in client.get(released.headers["location"]).text


def test_refused_actions_show_the_reason_on_the_page_not_in_the_url(
    env: ConsoleEnv, operator: tuple[TestClient, str]
) -> None:
    client, token = operator
    number = env.service.intake(make_draft()).number
    env.service.store.close(number, Satisfaction.SATISFIED, "op")
    refused = client.post(
        f"/tickets/{number}/dispatch",
        data={"csrf_token": token, "department": "市水务局"},
        follow_redirects=False,
    )
    assert refused.status_code == 409 and "location" not in refused.headers
    assert '<div class="flash err">' in refused.text and "不能转办" in refused.text
    assert number in refused.text  # the ticket page itself, with the reason on top


def test_manager_pages_use_keys_and_show_details_on_the_page(
    env: ConsoleEnv, manager: tuple[TestClient, str]
) -> None:
    client, token = manager
    client.get("/manage/menu")  # seeds the configuration
    broken = client.post(
        "/manage/menu/yaml",
        data={"csrf_token": token, "content": "options: [\n"},
        follow_redirects=False,
    )
    assert broken.status_code == 422 and "location" not in broken.headers
    assert "YAML 格式错误" in broken.text and 'id="menu-editor"' in broken.text
    rolled = client.post("/manage/menu/rollback/1", data={"csrf_token": token})
    assert "已回滚到版本 1（保存为版本 2）" in rolled.text
    location = rolled.history[0].headers["location"]
    assert location.isascii() and "%" not in location
    taken = client.post(
        "/manage/kb/save",
        data={
            "csrf_token": token,
            "id": "si-card-lost",
            "is_new": "true",
            "question": "我自己写的问题",
            "answer": "我自己写的答案",
        },
        follow_redirects=False,
    )
    assert taken.status_code == 422 and "location" not in taken.headers
    assert "编号 si-card-lost 已存在" in taken.text and "我自己写的答案" in taken.text


# ---- item 6: CSV exports without formulas ----


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def assert_no_formula_cells(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_kb_csv_export_escapes_formulas_and_imports_back_unchanged(
    env: ConsoleEnv, manager: tuple[TestClient, str]
) -> None:
    client, token = manager
    entry = {
        "id": "evil-1",
        "topic": "+补贴",
        "department": "@市人社局",
        "question": "-怎么领补贴",
        "also": "=SUM(1)\n怎么申请",
        "answer": FORMULA,
    }
    saved = client.post("/manage/kb/save", data={"csrf_token": token, "is_new": "true", **entry})
    assert saved.status_code == 200
    exported = client.get("/manage/kb/export.csv")
    rows = cells(exported.text)
    assert_no_formula_cells(rows)
    row = dict(zip(rows[0], next(r for r in rows if r[0] == "evil-1"), strict=True))
    assert row["answer"] == "'" + FORMULA and row["topic"] == "'+补贴"
    imported = client.post(
        "/manage/kb/import",
        data={"csrf_token": token},
        files={"file": ("kb.csv", exported.content, "text/csv")},
    )
    assert "已导入：0 条新增或修改" in imported.text  # the quotes came off again
    state = env.app.state.console._manager.config.kb_state("evil-1")
    assert state.data["answer"] == FORMULA and state.data["also"] == ["=SUM(1)", "怎么申请"]


def test_figures_csv_escapes_what_callers_said(
    env: ConsoleEnv, settings: Settings, manager: tuple[TestClient, str]
) -> None:
    client, _ = manager
    record = {
        "call_id": "evil-call",
        "caller": "13800000000",
        "started_at": datetime.now(UTC).isoformat(),
        "answered_ms": 1500,
        "outcome": "abandoned",
        "turns": [{"input": "speech", "text": FORMULA, "intent": "unknown", "unanswered": True}],
    }
    assert record_call(env.service.store, record, settings.tickets.timezone)
    exported = client.get("/manage/figures.csv", params={"period": "day"})
    rows = cells(exported.text)
    assert ["unanswered", "'" + FORMULA, "1"] in rows
    assert_no_formula_cells(rows)


# ---- item 6: event streams per login session ----


def _browser_session(base: str, user: str) -> dict[str, str]:
    with httpx.Client(base_url=base) as client:
        client.get("/login")
        client.post(
            "/login",
            data={
                "username": user,
                "password": PASSWORD,
                "csrf_token": client.cookies["hotline_login_csrf"],
            },
        )
        return {"hotline_session": client.cookies["hotline_session"]}


def _open_stream(stack: ExitStack, base: str, cookies: dict[str, str]) -> httpx.Response:
    client = stack.enter_context(httpx.Client(base_url=base, cookies=cookies, timeout=10))
    response = stack.enter_context(client.stream("GET", "/events"))
    if response.status_code == 200:
        chunks = response.iter_text()
        assert next(chunks).startswith("retry:")  # the stream really runs
        stack.callback(chunks.close)  # held open: dropping the iterator closes the stream
    return response


def test_a_session_holds_at_most_three_event_streams(env: ConsoleEnv) -> None:
    from console.server import serve_in_thread

    with serve_in_thread(env.app) as base, ExitStack() as streams:
        op = _browser_session(base, "op")
        opened = [_open_stream(streams, base, op) for _ in range(3)]
        assert [r.status_code for r in opened] == [200, 200, 200]
        with ExitStack() as extra:
            fourth = _open_stream(extra, base, op)
            assert fourth.status_code == 429
            fourth.read()
            assert "实时连接" in fourth.text
        # Another login is not affected by op's streams.
        with ExitStack() as other:
            assert _open_stream(other, base, _browser_session(base, "boss")).status_code == 200
        # Closing one frees its place once the server notices (it checks every second).
        opened[0].close()
        deadline = time.monotonic() + 10
        while True:
            with ExitStack() as retry:
                if _open_stream(retry, base, op).status_code == 200:
                    break
            assert time.monotonic() < deadline, "a closed stream kept its place"
            time.sleep(0.5)


# ---- item 6: uploads up to the limit the form states ----


def recording(seconds: float, rate: int = 48000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    samples = (6000 * np.sin(2 * np.pi * 330 * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return buffer.getvalue()


def test_uploads_up_to_twenty_megabytes_are_taken(manager: tuple[TestClient, str]) -> None:
    client, token = manager
    wav = recording(20.0)
    assert 1_500_000 < len(wav) < 20_000_000
    uploaded = client.post(
        "/manage/prompts/upload",
        data={"csrf_token": token, "prompt_id": "greeting"},
        files={"file": ("greeting.wav", wav, "audio/wav")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303, uploaded.text[:300]
    assert "greeting 已使用真人录音（20.0 秒" in client.get(uploaded.headers["location"]).text
    for form in ("/manage/prompts", "/manage/kb"):  # and the forms say so
        assert "上限 20 MB" in client.get(form).text


@pytest.mark.parametrize("path", ["/manage/prompts/upload", "/manage/kb/import"])
def test_uploads_over_the_limit_get_a_chinese_page(
    manager: tuple[TestClient, str], path: str
) -> None:
    client, token = manager
    too_big = b"\0" * 21_000_000
    refused = client.post(
        path,
        data={"csrf_token": token, "prompt_id": "greeting"},
        files={"file": ("big.wav", too_big, "audio/wav")},
    )
    assert refused.status_code == 413
    assert refused.headers["content-type"].startswith("text/html")
    assert "上限 20 MB" in refused.text and "返回" in refused.text


def test_oversized_bodies_elsewhere_keep_the_small_limit(
    env: ConsoleEnv, operator: tuple[TestClient, str]
) -> None:
    client, token = operator
    number = env.service.intake(make_draft()).number
    page = client.post(
        f"/tickets/{number}/reply", data={"csrf_token": token, "reply": "吵" * 1_000_000}
    )
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    assert "请求内容过大" in page.text
    api = client.post(
        "/api/v1/tickets",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={"Content-Type": "application/json", "X-CSRF-Token": token},
    )
    assert api.status_code == 413 and api.json() == {"detail": "请求体过大"}
