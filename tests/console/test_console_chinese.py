"""No English reaches staff: every console page, rendered for each role with data of every
kind (handover reasons, menu paths, history, validation errors of the menu, knowledge-base
and prompt editors, CSV exports), is scanned for English words.

Allowed: technical tokens (anything with a digit or ``@`` inside, e.g. ticket and call
ids, and file names), a short list of acronyms and units, the users' login names, and
what an element marks as not for translation (``<code>``, ``translate="no"``: prompt ids,
YAML source). A code word such as ``ask:caller_wants`` is not technical: it is English.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from hotline.draft import TranscriptLine
from hotline.settings import Settings
from manage.calls import record_call
from tests.console.helpers import (
    DEPARTMENT_USERS,
    USERS,
    ConsoleEnv,
    add_department_users,
    make_env,
    web_client,
)
from tests.tickets.support import make_draft
from tickets.service import TicketService

ALLOWED = {
    "ID", "API", "CSV", "YAML", "JSON", "KB", "MB", "GB", "Hz", "kHz", "ms", "dB", "dBFS",
    "PDF", "JPG", "PNG", "WAV", "PCM", "HTTPS", "HTTP", "SIP", "TTS", "ASR", "DTMF", "CSRF",
    "UTF", "YYYY", "MM", "DD",
}  # fmt: skip
# Ids, numbers, times, addresses and file names: dropped before words are looked for.
TECHNICAL = re.compile(
    r"[\w.@/:+-]*[0-9@][\w.@/:+-]*|[^\s/]*\.(?:png|jpe?g|pdf|wav|csv|ya?ml|json|txt)\b"
    r"|\{\w+\}",  # a prompt's placeholder, filled in by the system
    re.I,
)
WORD = re.compile(r"[A-Za-z]{2,}")
SHOWN_ATTRIBUTES = ("title", "placeholder", "alt", "aria-label")
NOT_TRANSLATED_TAGS = {"script", "style", "code"}
VOID = {"input", "br", "img", "meta", "link", "hr", "source", "col", "wbr", "area", "embed"}


class _Text(HTMLParser):
    """The words a person sees: text and shown attributes, outside scripts, styles and
    elements marked as not for translation."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # per open element: is it (or a parent) skipped?
        self.pieces: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        skipped = (bool(self.stack) and self.stack[-1]) or tag in NOT_TRANSLATED_TAGS
        skipped = skipped or values.get("translate") == "no"
        if not skipped:
            self.pieces += [values[a] or "" for a in SHOWN_ATTRIBUTES if values.get(a)]
            if tag == "input" and values.get("type") in ("submit", "button"):
                self.pieces.append(values.get("value") or "")
        if tag not in VOID:
            self.stack.append(skipped)

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not (self.stack and self.stack[-1]):
            self.pieces.append(data)


def english_words(html: str, allowed: set[str]) -> list[str]:
    parser = _Text()
    parser.feed(html)
    found = []
    names = sorted((a for a in allowed if not a.isalpha()), key=len, reverse=True)
    for piece in parser.pieces:
        for name in names:  # login names such as cgj-user
            piece = piece.replace(name, " ")
        for chunk in piece.split():
            for word in WORD.findall(TECHNICAL.sub(" ", chunk)):
                if word not in allowed:
                    found.append(f"{word!r} in {chunk!r}")
    return found


@pytest.fixture
def env(settings: Settings, service: TicketService) -> ConsoleEnv:
    bot = settings.bot.model_copy(update={"semantic": False})
    ivr = settings.ivr.model_copy(
        update={"tts_engine": "espeak", "prompts_dir": settings.data_dir / "prompts"}
    )
    env = make_env(settings.model_copy(update={"bot": bot, "ivr": ivr}), service)
    add_department_users(env)
    return env


def seed(env: ConsoleEnv, settings: Settings) -> dict[str, str]:
    """Work orders in every state a page shows, with what the bot writes in English."""
    service = env.service
    op = env.accounts.get("op")
    assert op is not None
    first = service.intake(
        make_draft(
            41,
            handover_reason="caller hung up before the intake was finished",
            menu_path=["main", "ask:caller_wants", "2:投诉"],
            transcript=[TranscriptLine(speaker="caller", text="工地太吵", confidence=0.3)],
        ),
        callback_promised=True,
    )
    service.intake(make_draft(41, handover_reason="emergency: 着火"))  # a duplicate
    service.claim_next(op)
    service.dispatch(first.number, "市城市管理局", op, "请核查", ["市水务局"])
    lead = env.accounts.get("cgj-user")
    assert lead is not None
    service.accept(first.number, lead)
    service.request_extension(first.number, 3, "需协调", lead)
    late = make_draft(42, handover_reason="caller pressed 0")
    service.store.clock = lambda: datetime.now(UTC) - timedelta(days=30)
    old = service.intake(late)
    service.store.clock = lambda: datetime.now(UTC)
    record_call(
        service.store,
        {
            "call_id": "scan-1",
            "caller": "13800000000",
            "started_at": datetime.now(UTC).isoformat(),
            "answered_ms": 900,
            "outcome": "transfer",
            "ticket": first.number,
            "turns": [{"input": "speech", "text": "怎么办居住证", "intent": "consultation"}],
        },
        settings.tickets.timezone,
    )
    return {"ticket": first.number, "old": old.number}


PAGES = {
    "operator": [
        "/", "/fragments/queues", "/tickets/new", "/tickets/{ticket}", "/tickets/{ticket}/pop",
        "/tickets/{old}", "/callbacks", "/search?text=工地", "/search?deadline=overdue",
        "/kb?q=社保", "/tickets/20990101-0001",
    ],
    "manager": [
        "/", "/tickets/{ticket}", "/overdue", "/overdue?which=due_soon",
        "/overdue?which=dispatch_late", "/manage/menu", "/manage/simulator", "/manage/kb",
        "/manage/kb/new", "/manage/kb/si-card-lost", "/manage/prompts", "/manage/figures",
        "/manage/report", "/manage/report?period=week", "/manage/hot", "/monitor",
        "/fragments/monitor",
    ],
    "admin": ["/", "/manage/menu", "/manage/figures", "/tickets/{ticket}"],
    "department": ["/dept", "/dept/tickets/{ticket}", "/dept/tickets/{old}"],
}  # fmt: skip
LOGINS = {"operator": "op", "manager": "boss", "admin": "root", "department": "cgj-user"}
# GET routes that are not pages a person reads, with the reason.
NOT_PAGES = {
    "/login": "scanned signed out below",
    "/events": "event stream",
    "/tickets/{number}/recording": "audio",
    "/tickets/{number}/attachments/{attachment_id}": "a department's file",
    "/dept/tickets/{number}/attachments/{attachment_id}": "a department's file",
    "/manage/tts": "audio",
    "/manage/kb/export.{fmt}": "the knowledge base's own file format (re-imported as is)",
    "/manage/prompts/progress": "fragment scanned via /manage/prompts",
    "/manage/prompts/{prompt_id}/audio": "audio",
    "/manage/figures.csv": "scanned below, cell by cell",
    "/openapi.json": "API description for programmers",
    "/docs": "API documentation (Swagger UI) for programmers",
    "/redoc": "API documentation (ReDoc) for programmers",
}


@pytest.fixture
def allowed() -> set[str]:
    return ALLOWED | set(USERS) | set(DEPARTMENT_USERS)


@pytest.fixture
def clients(env: ConsoleEnv) -> Iterator[dict[str, TestClient]]:
    made = {role: web_client(env.app, name) for role, name in LOGINS.items()}
    yield made
    for client in made.values():
        client.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_reads_in_chinese_for_every_role(
    env: ConsoleEnv, settings: Settings, clients: dict[str, TestClient], allowed: set[str]
) -> None:
    numbers = seed(env, settings)
    scanned: set[str] = set()
    findings: list[str] = []
    for role, paths in PAGES.items():
        for path in paths:
            url = path.format(**numbers)
            page = clients[role].get(url)
            assert page.status_code in (200, 404), (role, url, page.status_code)
            findings += [f"{role} {url}: {w}" for w in english_words(page.text, allowed)]
            scanned.add(_route_of(env, url))
    with TestClient(env.app) as anonymous:
        findings += [f"/login: {w}" for w in english_words(anonymous.get("/login").text, allowed)]
    assert findings == [], "\n".join(sorted(set(findings)))
    missing = _page_routes(env) - scanned - set(NOT_PAGES)
    assert missing == set(), "pages nobody scans"


def _page_routes(env: ConsoleEnv) -> set[str]:
    from fastapi.routing import APIRoute

    return {
        r.path
        for r in env.app.routes
        if isinstance(r, APIRoute)
        and "GET" in r.methods
        and not r.path.startswith(("/api/", "/healthz", "/metrics"))
    }


def _route_of(env: ConsoleEnv, url: str) -> str:
    from fastapi.routing import APIRoute
    from starlette.routing import Match

    scope = {"type": "http", "path": url.split("?")[0], "method": "GET"}
    for route in env.app.routes:
        if isinstance(route, APIRoute) and route.matches(scope)[0] == Match.FULL:
            return route.path
    return url


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_validation_errors_of_the_editors_read_in_chinese(
    env: ConsoleEnv, settings: Settings, clients: dict[str, TestClient], allowed: set[str]
) -> None:
    """The wrong values the manager types carry a digit here (so they count as ids): what
    is checked is the editors' own words around them."""
    manager = clients["manager"]
    page = manager.get("/manage/menu")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    broken_menu = {
        "csrf_token": token,
        "prompt": "咨询请按1。",
        "o0_key": "1", "o0_label": "咨询", "o0_action": "ask", "o0_value": "",
        "o1_key": "1", "o1_label": "", "o1_action": "intake", "o1_value": "v9",
        "o2_key": "0", "o2_label": "专席", "o2_action": "transfer", "o2_value": "q9",
        "o3_key": "x", "o3_label": "下级", "o3_action": "submenu",
    }  # fmt: skip
    answers = {
        "menu check": manager.post("/manage/menu/check", data=broken_menu),
        "menu save": manager.post("/manage/menu/save", data=broken_menu),
        "menu yaml": manager.post("/manage/menu/yaml", data={"csrf_token": token, "content": "["}),
        "menu mapping": manager.post(
            "/manage/menu/yaml", data={"csrf_token": token, "content": "options: 3\nx9: 1"}
        ),
        "kb entry": manager.post(
            "/manage/kb/save",
            data={"csrf_token": token, "id": "编号 9!", "is_new": "true", "question": "问"},
        ),
        "kb empty answer": manager.post(
            "/manage/kb/save",
            data={"csrf_token": token, "id": "new-1", "is_new": "true", "question": "问"},
        ),
        "kb import type": manager.post(
            "/manage/kb/import",
            data={"csrf_token": token},
            files={"file": ("kb.txt", b"x", "text/plain")},
        ),
        "kb import csv": manager.post(
            "/manage/kb/import",
            data={"csrf_token": token},
            files={"file": ("kb.csv", b"id,topic\nx,y\n", "text/csv")},
        ),
        "kb import yaml": manager.post(
            "/manage/kb/import",
            data={"csrf_token": token},
            files={"file": ("kb.yaml", b"- {id: a, topic: b, c9: c}\n", "text/yaml")},
        ),
        "prompt empty": manager.post(
            "/manage/prompts/save", data={"csrf_token": token, "p_greeting": " "}
        ),
        "recording": manager.post(
            "/manage/prompts/upload",
            data={"csrf_token": token, "prompt_id": "greeting"},
            files={"file": ("a.wav", b"RIFF0000WAVEfmt ", "audio/wav")},
        ),
        "kb retire missing": manager.post(
            "/manage/kb/no-such-entry/retire", data={"csrf_token": token}
        ),
    }
    findings = []
    for name, answer in answers.items():
        assert answer.status_code in (200, 404, 409, 422), (name, answer.status_code)
        assert answer.status_code == 404 or re.search(
            r'class="(flash err|problems)"', answer.text
        ), name
        findings += [f"{name}: {w}" for w in english_words(answer.text, allowed)]
    assert findings == [], "\n".join(findings)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_figures_csv_reads_in_chinese(
    env: ConsoleEnv, settings: Settings, clients: dict[str, TestClient], allowed: set[str]
) -> None:
    seed(env, settings)
    exported = clients["manager"].get("/manage/figures.csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0] == ["分类", "项目", "数值"]
    findings = [
        f"{row}: {w}"
        for row in rows
        for cell in row[:2]
        for w in english_words(f"<p>{cell}</p>", allowed)
    ]
    assert findings == [], "\n".join(findings)


def test_the_scanner_finds_english_and_lets_ids_pass() -> None:
    html = (
        '<p title="caller hung up">工单 20261129-0001 call-31-1 现场.png 12345 8 kHz</p>'
        '<code>greeting</code><option translate="no">goodbye</option><script>var x</script>'
        "<td>main › ask:caller_wants</td><li>satisfaction: 满意</li>"
    )
    assert english_words(html, ALLOWED) == [
        "'caller' in 'caller'",
        "'hung' in 'hung'",
        "'up' in 'up'",
        "'main' in 'main'",
        "'ask' in 'ask:caller_wants'",
        "'caller' in 'ask:caller_wants'",
        "'wants' in 'ask:caller_wants'",
        "'satisfaction' in 'satisfaction:'",
    ]
