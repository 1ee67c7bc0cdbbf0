"""Operators' pages: login, the workbench (my queue, shared queue, live), the ticket, search."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from console.app import Console, get_console
from console.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginRequired,
    page_login,
    page_role,
)
from console.login import LoginBusy, LoginLocked, request_address
from console.security import https_needed_but_missing, secure_cookies
from tickets.accounts import LoginSession, Role
from tickets.dialer import DialerError
from tickets.draft import RequestType, Urgency
from tickets.service import pop_channel
from tickets.ticket import Satisfaction, Status, TicketEdit, TicketError

router = APIRouter(include_in_schema=False)
NUMBER = r"^\d{8}-\d{4,6}$"
Number = Annotated[str, Query(pattern=NUMBER)]
Login = Annotated[LoginSession, Depends(page_login)]
Ctx = Annotated[Console, Depends(get_console)]


def render(
    console: Console,
    request: Request,
    name: str,
    login: LoginSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    context.update(
        login=login,
        account=login.account if login else None,
        csrf=login.csrf_token if login else "",
        msg=request.query_params.get("msg", "")[:200],
        err=context.get("err") or request.query_params.get("err", "")[:300],
    )
    return console.templates.TemplateResponse(request, name, context, status_code=status_code)


def back(path: str, msg: str = "", err: str = "") -> RedirectResponse:
    query = f"?msg={quote(msg)}" if msg else f"?err={quote(err)}" if err else ""
    return RedirectResponse(path + query, status_code=303)


def _check_number(number: str) -> str:
    import re

    if not re.match(NUMBER, number):
        raise HTTPException(404, "没有这个工单")
    return number


# ---- login ----


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, console: Ctx, next: str = "/") -> Response:
    return _login_page(request, console, next)


def _login_page(
    request: Request,
    console: Console,
    next: str,
    status_code: int = 200,
    err: str = "",
    retry_after: str = "",
) -> Response:
    """The form with a fresh login CSRF token (cookie and hidden field)."""
    token = secrets.token_urlsafe(24)
    response = render(
        console,
        request,
        "login.html",
        None,
        status_code=status_code,
        login_csrf=token,
        next=_safe_next(next),
        err=err,
        https_missing=https_needed_but_missing(request, console.settings.console),
    )
    if retry_after:
        response.headers["Retry-After"] = retry_after
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request, console.settings.console),
    )
    return response


@router.post("/login")
async def login(
    request: Request,
    console: Ctx,
    username: Annotated[str, Form(max_length=80)],
    password: Annotated[str, Form(max_length=200)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=300)] = "/",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        return back("/login", err="页面已过期，请重新登录")
    try:
        account = await console.logins.sign_in(username.strip(), password, request_address(request))
    except LoginLocked as locked:
        return _login_page(request, console, next, 429, locked.message, locked.retry_after_header)
    except LoginBusy as busy:
        return _login_page(request, console, next, 503, busy.message, "5")
    if account is None:
        return back("/login", err="用户名或密码错误")
    session = await asyncio.to_thread(console.accounts.open_session, account, "web")
    response = RedirectResponse(_safe_next(next), status_code=303)
    secure = secure_cookies(request, console.settings.console)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=console.settings.console.session_lifetime_min * 60,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, httponly=True, samesite="strict", secure=secure)
    return response


@router.post("/logout")
def logout(request: Request, console: Ctx, login: Login) -> Response:
    console.accounts.close_session(login.token)
    response = RedirectResponse("/login", status_code=303)
    secure = secure_cookies(request, console.settings.console)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=secure)
    return response


def _safe_next(target: str) -> str:
    """Only local paths: never an open redirect to another site."""
    local = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if local and "\n" not in target and "\r" not in target else "/"


# ---- workbench ----


@router.get("/", response_class=HTMLResponse)
def workbench(request: Request, console: Ctx, login: Login) -> Response:
    return render(console, request, "workbench.html", login, **_queues(console, login))


@router.get("/fragments/queues", response_class=HTMLResponse)
def queues_fragment(request: Request, console: Ctx, login: Login) -> Response:
    return render(console, request, "_queues.html", login, **_queues(console, login))


def _queues(console: Console, login: LoginSession) -> dict[str, Any]:
    account = login.account
    service = console.service
    mine = [
        t
        for t in service.store.search(assigned_to=account.username, limit=100)
        if t.status != Status.CLOSED
    ]
    skills = account.skills or None
    waiting = service.queue.waiting(skills)
    tickets = {}
    for entry in waiting[:200]:
        try:
            tickets[entry.ticket] = service.store.get(entry.ticket, with_history=False)
        except TicketError:
            continue
    follow_ups = service.store.search(status=Status.REPORTED, limit=50)
    return {
        "mine": mine,
        "waiting": waiting[:200],
        "waiting_total": len(waiting),
        "waiting_tickets": tickets,
        "follow_ups": follow_ups,
    }


@router.post("/claim")
def claim(request: Request, console: Ctx, login: Login) -> Response:
    ticket = console.service.claim_next(login.account)
    if ticket is None:
        return _redirect(request, "/?msg=" + quote("队列中暂无待接工单"))
    return _redirect(request, f"/tickets/{ticket.number}")


def _redirect(request: Request, target: str) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/events")
async def events(request: Request, console: Ctx, login: Login) -> StreamingResponse:
    """Server-sent events: 'pop' when a call with a ticket reaches my seat, 'queue' on change."""
    seat = login.account.seat
    pops = pop_channel(console.prefix, seat)
    touch_every = max(1.0, console.settings.tickets.claim_idle_s / 3)

    async def stream() -> AsyncIterator[str]:
        pubsub = console.events.pubsub()
        await pubsub.subscribe(f"{console.prefix}:events", pops)
        try:
            yield "retry: 2000\n\n"
            pending = await asyncio.to_thread(console.service.pending_pop, seat)
            if pending:
                yield f"event: pop\ndata: {json.dumps(pending)}\n\n"
            last_touch = 0.0
            while not await request.is_disconnected() and not console.closing.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    kind = "pop" if message["channel"] == pops else "queue"
                    yield f"event: {kind}\ndata: {message['data']}\n\n"
                if time.monotonic() - last_touch > touch_every:
                    last_touch = time.monotonic()
                    await asyncio.to_thread(console.service.keep_alive, login.account)
                    yield ": alive\n\n"
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# ---- one ticket ----


@router.get("/tickets/{number}", response_class=HTMLResponse)
def ticket_page(request: Request, console: Ctx, login: Login, number: str) -> Response:
    ticket = console.service.store.get(_check_number(number))
    pop = console.service.pending_pop(login.account.seat)
    if pop and pop.get("ticket") == number:
        console.service.clear_pop(login.account.seat)
    return render(
        console,
        request,
        "ticket.html",
        login,
        ticket=ticket,
        can_supervise=login.account.has(Role.MANAGER),
        dialer_ready=console.service.dialer is not None,
    )


@router.get("/tickets/{number}/pop", response_class=HTMLResponse)
def ticket_pop(request: Request, console: Ctx, login: Login, number: str) -> Response:
    ticket = console.service.store.get(_check_number(number), with_history=False)
    return render(console, request, "_pop.html", login, ticket=ticket)


@router.get("/tickets/{number}/recording")
def recording(console: Ctx, login: Login, number: str) -> Response:
    ticket = console.service.store.get(_check_number(number), with_history=False)
    if not ticket.recording_path:
        raise HTTPException(404, "本工单没有录音")
    root = console.settings.data_dir.resolve()
    path = Path(ticket.recording_path)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(404, "录音文件不存在")
    return FileResponse(path, media_type="audio/wav" if path.suffix == ".wav" else None)


@router.post("/tickets/{number}/edit")
def edit(
    console: Ctx,
    login: Login,
    number: str,
    type: Annotated[RequestType, Form()],
    urgency: Annotated[Urgency, Form()],
    topic: Annotated[str, Form(max_length=100)] = "",
    department: Annotated[str, Form(max_length=100)] = "",
    skill: Annotated[str, Form(max_length=40)] = "general",
    caller_name: Annotated[str, Form(max_length=80)] = "",
    callback_number: Annotated[str, Form(max_length=40)] = "",
    confidential: Annotated[bool, Form()] = False,
    where: Annotated[str, Form(max_length=500)] = "",
    when: Annotated[str, Form(max_length=200)] = "",
    who_what: Annotated[str, Form(max_length=500)] = "",
    what_happened: Annotated[str, Form(max_length=5000)] = "",
    caller_wants: Annotated[str, Form(max_length=2000)] = "",
    summary: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    path = f"/tickets/{_check_number(number)}"
    changes = TicketEdit(
        type=type,
        urgency=urgency,
        topic=topic.strip(),
        department=department.strip(),
        skill=skill,
        caller_name=caller_name,
        callback_number=callback_number,
        confidential=confidential,
        where=where,
        when=when,
        who_what=who_what,
        what_happened=what_happened,
        caller_wants=caller_wants,
        summary=summary,
    )
    return _do(path, "已保存", lambda: console.service.edit(number, changes, login.account))


@router.post("/tickets/{number}/dispatch")
def dispatch(
    console: Ctx,
    login: Login,
    number: str,
    department: Annotated[str, Form(max_length=100)],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    return _do(
        f"/tickets/{_check_number(number)}",
        f"已转办至 {department}",
        lambda: console.service.dispatch(number, department, login.account, note),
    )


@router.post("/tickets/{number}/accept")
def accept(
    console: Ctx, login: Login, number: str, note: Annotated[str, Form(max_length=2000)] = ""
) -> Response:
    return _do(
        f"/tickets/{_check_number(number)}",
        "已登记承办单位签收",
        lambda: console.service.store.accept(number, login.account.username, note),
    )


@router.post("/tickets/{number}/supervise")
def supervise(
    console: Ctx,
    login: Annotated[LoginSession, Depends(page_role(Role.MANAGER))],
    number: str,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    return _do(
        f"/tickets/{_check_number(number)}",
        "已督办",
        lambda: console.service.store.supervise(number, login.account.username, note),
    )


@router.post("/tickets/{number}/reply")
def reply(
    console: Ctx, login: Login, number: str, reply: Annotated[str, Form(max_length=5000)]
) -> Response:
    return _do(
        f"/tickets/{_check_number(number)}",
        "已登记承办单位反馈",
        lambda: console.service.store.record_reply(number, reply, login.account.username),
    )


@router.post("/tickets/{number}/call")
def call(console: Ctx, login: Login, number: str) -> Response:
    return _do(
        f"/tickets/{_check_number(number)}",
        "正在呼叫：请接起您的话机",
        lambda: console.service.call_back(number, login.account),
    )


@router.post("/tickets/{number}/follow-up")
def follow_up(
    console: Ctx, login: Login, number: str, result: Annotated[str, Form(max_length=5000)]
) -> Response:
    return _do(
        f"/tickets/{_check_number(number)}",
        "已记录回访结果",
        lambda: console.service.follow_up(number, result, login.account),
    )


@router.post("/tickets/{number}/close")
def close(
    console: Ctx,
    login: Login,
    number: str,
    satisfaction: Annotated[Satisfaction, Form()],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    return _do(
        f"/tickets/{_check_number(number)}",
        "工单已办结",
        lambda: console.service.close(number, satisfaction, login.account, note),
    )


@router.post("/tickets/{number}/release")
def release(console: Ctx, login: Login, number: str) -> Response:
    _check_number(number)
    try:
        console.service.release(number, login.account)
    except TicketError as exc:
        return back(f"/tickets/{number}", err=str(exc))
    return back("/", msg=f"工单 {number} 已退回队列")


def _do(path: str, success: str, action: Any) -> Response:
    try:
        action()
    except (TicketError, DialerError) as exc:
        return back(path, err=str(exc))
    return back(path, msg=success)


# ---- search ----


@router.get("/search", response_class=HTMLResponse)
def search(
    request: Request,
    console: Ctx,
    login: Login,
    number: Annotated[str, Query(max_length=20)] = "",
    phone: Annotated[str, Query(max_length=40)] = "",
    text: Annotated[str, Query(max_length=200)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    date_from: Annotated[str, Query(max_length=10)] = "",
    date_to: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    errors = []
    try:
        start = date.fromisoformat(date_from) if date_from else None
        end = date.fromisoformat(date_to) if date_to else None
    except ValueError:
        start = end = None
        errors.append("日期格式应为 YYYY-MM-DD")
    chosen = Status(status) if status in {s.value for s in Status} else None
    asked = any((number, phone, text, status, date_from, date_to))
    results = (
        console.service.store.search(
            number=number,
            phone=phone,
            text=text,
            status=chosen,
            date_from=start,
            date_to=end,
            limit=200,
        )
        if asked and not errors
        else []
    )
    return render(
        console,
        request,
        "search.html",
        login,
        results=results,
        asked=asked,
        form={
            "number": number,
            "phone": phone,
            "text": text,
            "status": status,
            "date_from": date_from,
            "date_to": date_to,
        },
        search_errors=errors,
    )


def install_handlers(app: FastAPI) -> None:
    """Pages answer a missing login with the login form, and errors with a page, not JSON."""

    async def to_login(request: Request, exc: Exception) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith("/api/") or request.url.path.startswith("/openapi"):
            from fastapi.exception_handlers import http_exception_handler

            return await http_exception_handler(request, exc)
        console: Console = request.app.state.console
        return console.templates.TemplateResponse(
            request,
            "error.html",
            {
                "status": exc.status_code,
                "detail": exc.detail,
                "account": None,
                "login": None,
                "csrf": "",
                "msg": "",
                "err": "",
            },
            status_code=exc.status_code,
        )

    app.add_exception_handler(LoginRequired, to_login)
    app.add_exception_handler(StarletteHTTPException, http_error)
