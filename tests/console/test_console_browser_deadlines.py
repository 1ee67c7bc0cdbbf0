"""Deadline colours as a 班长 sees them in a real browser, under the console's strict CSP:
the stylesheet, not inline styles, paints the countdowns amber and red."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.server import serve_in_thread
from hotline.draft import RequestType
from hotline.settings import Settings
from tests.console.helpers import PASSWORD, make_env
from tests.tickets.support import make_draft
from tickets.service import TicketService

RED = "rgb(198, 40, 40)"  # --red
AMBER = "rgb(255, 240, 214)"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_manager_sees_red_and_amber_countdowns_and_the_overdue_list(
    browser: object, settings: Settings, service: TicketService
) -> None:
    env = make_env(settings, service)
    now = datetime.now(UTC)
    service.store.clock = lambda: now - timedelta(days=10)
    late = service.intake(make_draft(21, type=RequestType.CONSULTATION, topic="路灯不亮"))
    service.store.clock = lambda: now
    soon = service.intake(make_draft(22, type=RequestType.CONSULTATION, topic="医保咨询"))
    service.store.clock = lambda: soon.due_at - timedelta(hours=2)
    with serve_in_thread(env.app) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "boss")
        page.fill("input[name=password]", PASSWORD)
        page.click("button.primary")
        page.wait_for_selector("#nav-overdue")
        assert page.inner_text("#nav-overdue .dl-overdue") == "1"
        assert page.inner_text("#nav-overdue .dl-due_soon") == "1"
        page.click("#nav-overdue")
        page.wait_for_selector("#overdue-list")
        red = page.locator("#overdue-list .countdown").first
        assert red.inner_text().startswith("已超期")
        assert red.evaluate("e => getComputedStyle(e).backgroundColor") == RED
        assert late.number in page.inner_text("#overdue-list")
        page.click("#tab-due_soon")
        page.wait_for_selector(f"text={soon.number}")
        amber = page.locator("#overdue-list .countdown").first
        assert amber.inner_text() == "剩余 2 小时"
        assert amber.evaluate("e => getComputedStyle(e).backgroundColor") == AMBER
        page.close()
    assert not [e for e in errors if "Content Security Policy" in e]
