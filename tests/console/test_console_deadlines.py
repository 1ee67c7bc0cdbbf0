"""Countdowns on the lists and the ticket page, the deadline filter, the 班长's 超期工单."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from hotline.draft import RequestType
from hotline.settings import Settings
from tests.console.helpers import ConsoleEnv, make_env, web_client
from tests.tickets.support import make_draft
from tickets.service import TicketService
from tickets.ticket import Satisfaction, Ticket

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing


@pytest.fixture
def env(settings: Settings, service: TicketService) -> ConsoleEnv:
    return make_env(settings, service)


@pytest.fixture
def op(env: ConsoleEnv) -> Iterator[TestClient]:
    with web_client(env.app, "op") as client:
        yield client


@pytest.fixture
def boss(env: ConsoleEnv) -> Iterator[TestClient]:
    with web_client(env.app, "boss") as client:
        yield client


def at(env: ConsoleEnv, moment: datetime) -> None:
    env.service.store.clock = lambda: moment


def three(env: ConsoleEnv) -> tuple[Ticket, Ticket, Ticket]:
    """A normal complaint, a consultation due soon, one overdue, as of the returned clock."""
    service = env.service
    at(env, START - timedelta(days=10))
    late = service.intake(make_draft(1, type=RequestType.CONSULTATION, topic="路灯不亮"))
    at(env, START)
    normal = service.intake(make_draft(2, topic="夜间施工噪音"))
    soon = service.intake(make_draft(3, type=RequestType.CONSULTATION, topic="医保咨询"))
    at(env, soon.due_at - timedelta(hours=3))
    return normal, soon, late


def countdown_of(page: str, number: str) -> tuple[str, str]:
    row = re.search(rf"{number}.*?</tr>", page, re.S)
    assert row, f"{number} not listed"
    found = re.search(r'class="countdown (dl-\w+)"[^>]*>([^<]+)<', row.group(0))
    assert found, row.group(0)
    return found.group(1), found.group(2)


def test_ticket_page_counts_down_amber_then_red(env: ConsoleEnv, op: TestClient) -> None:
    normal, soon, late = three(env)
    page = op.get(f"/tickets/{soon.number}").text
    assert re.search(r'class="countdown dl-due_soon" title="即将超期">剩余 3 小时<', page)
    page = op.get(f"/tickets/{late.number}").text
    overdue = re.search(
        r'class="countdown dl-overdue" title="已超期">已超期 (\d+) 天 (\d+) 小时<', page
    )
    assert overdue
    # A consultation may wait for its answer: the 30-minute rule is for what a department
    # must act on (a complaint, as the domain's rule says).
    assert "派单超时" not in page
    page = op.get(f"/tickets/{normal.number}").text
    assert re.search(r'class="countdown dl-normal" title="正常">剩余 \d+ 天 \d+ 小时<', page)
    assert "派单超时" in page  # the complaint, still in 受理 hours after intake


def test_workbench_and_search_lists_show_countdowns(env: ConsoleEnv, op: TestClient) -> None:
    normal, soon, late = three(env)
    bench = op.get("/").text
    assert countdown_of(bench, soon.number) == ("dl-due_soon", "剩余 3 小时")
    assert countdown_of(bench, late.number)[0] == "dl-overdue"
    results = op.get("/search", params={"text": "噪音"}).text
    assert countdown_of(results, normal.number)[0] == "dl-normal"


def test_search_filters_by_deadline(env: ConsoleEnv, op: TestClient) -> None:
    normal, soon, late = three(env)

    def listed(which: str) -> set[str]:
        page = op.get("/search", params={"deadline": which}).text
        table = page.split('id="results"')[1] if 'id="results"' in page else ""
        return set(re.findall(r"/tickets/(\d{8}-\d{4})", table))

    assert listed("overdue") == {late.number}
    assert listed("due_soon") == {soon.number}
    # All three have waited over 30 minutes; only the complaint had to be dispatched.
    assert listed("dispatch_late") == {normal.number}
    page = op.get("/search", params={"deadline": "due_soon"}).text
    assert '<option value="due_soon" selected>即将超期</option>' in page
    # An unknown filter value is no filter (and asks for nothing).
    assert 'id="results"' not in op.get("/search", params={"deadline": "x"}).text


def test_overdue_list_is_for_managers_with_counts_in_the_navigation(
    env: ConsoleEnv, op: TestClient, boss: TestClient
) -> None:
    normal, soon, late = three(env)
    assert op.get("/overdue").status_code == 403
    assert 'id="nav-overdue"' not in op.get("/").text

    nav = re.search(r'id="nav-overdue">(.*?)</a>', boss.get("/").text, re.S)
    assert nav
    assert re.findall(r">(\d+)</span>", nav.group(1)) == ["1", "1"]  # 已超期 1, 即将超期 1

    page = boss.get("/overdue").text
    assert set(re.findall(r"/tickets/(\d{8}-\d{4})", page)) == {late.number}
    assert re.search(r'class="count-dispatch_late">1<', page)
    page = boss.get("/overdue", params={"which": "due_soon"}).text
    assert set(re.findall(r"/tickets/(\d{8}-\d{4})", page)) == {soon.number}

    # Dispatched now, hours after the 30 minutes: still 派单超时 (the first dispatch counts).
    env.service.store.dispatch(normal.number, "市城市管理局", "boss")
    page = boss.get("/overdue", params={"which": "dispatch_late"}).text
    assert set(re.findall(r"/tickets/(\d{8}-\d{4})", page)) == {normal.number}
    # The clock moves past the consultation's due time: red, counted in the navigation.
    at(env, soon.due_at + timedelta(minutes=1))
    nav = re.search(r'id="nav-overdue">(.*?)</a>', boss.get("/").text, re.S)
    assert nav
    assert re.findall(r">(\d+)</span>", nav.group(1)) == ["2", "0"]


def test_managers_figures_show_on_time_and_dispatch_rates(
    env: ConsoleEnv, boss: TestClient
) -> None:
    store = env.service.store
    at(env, START)
    kept = store.create_from_draft(make_draft(1)).number
    broken = store.create_from_draft(make_draft(2)).number
    answered = store.create_from_draft(make_draft(3, type=RequestType.CONSULTATION)).number
    at(env, START + timedelta(minutes=10))
    store.dispatch(kept, "市城市管理局", "boss")
    store.close(answered, Satisfaction.SATISFIED, "boss")
    at(env, START + timedelta(hours=1))
    store.dispatch(broken, "市城市管理局", "boss")
    params = {"period": "day", "day": "2026-11-23"}
    page = boss.get("/manage/figures", params=params).text
    assert re.search(r'id="kpi-ontime">100\.0%<', page)
    assert re.search(r'id="kpi-dispatch">50\.0%<', page)
    assert re.search(r'id="kpi-dispatch-late">1<', page)
    exported = boss.get("/manage/figures.csv", params=params).text
    assert "概况,按时派单率,0.5" in exported
    assert "概况,按期办结率,1.0" in exported
    report = boss.get("/manage/report", params=params)
    assert report.status_code == 200
    assert re.search(r'id="kpi-dispatch">50\.0%<', report.text)


def test_api_filters_by_deadline(env: ConsoleEnv) -> None:
    _normal, soon, late = three(env)
    with TestClient(env.app) as client:
        headers = env.token(client, "root")
        found = client.get("/api/v1/tickets", params={"deadline": "overdue"}, headers=headers)
        assert found.status_code == 200, found.text
        assert [t["number"] for t in found.json()] == [late.number]
        soon_json = client.get("/api/v1/tickets", params={"deadline": "due_soon"}, headers=headers)
        assert [t["number"] for t in soon_json.json()] == [soon.number]
        bad = client.get("/api/v1/tickets", params={"deadline": "late"}, headers=headers)
        assert bad.status_code == 422
