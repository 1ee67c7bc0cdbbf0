"""The 承办单位's portal: its queue of dispatched work orders, 签收, 延期, 退单, 反馈 with
files, and 协办意见. A department user sees only its own unit's work orders
(``tickets.access.department_guard``); every hotline page refuses it."""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from console.app import Console, get_console
from console.auth import page_login
from console.refusals import refuse_nul
from console.routers.operator import NUMBER, attachment_response, back, render
from tickets.accounts import LoginSession
from tickets.ticket import TicketError, TicketForbidden, TicketNotFound

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_nul)])
Ctx = Annotated[Console, Depends(get_console)]

MAX_FILES = 5
MAX_FILE_BYTES = 10_000_000
# What a reply may carry, recognised by the file's first bytes (never by its name or the
# browser's word): photos and scanned letters.
FILE_KINDS = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"%PDF-": "application/pdf",
}
REPLY_PATH = "/dept/reply"  # one fixed path, so the body limit can allow its files


async def department_login(login: Annotated[LoginSession, Depends(page_login)]) -> LoginSession:
    if not login.account.is_department:
        raise HTTPException(403, "权限不足")
    return login


Dept = Annotated[LoginSession, Depends(department_login)]


def _number(number: str) -> str:
    if not re.fullmatch(NUMBER.strip("^$"), number):
        raise HTTPException(404, "没有这个工单")
    return number


@router.get("/dept", response_class=HTMLResponse)
def queue(request: Request, console: Ctx, login: Dept) -> Response:
    unit = console.service.unit_of(login.account)
    rows = console.service.department_queue(login.account)
    working = [(t, role) for t, role in rows if t.status.value in _WORKING]
    answered = [(t, role) for t, role in rows if t.status.value not in _WORKING]
    return render(
        console, request, "dept_queue.html", login, unit=unit, working=working, answered=answered
    )


_WORKING = {"dispatched", "in_progress", "supervised"}


@router.get("/dept/tickets/{number}", response_class=HTMLResponse)
def ticket(request: Request, console: Ctx, login: Dept, number: str) -> Response:
    return _page(request, console, login, _number(number))


def _page(
    request: Request,
    console: Console,
    login: LoginSession,
    number: str,
    status_code: int = 200,
    error: str = "",
) -> Response:
    try:
        found, role = console.service.department_ticket(number, login.account)
    except (TicketForbidden, TicketNotFound) as exc:
        # The same answer for another unit's work order as for none: a unit cannot probe
        # which numbers exist.
        raise HTTPException(404, "没有这个工单，或该工单未转办给本单位") from exc
    supervision = [h for h in found.history if h.action == "supervise"]
    return render(
        console,
        request,
        "dept_ticket.html",
        login,
        status_code,
        error=error,
        unit=console.service.unit_of(login.account),
        ticket=found,
        role=role,
        supervision=supervision,
        max_files=MAX_FILES,
        max_file_mb=MAX_FILE_BYTES // 1_000_000,
    )


def _act(
    request: Request, console: Console, login: LoginSession, number: str, success: str, action: Any
) -> Response:
    number = _number(number)
    try:
        action()
    except TicketNotFound as exc:
        raise HTTPException(404, "没有这个工单，或该工单未转办给本单位") from exc
    except TicketForbidden as exc:
        try:
            return _page(request, console, login, number, 403, str(exc))
        except HTTPException:
            raise HTTPException(404, "没有这个工单，或该工单未转办给本单位") from exc
    except TicketError as exc:
        return _page(request, console, login, number, 409, str(exc))
    return back(f"/dept/tickets/{number}", msg=success)


@router.post("/dept/tickets/{number}/accept")
def accept(
    request: Request,
    console: Ctx,
    login: Dept,
    number: str,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    return _act(
        request, console, login, number, "dept_accepted",
        lambda: console.service.accept(number, login.account, note),
    )  # fmt: skip


@router.post("/dept/tickets/{number}/extension")
def request_extension(
    request: Request,
    console: Ctx,
    login: Dept,
    number: str,
    days: Annotated[int, Form(ge=1, le=60)],
    reason: Annotated[str, Form(max_length=2000)],
) -> Response:
    return _act(
        request, console, login, number, "dept_extension_requested",
        lambda: console.service.request_extension(number, days, reason, login.account),
    )  # fmt: skip


@router.post("/dept/tickets/{number}/return")
def return_ticket(
    request: Request,
    console: Ctx,
    login: Dept,
    number: str,
    reason: Annotated[str, Form(max_length=2000)],
) -> Response:
    number = _number(number)
    response = _act(
        request, console, login, number, "dept_returned",
        lambda: console.service.return_ticket(number, reason, login.account),
    )  # fmt: skip
    # Once sent back the work order is no longer the unit's to see: back to the queue.
    return back("/dept", msg="dept_returned") if response.status_code == 303 else response


@router.post("/dept/tickets/{number}/assist")
def assist(
    request: Request,
    console: Ctx,
    login: Dept,
    number: str,
    text: Annotated[str, Form(max_length=5000)],
) -> Response:
    return _act(
        request, console, login, number, "dept_assist_noted",
        lambda: console.service.assist_note(number, text, login.account),
    )  # fmt: skip


@router.post(REPLY_PATH)
async def reply(
    request: Request,
    console: Ctx,
    login: Dept,
    number: Annotated[str, Form(pattern=NUMBER)],
    reply: Annotated[str, Form(max_length=5000)],
    files: Annotated[list[UploadFile], File()] = [],  # noqa: B006 (FastAPI)
) -> Response:
    """反馈: the result of the work, with photos or letters (JPEG, PNG, PDF)."""
    chosen = [f for f in files if f.filename]
    error = ""
    loaded: list[tuple[str, str, bytes]] = []
    if len(chosen) > MAX_FILES:
        error = f"附件最多 {MAX_FILES} 个"
    for upload in chosen[:MAX_FILES]:
        data = await upload.read(MAX_FILE_BYTES + 1)
        kind = next((k for magic, k in FILE_KINDS.items() if data.startswith(magic)), None)
        name = _safe_name(upload.filename or "")
        if len(data) > MAX_FILE_BYTES:
            error = f"附件「{name}」超过 {MAX_FILE_BYTES // 1_000_000} MB"
        elif kind is None:
            error = f"附件「{name}」不是 JPG、PNG 或 PDF 文件"
        loaded.append((name, kind or "", data))
    if error:
        return _page(request, console, login, number, 422, error)
    return _act(
        request, console, login, number, "dept_replied",
        lambda: console.service.department_reply(number, reply, loaded, login.account),
    )  # fmt: skip


def _safe_name(filename: str) -> str:
    """The file's own name without any folders or control characters, at most 100 long."""
    base = PureWindowsPath(PurePosixPath(filename).name).name
    cleaned = "".join(c for c in base if c.isprintable() and c not in '<>:"/\\|?*')
    return cleaned.strip()[:100] or "附件"


@router.get("/dept/tickets/{number}/attachments/{attachment_id}")
def attachment(console: Ctx, login: Dept, number: str, attachment_id: int) -> Response:
    try:
        console.service.department_ticket(_number(number), login.account)
        info, data = console.service.store.attachment(number, attachment_id)
    except (TicketForbidden, TicketNotFound) as exc:
        raise HTTPException(404, "没有这个附件") from exc
    return attachment_response(info, data)
