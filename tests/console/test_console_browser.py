"""The console in a real browser (Debian's chromium driven by Playwright).

An operator logs in, a call with a ticket reaches the seat and the ticket pops up live,
the operator edits, dispatches, records the reply and closes it. With
HOTLINE_SCREENSHOTS=docs the screenshots of the main pages are written to docs/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.server import serve_in_thread
from hotline.draft import TranscriptLine, TranscriptWord
from hotline.settings import Settings
from tests.console.helpers import PASSWORD, make_env
from tests.tickets.support import make_draft
from tickets.service import TicketService


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_operator_pops_edits_dispatches_and_closes(
    browser: object, settings: Settings, service: TicketService, shots: Path
) -> None:
    env = make_env(settings, service)
    night = service.intake(make_draft(11, summary="夜间来电，承诺早班回电"), callback_promised=True)
    service.intake(make_draft(12, topic="路灯不亮", urgency="urgent"), skill="general")
    service.intake(make_draft(13, topic="养老保险缴费"), skill="social_insurance")
    with serve_in_thread(env.app) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")  # type: ignore[attr-defined]
        page.goto(f"{base}/")
        page.wait_for_url("**/login**")
        page.screenshot(path=str(shots / "console-login.png"))
        page.fill("input[name=username]", "op")
        page.fill("input[name=password]", PASSWORD)
        page.click("button.primary")
        page.wait_for_selector("text=共享队列")
        page.wait_for_selector("#live.on")  # the event stream is connected
        assert night.number in page.inner_text("#queues")
        page.screenshot(path=str(shots / "console-workbench.png"), full_page=True)

        # A call carrying a ticket is connected to this operator's seat (8001).
        draft = make_draft(
            14,
            transcript=[
                TranscriptLine(speaker="bot", text="您好，这里是12345，请讲。"),
                TranscriptLine(
                    speaker="caller",
                    text="海甸五西路工地半夜还在施工",
                    confidence=0.55,
                    words=[
                        TranscriptWord(text="海甸", confidence=0.35),
                        TranscriptWord(text="五西路工地半夜还在施工", confidence=0.9),
                    ],
                ),
                TranscriptLine(speaker="bot", text="好的，已为您登记，正在转接人工。"),
            ],
        )
        popped = service.intake(draft)
        service.screen_pop(popped.number, "8001")  # as the call session does
        page.wait_for_selector("#pop-card", timeout=5000)
        assert popped.number in page.inner_text("#pop-card")
        page.wait_for_function(  # the live refresh moved it into "my tickets"
            # A function, not a string: the page's CSP forbids eval (Playwright's too).
            "number => document.querySelector('#queues .card').innerText.includes(number)",
            arg=popped.number,
        )
        page.wait_for_timeout(300)  # let the slide-in animation finish for the picture
        page.screenshot(path=str(shots / "console-screen-pop.png"))
        page.click("#pop-open")
        page.wait_for_url(f"**/tickets/{popped.number}")
        assert page.inner_text("#transcript mark") == "海甸"

        page.fill("input[name=caller_name]", "王建国")
        page.fill("input[name=topic]", "建筑施工夜间噪音")
        page.click("#save")
        page.wait_for_selector("text=已保存")
        page.screenshot(path=str(shots / "console-ticket.png"), full_page=True)
        page.select_option("#dispatch-form select[name=department]", "市生态环境局")
        page.click("#dispatch")
        page.wait_for_selector("text=已转办至 市生态环境局")
        page.fill("#reply-form textarea[name=reply]", "已责令工地停止夜间施工")
        page.click("#reply")
        page.wait_for_selector("text=已登记承办单位反馈")
        page.select_option("#close-form select[name=satisfaction]", "satisfied")
        page.click("#close")
        page.wait_for_selector("text=工单已办结")
        assert page.inner_text("#status") == "办结"

        page.goto(f"{base}/search?text=海甸五西路")
        page.wait_for_selector("#results")
        page.screenshot(path=str(shots / "console-search.png"), full_page=True)
        page.close()

    ticket = service.store.get(popped.number)
    assert ticket.status == "closed" and ticket.caller.name == "王建国"
    assert [h.action for h in ticket.history] == [
        "created",
        "assigned",
        "edited",
        "dispatch",
        "reply",
        "close",
    ]
    assert all(h.actor == "op" for h in ticket.history[2:])
