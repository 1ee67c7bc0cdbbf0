"""The managers' console in a real browser (Debian's chromium driven by Playwright).

A manager edits the menu, breaks it and sees the validation error, fixes it, saves and
rolls back; edits a knowledge-base entry and hears the bot's answer change in the call
simulator; uploads a recording; opens the dashboard and the hot topics. With
HOTLINE_SCREENSHOTS=docs the screenshots are written to docs/.
"""

from __future__ import annotations

import io
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from console.server import serve_in_thread
from hotline.draft import Address, FiveElements
from hotline.settings import Settings
from manage.calls import record_call
from tests.console.helpers import PASSWORD, make_env
from tests.tickets.support import make_draft
from tickets.service import TicketService


def _seed_figures(service: TicketService, settings: Settings) -> None:
    now = datetime.now(UTC)
    lane = FiveElements(
        where="翠湖苑消防通道",
        what_happened="车辆堵塞消防通道",
        address=Address(district="北山区", street="北山街道", community="翠湖苑"),
    )
    tickets = [
        service.intake(make_draft(200 + i, topic="消防通道占用", elements=lane)) for i in range(3)
    ]
    turns = [
        {
            "input": "speech",
            "text": "社保卡丢了怎么办",
            "intent": "consultation",
            "kb_id": "si-card-lost",
            "answered": True,
        }
    ]
    for i in range(12):
        record = {
            "call_id": f"b{i}",
            "caller": "13800000000",
            "started_at": (now - timedelta(minutes=5 * i)).isoformat(),
            "answered_ms": 1500,
            "outcome": "answered" if i % 3 else "transfer",
            "satisfaction": 1 if i % 4 else 2,
            "turns": turns if i % 3 else [],
            "ticket": tickets[i % 3].number if i % 3 == 0 else "",
        }
        record_call(service.store, record, settings.tickets.timezone)


def _recording() -> bytes:
    t = np.arange(16000) / 16000
    samples = (6000 * np.sin(2 * np.pi * 330 * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(samples.tobytes())
    return buffer.getvalue()


def _ask(page: object, text: str) -> str:
    page.fill("#sim-text", text)  # type: ignore[attr-defined]
    count = page.locator("#sim-lines p").count()  # type: ignore[attr-defined]
    page.click("#sim-say")  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        # A function, not a string: the page's CSP forbids eval (Playwright's too).
        "count => document.querySelectorAll('#sim-lines p').length > count",
        arg=count + 1,
    )
    return page.inner_text("#sim-lines")  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_manager_edits_menu_kb_and_reads_figures(
    browser: object, settings: Settings, service: TicketService, shots: Path, tmp_path: Path
) -> None:
    env = make_env(settings, service)
    _seed_figures(service, settings)
    with serve_in_thread(env.app) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")  # type: ignore[attr-defined]
        page.goto(f"{base}/manage/menu")
        page.wait_for_url("**/login**")
        page.fill("input[name=username]", "boss")
        page.fill("input[name=password]", PASSWORD)
        page.click("button.primary")
        page.wait_for_selector("#menu-editor")

        # Break it: option 2 gets key 1, used twice on the main level.
        assert page.input_value("input[name=o1_key]") == "2"
        page.fill("input[name=o1_label]", "投诉和求助热线")
        page.fill("input[name=o1_key]", "1")
        page.click("#menu-check")
        page.wait_for_selector("#menu-problems")
        problems = page.inner_text("#menu-problems")
        assert "options[2] (key 1 投诉和求助热线)" in problems and "used twice" in problems
        page.screenshot(path=str(shots / "manager-menu-error.png"), full_page=True)
        page.click("#menu-save")  # saving is refused too, with the same problems
        page.wait_for_selector("#menu-problems")
        assert env.app.state.console._manager.config.active("menu").version == 1

        # Fix it, check (the levels are read out with audio), save.
        page.fill("input[name=o1_key]", "2")
        page.click("#menu-check")
        page.wait_for_selector("#menu-ok")
        assert "投诉和求助热线请按2" in page.inner_text("#menu-ok")
        page.fill("input[name=note]", "改名")
        page.click("#menu-save")
        page.wait_for_selector("text=菜单已保存为版本 2")
        assert page.input_value("input[name=o1_label]") == "投诉和求助热线"
        page.screenshot(path=str(shots / "manager-menu.png"), full_page=True)

        # Roll back to version 1 in one click.
        page.click("button.rollback[data-version='1']")
        page.wait_for_selector("text=已回滚到版本 1")
        assert page.input_value("input[name=o1_label]") == "投诉和求助"
        rows = page.locator("#menu-versions tbody tr")
        assert rows.count() == 3 and "boss" in rows.first.inner_text()

        # The simulator answers with the current knowledge base...
        page.goto(f"{base}/manage/simulator")
        page.click("#sim-start")
        page.wait_for_selector("#sim-text")
        assert "补卡工本费二十元" in _ask(page, "社保卡丢了怎么办")
        # ... the manager edits that entry ...
        page.goto(f"{base}/manage/kb?q=社保卡")
        page.click("#kb-entries a:has-text('si-card-lost')")
        page.wait_for_selector("#kb-form")
        answer = "社保卡丢失请先拨打人社热线挂失，再到任一合作银行网点免费补卡。"
        page.fill("textarea[name=answer]", answer)
        page.fill("input[name=note]", "补卡免费")
        page.click("#kb-save")
        page.wait_for_selector("text=已保存，新来电即按新答案回答")
        assert page.locator("#kb-history tbody tr").count() == 2
        page.screenshot(path=str(shots / "manager-kb-entry.png"), full_page=True)
        # ... and the next simulated call gets the new answer.
        page.goto(f"{base}/manage/simulator")
        page.click("#sim-start")
        page.wait_for_selector("#sim-text")
        lines = _ask(page, "社保卡丢了怎么办")
        assert answer in lines and "补卡工本费二十元" not in lines
        page.click(".keypad button:has-text('0')")
        page.wait_for_selector("text=转接人工")
        page.screenshot(path=str(shots / "manager-simulator.png"), full_page=True)

        page.goto(f"{base}/manage/kb")
        assert "si-card-lost" in page.inner_text("#kb-hits")
        page.screenshot(path=str(shots / "manager-kb.png"), full_page=True)

        # A professional recording replaces the synthetic greeting.
        page.goto(f"{base}/manage/prompts")
        page.select_option("#upload-form select[name=prompt_id]", "greeting")
        wav = tmp_path / "greeting.wav"
        wav.write_bytes(_recording())
        page.set_input_files("#upload-form input[type=file]", str(wav))
        page.click("#upload-form button")
        page.wait_for_selector("text=greeting 已使用真人录音")
        assert (Path(settings.ivr.prompts_dir) / "greeting.wav").is_file()
        page.screenshot(path=str(shots / "manager-prompts.png"))

        page.goto(f"{base}/manage/figures?period=day")
        page.wait_for_selector("#kpis")
        assert page.inner_text("#kpi-calls") == "12"
        assert page.locator("svg.chart").count() == 6
        page.screenshot(path=str(shots / "manager-figures.png"), full_page=True)

        page.goto(f"{base}/manage/hot")
        page.wait_for_selector(".cluster.growing")
        assert "消防通道占用" in page.inner_text(".cluster.growing h2")
        page.screenshot(path=str(shots / "manager-hot.png"), full_page=True)
        page.close()
