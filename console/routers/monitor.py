"""The 班长's monitor (班长监控): seats, queues, live bot calls and today's figures; the
page refreshes its body every few seconds (htmx polling: one short request, no stream
to hold open per viewer)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from console.app import Console, get_console
from console.auth import page_role
from console.monitor import read_monitor
from console.refusals import refuse_nul
from console.routers.manager import HANDLED_LABELS
from console.routers.operator import render
from tickets.accounts import LoginSession, Role

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_nul)])
Leader = Annotated[LoginSession, Depends(page_role(Role.MANAGER))]
Ctx = Annotated[Console, Depends(get_console)]
REFRESH_S = 5


async def _context(console: Console) -> dict[str, Any]:
    accounts = await asyncio.to_thread(console.accounts.list)
    monitor = await asyncio.to_thread(
        read_monitor, console.service, accounts, console.settings.tickets.timezone
    )
    return {"m": monitor, "refresh_s": REFRESH_S, "HANDLED_LABELS": HANDLED_LABELS}


@router.get("/monitor", response_class=HTMLResponse)
async def monitor(request: Request, console: Ctx, login: Leader) -> Response:
    return render(console, request, "monitor.html", login, **await _context(console))


@router.get("/fragments/monitor", response_class=HTMLResponse)
async def monitor_fragment(request: Request, console: Ctx, login: Leader) -> Response:
    return render(console, request, "_monitor.html", login, **await _context(console))
