"""Console security: password guessing, cookies behind the proxy, headers, the API docs.

The real app over a real store and the machine's Redis (a key prefix per test). Client
addresses come from the TEST-NET ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24);
Starlette's TestClient sends nothing over a network, it only names the peer.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.types import ASGIApp, Receive, Scope, Send

from hotline.logs import mask_name
from hotline.settings import Settings
from tests.console.helpers import PASSWORD, ConsoleEnv, make_env
from tests.tickets.support import make_draft
from tickets.redis_embedded import free_port
from tickets.service import TicketService

CONSOLE = Path(__file__).resolve().parents[2] / "console"
ATTACKER = ("192.0.2.66", 40000)
NEIGHBOUR = ("192.0.2.67", 40000)
PROXY = ("192.0.2.10", 40000)
ELSEWHERE = ("198.51.100.7", 40000)
FREE = 5  # console.login_free_attempts (default)
ADDRESS_FREE = 20  # console.login_address_free_attempts (default)


def with_console(settings: Settings, **console: object) -> Settings:
    # Locks long enough that none runs out while a test is still guessing.
    console = {"login_lock_base_s": 600.0, **console}
    return settings.model_copy(update={"console": settings.console.model_copy(update=console)})


@pytest.fixture
def locking(settings: Settings) -> Settings:
    return with_console(settings)


@pytest.fixture
def env(locking: Settings, service: TicketService) -> ConsoleEnv:
    return make_env(locking, service)


def login_csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    return match.group(1)


def page_login(
    client: TestClient, username: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """The login form as a browser sends it; the CSRF cookie is sent by hand, since a
    Secure cookie would not travel over the test's plain http."""
    form = client.get("/login", headers=headers)
    token = login_csrf(form)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        headers={**(headers or {}), "Cookie": f"hotline_login_csrf={token}"},
        follow_redirects=False,
    )


def api_login(client: TestClient, username: str, password: str) -> httpx.Response:
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def set_cookie(response: httpx.Response, name: str) -> str:
    lines = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    found = [line for line in lines if line.startswith(f"{name}=")]
    assert found, lines
    return found[0]


def is_secure(cookie_line: str) -> bool:
    return any(part.strip().lower() == "secure" for part in cookie_line.split(";"))


# ---- password guessing ----


def test_guessing_then_the_right_password_gets_429_on_the_login_page(env: ConsoleEnv) -> None:
    with TestClient(env.app, client=ATTACKER) as client:
        for _ in range(FREE + 1):
            wrong = page_login(client, "op", "guess-1234")
            assert wrong.status_code == 303 and "err=" in wrong.headers["location"]
        right = page_login(client, "op", PASSWORD)
    assert right.status_code == 429
    assert "登录失败次数过多" in right.text and "hotline_session" not in right.headers.get(
        "set-cookie", ""
    )
    assert 1 <= int(right.headers["retry-after"]) <= 900
    assert 'name="csrf_token"' in right.text  # the form is there to try again later


def test_guessing_then_the_right_password_gets_429_in_json_from_the_api(env: ConsoleEnv) -> None:
    with TestClient(env.app, client=ATTACKER) as client:
        statuses = [api_login(client, "root", f"guess-{i}").status_code for i in range(150)]
        right = api_login(client, "root", PASSWORD)
    assert statuses[:FREE] == [401] * FREE
    assert statuses.count(429) >= 150 - FREE - 1  # after the lock nothing is checked
    assert right.status_code == 429
    assert "登录失败次数过多" in right.json()["detail"]
    assert int(right.headers["retry-after"]) >= 1


def test_failed_logins_and_locks_are_logged_with_the_name_masked(
    env: ConsoleEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="console.login")
    with TestClient(env.app, client=ATTACKER) as client:
        for _ in range(FREE + 2):
            api_login(client, "root", "guess-1234")
    records = [r for r in caplog.records if r.name == "console.login"]
    failed = [r for r in records if getattr(r, "event", "") == "login_failed"]
    locked = [r for r in records if getattr(r, "event", "") == "login_locked"]
    refused = [r for r in records if getattr(r, "event", "") == "login_refused"]
    assert len(failed) == FREE + 1 and len(locked) == 1 and len(refused) == 1
    for record in failed + locked + refused:
        assert record.user_name == mask_name("root") == "r***"  # type: ignore[attr-defined]
        assert record.client == ATTACKER[0]  # type: ignore[attr-defined]
        assert "root" not in record.getMessage() and ATTACKER[0] in record.getMessage()


def test_a_successful_login_clears_the_accounts_count(env: ConsoleEnv) -> None:
    with TestClient(env.app, client=ATTACKER) as client:
        for _ in range(FREE - 1):
            assert api_login(client, "op", "typo-1234").status_code == 401
        assert api_login(client, "op", PASSWORD).status_code == 200
        # Without the reset the account would be locked after the second of these.
        for _ in range(FREE):
            assert api_login(client, "op", "typo-1234").status_code == 401
        assert api_login(client, "op", "typo-1234").status_code == 401  # FREE + 1: locked
        assert api_login(client, "op", PASSWORD).status_code == 429


def test_one_address_guessing_many_names_is_locked_out_but_others_are_not(
    env: ConsoleEnv,
) -> None:
    with TestClient(env.app, client=ATTACKER) as attacker:
        for i in range(ADDRESS_FREE + 1):
            assert api_login(attacker, f"user{i}", "guess-1234").status_code == 401
        assert api_login(attacker, "op", PASSWORD).status_code == 429
    with TestClient(env.app, client=NEIGHBOUR) as neighbour:
        assert api_login(neighbour, "op", PASSWORD).status_code == 200


def test_a_lock_holds_on_every_console_worker(
    locking: Settings, service: TicketService, env: ConsoleEnv
) -> None:
    from console.app import create_app

    other_worker = create_app(locking, service=service)
    with TestClient(env.app, client=ATTACKER) as first:
        for _ in range(FREE + 1):
            api_login(first, "boss", "guess-1234")
    with TestClient(other_worker, client=NEIGHBOUR) as second:
        assert api_login(second, "boss", PASSWORD).status_code == 429


def test_the_counts_kept_in_redis_expire(env: ConsoleEnv, locking: Settings) -> None:
    with TestClient(env.app, client=ATTACKER) as client:
        for _ in range(FREE + 1):
            api_login(client, "op", "guess-1234")
    queue_redis = env.service.queue.redis
    prefix = f"{locking.tickets.key_prefix}:login:"
    keys = list(queue_redis.scan_iter(f"{prefix}*"))
    kinds = sorted(str(key).removeprefix(prefix).rsplit(":", 1)[0] for key in keys)
    assert kinds == ["fail:account", "fail:address", "lock:account"]
    for key in keys:  # nothing stays behind for ever
        longest = max(locking.console.login_window_s, locking.console.login_lock_max_s)
        assert 0 < queue_redis.pttl(key) <= longest * 1000


def test_without_redis_each_worker_still_throttles_and_says_so(
    env: ConsoleEnv, caplog: pytest.LogCaptureFixture
) -> None:
    guard = env.app.state.console.logins
    guard.throttle.redis = redis.Redis(
        port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    caplog.set_level(logging.INFO, logger="console.login")
    with TestClient(env.app, client=ATTACKER) as client:
        for _ in range(FREE + 1):
            assert api_login(client, "op", "guess-1234").status_code == 401
        assert api_login(client, "op", PASSWORD).status_code == 429
    degraded = [r for r in caplog.records if getattr(r, "event", "") == "login_throttle_degraded"]
    assert len(degraded) == 1 and degraded[0].levelno >= logging.ERROR  # once, loudly


def test_locks_double_with_each_failure_up_to_the_limit_and_run_out() -> None:
    """The back-off itself, on the in-process counts with a clock the test moves."""
    from console.login import LoginThrottle, Policy

    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    policy = Policy(account_free=2, address_free=100, base_s=10, max_s=35, window_s=3600)
    throttle = LoginThrottle(dead, "test", policy)
    now = [1000.0]
    throttle.memory.clock = lambda: now[0]
    locks = []
    for _ in range(6):
        assert throttle.retry_after("op", "192.0.2.1") == 0
        locks.append(throttle.failed("op", "192.0.2.1")["account"][1])
        now[0] += locks[-1]  # wait exactly as long as told, then try again
    assert locks == [0, 0, 10, 20, 35, 35]
    throttle.failed("op", "192.0.2.1")
    assert throttle.retry_after("op", "192.0.2.1") == 35
    now[0] += 3601  # a quiet window: the lock ran out and the count starts again
    assert throttle.retry_after("op", "192.0.2.1") == 0
    assert throttle.failed("op", "192.0.2.1")["account"] == (1, 0)
    assert throttle.failed("op", "192.0.2.1")["account"] == (2, 0)
    throttle.succeeded("op")
    assert throttle.failed("op", "192.0.2.1")["account"] == (1, 0)


class GatedHasher(PasswordHasher):
    """Cheap argon2 that holds every check until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.gate = threading.Event()
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.threads.append(threading.current_thread().name)
        self.gate.wait(60)
        return super().verify(hash, password)


class CountArrivals:
    """Counts requests to the token endpoint as they reach the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.arrived = app, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/v1/auth/token":
            self.arrived += 1
        await self.app(scope, receive, send)


def wait_until(condition: object, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never came true"
        time.sleep(0.01)


def test_a_flood_of_logins_leaves_the_other_requests_answered(env: ConsoleEnv) -> None:
    """48 logins held inside argon2 (more than the 40 threads pages share): a page still
    answers, the hashing stays on its own threads, and the queue in front is bounded."""
    flood = 48
    hasher = GatedHasher()
    counted = CountArrivals(env.app)
    statuses: list[int] = []
    with TestClient(counted) as client:
        operator = env.token(client, "op")
        env.accounts.hasher = hasher

        def guess(i: int) -> None:
            statuses.append(api_login(client, f"flood{i}", "guess-1234").status_code)

        guesses = [threading.Thread(target=guess, args=(i,)) for i in range(flood)]
        for thread in guesses:
            thread.start()
        wait_until(lambda: counted.arrived == flood + 1 and hasher.threads)
        answered: list[int] = []
        page = threading.Thread(
            target=lambda: answered.append(
                client.get("/api/v1/tickets", headers=operator).status_code
            )
        )
        page.start()
        page.join(timeout=30)  # a deadlock detector, not a speed limit
        answered_while_held = list(answered)
        hasher.gate.set()
        page.join()
        for thread in guesses:
            thread.join()
    assert answered_while_held == [200]
    assert hasher.threads and all(name.startswith("login-hash") for name in hasher.threads)
    assert sorted(set(statuses)) == [401, 503]  # the queue in front of argon2 is bounded


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.threads: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.threads.append(threading.current_thread().name)
        return super().verify(hash, password)


def test_every_name_costs_one_check_on_the_login_threads_and_a_lock_costs_none(
    env: ConsoleEnv,
) -> None:
    hasher = CountingHasher()
    env.accounts.hasher = hasher
    with TestClient(env.app, client=ATTACKER) as client:
        assert api_login(client, "nobody-here", "guess-1234").status_code == 401
        assert api_login(client, "op", "guess-1234").status_code == 401
        assert len(hasher.threads) == 2  # an unknown name is checked like a known one
        assert all(name.startswith("login-hash") for name in hasher.threads)
        for _ in range(FREE):
            api_login(client, "op", "guess-1234")
        checked = len(hasher.threads)
        assert api_login(client, "op", PASSWORD).status_code == 429
        assert len(hasher.threads) == checked  # refused unchecked: guessing costs no CPU


# ---- cookies and the proxy ----


def test_cookies_are_secure_behind_the_trusted_proxy_only(
    settings: Settings, service: TicketService
) -> None:
    env = make_env(with_console(settings, trusted_proxies=[PROXY[0]]), service)
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    with TestClient(env.app, client=PROXY) as proxy:
        form = proxy.get("/login", headers=https)
        assert is_secure(set_cookie(form, "hotline_login_csrf"))
        assert form.headers["strict-transport-security"].startswith("max-age=")
        session = page_login(proxy, "op", PASSWORD, headers=https)
        assert session.status_code == 303
        assert is_secure(set_cookie(session, "hotline_session"))
    with TestClient(env.app, client=ELSEWHERE) as forger:
        form = forger.get("/login", headers=https)
        assert not is_secure(set_cookie(form, "hotline_login_csrf"))
        assert "strict-transport-security" not in form.headers
        session = page_login(forger, "op", PASSWORD, headers=https)
        assert not is_secure(set_cookie(session, "hotline_session"))


def test_forwarded_addresses_count_only_from_the_trusted_proxy(
    settings: Settings, service: TicketService
) -> None:
    env = make_env(with_console(settings, trusted_proxies=[PROXY[0]]), service)
    with TestClient(env.app, client=ELSEWHERE) as forger:
        for i in range(ADDRESS_FREE + 1):  # a new made-up address on every guess
            forged = {"X-Forwarded-For": f"203.0.113.{i + 1}"}
            response = forger.post(
                "/api/v1/auth/token",
                json={"username": f"user{i}", "password": "guess-1234"},
                headers=forged,
            )
            assert response.status_code == 401
        assert api_login(forger, "op", PASSWORD).status_code == 429
    with TestClient(env.app, client=PROXY) as proxy:
        for i in range(ADDRESS_FREE + 1):  # one browser behind the proxy guesses
            proxy.post(
                "/api/v1/auth/token",
                json={"username": f"user{i}", "password": "guess-1234"},
                headers={"X-Forwarded-For": "203.0.113.200"},
            )
        blocked = proxy.post(
            "/api/v1/auth/token",
            json={"username": "op", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.200"},
        )
        assert blocked.status_code == 429
        colleague = proxy.post(  # another browser behind the same proxy is not locked out
            "/api/v1/auth/token",
            json={"username": "op", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.201"},
        )
        assert colleague.status_code == 200


@pytest.mark.parametrize(
    ("console", "secure"),
    [
        ({"secure_cookies": True}, True),
        ({"host": "0.0.0.0"}, True),  # auto: a console on the network never sends it bare
        ({"host": "127.0.0.1"}, False),  # auto on loopback: plain http on a developer's box
        ({"host": "0.0.0.0", "secure_cookies": False}, False),
    ],
)
def test_the_secure_cookies_setting(
    settings: Settings, service: TicketService, console: dict[str, object], secure: bool
) -> None:
    env = make_env(with_console(settings, **console), service)
    with TestClient(env.app, client=NEIGHBOUR) as client:
        form = client.get("/login")
        assert is_secure(set_cookie(form, "hotline_login_csrf")) is secure
        session = page_login(client, "op", PASSWORD)
        assert session.status_code == 303
        assert is_secure(set_cookie(session, "hotline_session")) is secure
        # A browser would drop a Secure cookie sent over plain http: the page says so.
        assert ("HTTPS" in form.text) is secure


# ---- headers ----


def policy_parts(policy: str) -> dict[str, list[str]]:
    parts = (p.split() for p in policy.split(";") if p.strip())
    return {words[0]: words[1:] for words in parts}


def test_every_response_carries_the_security_headers(env: ConsoleEnv) -> None:
    with TestClient(env.app) as client:
        responses = [
            client.get("/login"),
            client.get("/static/console.css"),
            client.get("/api/v1/tickets"),  # 401
            client.get("/no-such-page"),
            client.get("/healthz"),
        ]
    with TestClient(env.app, base_url="https://testserver") as tls:
        secure = tls.get("/login")
    for response in [*responses, secure]:
        headers = response.headers
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] in {"same-origin", "no-referrer", "strict-origin"}
        policy = policy_parts(headers["content-security-policy"])
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
        assert "http" not in headers["content-security-policy"]  # no CDN anywhere
    assert "strict-transport-security" not in responses[0].headers
    assert int(secure.headers["strict-transport-security"].split("=")[1]) >= 180 * 86400


def test_templates_and_scripts_need_nothing_the_policy_forbids() -> None:
    """No inline script, handler or style in any template (the CSP would block them),
    and htmx told not to inject its own style or evaluate attribute code."""
    offending = re.compile(
        r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|hx-on|javascript:|js:", re.I
    )
    found = {
        path.name: offending.findall(path.read_text())
        for path in sorted((CONSOLE / "templates").glob("*.html"))
    }
    assert {name: hits for name, hits in found.items() if hits} == {}
    base = (CONSOLE / "templates" / "base.html").read_text()
    assert '"includeIndicatorStyles":false' in base.replace(" ", "")
    assert '"allowEval":false' in base.replace(" ", "")


# ---- API docs ----


def test_api_docs_are_for_admins_only_and_load_nothing_from_outside(env: ConsoleEnv) -> None:
    with TestClient(env.app) as anonymous:
        assert anonymous.get("/docs", follow_redirects=False).status_code == 303
        assert anonymous.get("/redoc", follow_redirects=False).status_code == 303
        assert anonymous.get("/openapi.json").status_code == 401
    for user in ("op", "boss"):
        with TestClient(env.app) as staff:
            assert page_login(staff, user, PASSWORD).status_code == 303
            assert "/docs" not in staff.get("/").text  # not offered in the navigation
            assert staff.get("/docs").status_code == 403
            assert staff.get("/redoc").status_code == 403
            assert staff.get("/openapi.json").status_code == 403
            assert staff.get("/openapi.json", headers=env.token(staff, user)).status_code == 403
    with TestClient(env.app) as admin:
        assert page_login(admin, "root", PASSWORD).status_code == 303
        assert 'href="/docs"' in admin.get("/").text
        assert "/api/v1/tickets" in admin.get("/openapi.json").json()["paths"]
        for page in ("/docs", "/redoc"):
            html = admin.get(page)
            assert html.status_code == 200
            assert not re.search(r"(src|href)=\"(https?:)?//", html.text), html.text
            assets = re.findall(r"(?:src|href)=\"(/[^\"]+)\"", html.text)
            assert any(a.endswith(".js") for a in assets)
            for asset in assets:
                assert admin.get(asset).status_code == 200, asset
            policy = policy_parts(html.headers["content-security-policy"])
            assert policy["script-src"] == ["'self'"]
            assert "http" not in html.headers["content-security-policy"]


@pytest.fixture
def served(settings: Settings, service: TicketService) -> Iterator[str]:
    from console.server import serve_in_thread

    env = make_env(settings, service)
    with serve_in_thread(env.app) as base:
        yield base


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pages_and_docs_run_in_a_browser_under_the_policy(
    browser: object, served: str, service: TicketService
) -> None:
    """Chromium reports every CSP violation: none on the pages, none for a script or a
    style on the docs, and no request leaves the console."""
    page = browser.new_page()  # type: ignore[attr-defined]
    messages: list[str] = []
    requested: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    blocked: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "requestfailed",
        lambda request: "csp" in (request.failure or "").lower() and blocked.append(request.url),
    )
    page.goto(f"{served}/login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    page.wait_for_selector("#live.on")  # console.js ran and the event stream is open
    popped = service.intake(make_draft(1))
    service.screen_pop(popped.number, "8003")  # root's extension
    page.click("#pop-card [data-action=close-pop]")  # a handler from console.js, not inline
    page.wait_for_selector("#pop-card", state="detached")
    page.goto(f"{served}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    page.goto(f"{served}/redoc")
    page.wait_for_selector("[role=search], .api-content, h1")
    page.close()
    violations = [m for m in messages if "Content Security Policy" in m or "Refused" in m]
    # ReDoc always draws an "API docs by Redocly" logo from its CDN; the policy blocks it
    # (that is the policy working) and ReDoc hides the broken image.
    assert [m for m in violations if "cdn.redoc.ly/redoc/logo-mini.svg" not in m] == []
    outside = [url for url in requested if not url.startswith((served, "data:", "blob:"))]
    assert outside == blocked  # whatever tried to leave was stopped by the policy
