"""A work order's whole life in a real browser (Debian's chromium driven by Playwright),
by the three people who work on it, each in their own browser session:

受理 (the bot files it, it pops up on the operator's seat) -> 派单 (the operator dispatches
to 市城市管理局, 市水务局 assisting) -> 签收 (the department signs in its portal) -> 延期
(the department asks for 5 more working days, the 班长 approves) -> 反馈 (the department
replies with a photo) -> 回访 (the operator calls the citizen back) -> 办结.

With HOTLINE_SCREENSHOTS=docs the steps' screenshots are written to docs/screenshots/
(see docs/lifecycle.md), and the 班长's monitor at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.server import serve_in_thread
from hotline.draft import TranscriptLine
from hotline.settings import Settings
from tests.console.helpers import PASSWORD, add_department_users, make_env
from tests.tickets.support import make_draft
from tickets.service import TicketService
from tickets.ticket import Status

PHOTO = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200  # recognised as PNG by its first bytes
VIEWPORT = {"width": 1280, "height": 820}


def sign_in(browser: Any, base: str, username: str) -> Any:
    """A page in a browser session of its own (its own cookies), signed in."""
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    page.wait_for_load_state()
    return page


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_work_order_lives_from_intake_to_closing_in_the_browser(
    browser: Any, settings: Settings, service: TicketService, shots: Path
) -> None:
    env = make_env(settings, service)
    add_department_users(env)
    folder = shots / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page: Any, name: str) -> None:
        page.screenshot(path=str(folder / f"lifecycle-{name}.png"))

    with serve_in_thread(env.app) as base:
        operator = sign_in(browser, base, "op")
        operator.wait_for_selector("#live.on")
        # 受理: the bot files the call and connects it to seat 8001.
        draft = make_draft(
            31,
            transcript=[
                TranscriptLine(speaker="bot", text="您好，这里是12345，请讲。"),
                TranscriptLine(speaker="caller", text="海甸五西路的工地每天半夜还在施工"),
                TranscriptLine(speaker="bot", text="好的，已为您登记，正在转接人工。"),
            ],
        )
        filed = service.intake(draft)
        number = filed.number
        service.screen_pop(number, "8001")
        operator.wait_for_selector("#pop-card", timeout=5000)
        operator.click("#pop-open")
        operator.wait_for_url(f"**/tickets/{number}")
        assert operator.inner_text("#status") == "受理"
        shot(operator, "1-intake")

        # 派单: 主办 市城市管理局, 协办 市水务局.
        operator.select_option("#dispatch-form select[name=department]", "市城市管理局")
        operator.click("#dispatch-form details summary")
        operator.check("#dispatch-form input[name=co_departments][value=市水务局]")
        operator.fill("#dispatch-form input[name=note]", "请尽快核查处理")
        operator.click("#dispatch")
        operator.wait_for_selector("text=已转办至 市城市管理局")
        assert "协办 市水务局" in operator.inner_text(".ticket-head")
        shot(operator, "2-dispatch")

        # 签收: the department's portal lists it; the department signs.
        department = sign_in(browser, base, "cgj-user")
        department.wait_for_selector("#dept-working")
        assert number in department.inner_text("#dept-working")
        assert "主办" in department.inner_text("#dept-working")
        shot(department, "3-department-queue")
        department.click(f"text={number}")
        department.wait_for_selector("#dept-accept")
        department.click("#dept-accept")
        department.wait_for_selector("text=已签收，请按期办理")
        assert department.inner_text("#status") == "办理"

        # 延期: the department asks, the 班长 approves.
        department.fill("#dept-extension-form input[name=days]", "5")
        department.fill("#dept-extension-form input[name=reason]", "需协调施工单位整改")
        department.click("#dept-extension")
        department.wait_for_selector("#extension-pending")
        shot(department, "4-extension-requested")
        due_before = service.store.get(number).due_at
        leader = sign_in(browser, base, "boss")
        leader.goto(f"{base}/tickets/{number}")
        leader.wait_for_selector("#extension-request")
        assert "申请延期 5 个工作日" in leader.inner_text("#extension-request")
        shot(leader, "5-extension-approval")
        leader.fill("#extension-form input[name=note]", "同意，请按新期限办结")
        leader.click("#extension-approve")
        leader.wait_for_selector("text=已同意延期，办理期限已顺延")
        assert (service.store.get(number).due_at - due_before).days >= 5

        # 反馈: the result with a photo of the site.
        department.reload()
        reply = "已责令工地停止夜间施工，现场已复查"
        department.fill("#dept-reply-form textarea[name=reply]", reply)
        department.set_input_files(
            "#dept-reply-form input[name=files]",
            files=[{"name": "现场复查.png", "mimeType": "image/png", "buffer": PHOTO}],
        )
        department.click("#dept-reply")
        department.wait_for_selector("text=办理结果已反馈热线")
        assert department.inner_text("#status") == "反馈"
        shot(department, "6-department-reply")

        # 回访: the operator reads the reply, calls the citizen back and records it.
        operator.reload()
        assert "已责令工地停止夜间施工" in operator.inner_text("main")
        assert operator.inner_text("#attachments").startswith("现场复查.png")
        operator.click("#call")
        operator.wait_for_selector("text=正在呼叫")
        assert env.dialer.calls == [("8001", "13907551234", number)]
        operator.fill("#follow-form input[name=result]", "市民确认夜间已无施工")
        operator.click("#follow-form button")
        operator.wait_for_selector("text=已记录回访结果")
        shot(operator, "7-follow-up")

        # 办结 with the satisfaction the citizen gave.
        operator.select_option("#close-form select[name=satisfaction]", "satisfied")
        operator.click("#close")
        operator.wait_for_selector("text=工单已办结")
        assert operator.inner_text("#status") == "办结"
        operator.locator("#history").scroll_into_view_if_needed()
        shot(operator, "8-closed")

        # The 班长's monitor: the operator's console is open, so seat 8001 is online.
        leader.goto(f"{base}/monitor")
        leader.wait_for_selector("#monitor-seats")
        assert "空闲" in leader.inner_text("#monitor-seats tr.seat-idle")
        assert "8001" in leader.inner_text("#monitor-seats tr.seat-idle")
        assert leader.inner_text("#kpi-created") == "1"
        shot(leader, "9-monitor")
        for page in (operator, department, leader):
            page.context.close()

    ticket = service.store.get(number)
    assert ticket.status == Status.CLOSED and ticket.satisfaction == "satisfied"
    steps = [(h.actor, h.action) for h in ticket.history if h.action != "assigned"]
    assert steps == [
        ("bot", "created"),
        ("op", "dispatch"),
        ("cgj-user", "accept"),
        ("cgj-user", "extension_requested"),
        ("boss", "extension_approved"),
        ("cgj-user", "reply"),
        ("op", "call_placed"),
        ("op", "follow_up"),
        ("op", "close"),
    ]
