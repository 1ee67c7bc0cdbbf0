"""Operators' pages: login, the workbench (my queue, shared queue, live), the ticket, search."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from console import messages
from console.app import Console, get_console
from console.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginRequired,
    page_login,
    page_role,
    same_token,
)
from console.login import LoginBusy, LoginLocked, request_address
from console.monitor import PRESENCE_TTL_S, presence_key
from console.recordings import find_recording
from console.refusals import PAGE_DETAILS, error_page, refuse_nul
from console.security import https_needed_but_missing, secure_cookies
from console.streams import StreamSlots
from hotline.draft import Caller, FiveElements, RequestType, TicketDraft, Urgency
from tickets.access import check_sees_overdue_list
from tickets.accounts import Account, LoginSession, Role
from tickets.deadlines import FILTERS
from tickets.dialer import DialerError
from tickets.service import TicketService, pop_channel
from tickets.ticket import (
    AttachmentInfo,
    CallbackOutcome,
    InvalidTransition,
    Satisfaction,
    Status,
    Ticket,
    TicketEdit,
    TicketError,
    TicketForbidden,
    TicketNotFound,
)

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_nul)])
NUMBER = r"^\d{8}-\d{4,6}$"
Number = Annotated[str, Query(pattern=NUMBER)]
# The hotline's own pages: a 承办单位's user has its own (console.routers.department).
Login = Annotated[LoginSession, Depends(page_role(Role.OPERATOR))]
ManagerLogin = Annotated[LoginSession, Depends(page_role(Role.MANAGER))]
AnyLogin = Annotated[LoginSession, Depends(page_login)]
Ctx = Annotated[Console, Depends(get_console)]


def render(
    console: Console,
    request: Request,
    name: str,
    login: LoginSession | None,
    status_code: int = 200,
    *,
    error: str = "",
    details: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page; its banners come from the catalogue by the query's keys (see
    console.messages), or ``error`` when this very response reports a refusal."""
    query = request.query_params
    context.update(
        login=login,
        account=login.account if login else None,
        csrf=login.csrf_token if login else "",
        msg=messages.banner(messages.NOTICES, query.get("msg", ""), query, details),
        err=error or messages.banner(messages.PROBLEMS, query.get("err", ""), query, details),
    )
    if login is not None and not name.startswith("_") and "callbacks_due" not in context:
        # The count beside 回电清单 in the menu of whole pages (fragments have no menu).
        context["callbacks_due"] = console.service.count_callbacks_for(login.account)
    return console.templates.TemplateResponse(request, name, context, status_code=status_code)


def back(path: str, msg: str = "", err: str = "", **details: object) -> RedirectResponse:
    """Redirect (303) to ``path`` with a message key from console.messages, never text."""
    return RedirectResponse(messages.link(path, msg, err, **details), status_code=303)


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
        error=err,
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
    if not expected or not same_token(csrf_token, expected):
        return back("/login", err="login_expired")
    try:
        account = await console.logins.sign_in(username.strip(), password, request_address(request))
    except LoginLocked as locked:
        return _login_page(request, console, next, 429, locked.message, locked.retry_after_header)
    except LoginBusy as busy:
        return _login_page(request, console, next, 503, busy.message, "5")
    if account is None:
        return back("/login", err="bad_login")
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
def logout(request: Request, console: Ctx, login: AnyLogin) -> Response:
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
def workbench(request: Request, console: Ctx, login: AnyLogin) -> Response:
    if login.account.is_department:
        return RedirectResponse("/dept", status_code=303)
    if not login.account.has(Role.OPERATOR):
        raise HTTPException(403, "权限不足")
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
    follow_ups = [
        t
        for t in service.store.search(status=Status.REPORTED, limit=50)
        if service.may_work_on(t, account)
    ]
    return {
        "mine": mine,
        # 延期 requests wait for a 班长's decision.
        "extensions": service.store.pending_extensions() if account.leads_shift else [],
        "waiting": waiting[:200],
        "waiting_total": len(waiting),
        "waiting_tickets": tickets,
        "follow_ups": follow_ups,
    }


@router.post("/claim")
def claim(request: Request, console: Ctx, login: Login) -> Response:
    ticket = console.service.claim_next(login.account)
    if ticket is None:
        return _redirect(request, messages.link("/", msg="queue_empty"))
    return _redirect(request, f"/tickets/{ticket.number}")


def _redirect(request: Request, target: str) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/events")
async def events(request: Request, console: Ctx, login: Login) -> Response:
    """Server-sent events: 'pop' when a call with a ticket reaches my seat, 'queue' on change.

    At most ``console.max_streams_per_session`` per login (console.streams): one more is
    refused with 429 while the others stay open."""
    slots = StreamSlots(
        console.events, console.prefix, console.settings.console.max_streams_per_session
    )
    slot = await slots.admit(login.token)
    if slot is None:
        return PlainTextResponse(
            f"实时连接过多：同一登录最多同时打开 {slots.per_session} 个，请关闭多余的窗口",
            status_code=429,
            headers={"Retry-After": "30"},
        )
    return StreamingResponse(
        _event_stream(request, console, login, slots, slot),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _event_stream(
    request: Request, console: Console, login: LoginSession, slots: StreamSlots, slot: str
) -> AsyncIterator[str]:
    seat = login.account.seat
    pops = pop_channel(console.prefix, seat)
    touch_every = max(1.0, console.settings.tickets.claim_idle_s / 3)
    pubsub = console.events.pubsub()
    try:
        await pubsub.subscribe(f"{console.prefix}:events", pops)
        yield "retry: 2000\n\n"
        await _mark_present(console, login)
        pending = await asyncio.to_thread(console.service.pending_pop, seat)
        if pending:
            yield f"event: pop\ndata: {json.dumps(pending)}\n\n"
        last_touch, last_seen = 0.0, time.monotonic()
        while not await request.is_disconnected() and not console.closing.is_set():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                kind = "pop" if message["channel"] == pops else "queue"
                yield f"event: {kind}\ndata: {message['data']}\n\n"
            if time.monotonic() - last_seen > slots.heartbeat_s:
                last_seen = time.monotonic()
                await slots.seen(login.token, slot)
                await _mark_present(console, login)
            if time.monotonic() - last_touch > touch_every:
                last_touch = time.monotonic()
                await asyncio.to_thread(console.service.keep_alive, login.account)
                yield ": alive\n\n"
    finally:
        # Shielded: when the client's going away cancels this task, the place must still
        # be given back (else it counts until it goes stale).
        with anyio.CancelScope(shield=True):
            await slots.release(login.token, slot)
            await pubsub.unsubscribe()
            await pubsub.aclose()


async def _mark_present(console: Console, login: LoginSession) -> None:
    """The seat is online while its live stream is open (the 班长's monitor reads it)."""
    key = presence_key(console.prefix, login.account.seat)
    await console.events.set(key, login.account.username, ex=PRESENCE_TTL_S)


# ---- the fields of a work order: one form for the ticket page and 新建工单 ----


class TicketForm(BaseModel):
    """What an operator types about a work order, as both forms send it."""

    type: RequestType
    urgency: Urgency
    skill: str = Field(default="general", max_length=40)
    topic: str = Field(default="", max_length=100)
    department: str = Field(default="", max_length=100)
    caller_name: str = Field(default="", max_length=80)
    callback_number: str = Field(default="", max_length=40)
    confidential: bool = False
    where: str = Field(default="", max_length=500)
    when: str = Field(default="", max_length=200)
    who_what: str = Field(default="", max_length=500)
    what_happened: str = Field(default="", max_length=5000)
    caller_wants: str = Field(default="", max_length=2000)
    summary: str = Field(default="", max_length=5000)

    def edit(self) -> TicketEdit:
        values = self.model_dump()
        return TicketEdit(
            **{**values, "topic": self.topic.strip(), "department": self.department.strip()}
        )

    def draft(self) -> TicketDraft:
        text = {k: v.strip() if isinstance(v, str) else v for k, v in self.model_dump().items()}
        return TicketDraft(
            type=self.type,
            urgency=self.urgency,
            topic=text["topic"],
            department=text["department"],
            caller=Caller(
                name=text["caller_name"],
                callback_number=text["callback_number"],
                confidential=self.confidential,
            ),
            elements=FiveElements.model_validate({k: text[k] for k in FIVE_ELEMENTS}),
            summary=text["summary"],
            handover_reason="人工登记",
        )

    def shown(self) -> dict[str, str]:
        """The values to fill the form again with (after a refusal)."""
        return {k: v.value if hasattr(v, "value") else v for k, v in self.model_dump().items()}


class NewTicketForm(TicketForm):
    callback_promised: bool = False


FIVE_ELEMENTS = ("where", "when", "who_what", "what_happened", "caller_wants")


@router.get("/tickets/new", response_class=HTMLResponse)
def new_ticket_form(request: Request, console: Ctx, login: Login) -> Response:
    skill = (login.account.skills or list(console.settings.tickets.skills))[0]
    form = NewTicketForm(type=RequestType.CONSULTATION, urgency=Urgency.NORMAL, skill=skill)
    return render(console, request, "new_ticket.html", login, form=form.shown())


@router.post("/tickets/new")
def new_ticket(
    request: Request,
    console: Ctx,
    login: Login,
    form: Annotated[NewTicketForm, Form()],
) -> Response:
    """A work order a person takes down; it is theirs at once (see file_by_hand)."""
    error = ""
    if form.skill not in console.settings.tickets.skills:
        error = "请从列表中选择队列"
    else:
        try:
            ticket = console.service.file_by_hand(
                form.draft(),
                login.account,
                skill=form.skill,
                callback_promised=form.callback_promised,
            )
        except TicketError as exc:
            error = str(exc)
        else:
            return back(f"/tickets/{ticket.number}", msg="ticket_filed", ticket=ticket.number)
    return render(console, request, "new_ticket.html", login, 422, error=error, form=form.shown())


# ---- one ticket ----


@router.get("/tickets/{number}", response_class=HTMLResponse)
def ticket_page(request: Request, console: Ctx, login: Login, number: str) -> Response:
    response = _ticket_page(request, console, login, _check_number(number))
    pop = console.service.pending_pop(login.account.seat)
    if pop and pop.get("ticket") == number:
        console.service.clear_pop(login.account.seat)
    return response


def _ticket_page(
    request: Request,
    console: Console,
    login: LoginSession,
    number: str,
    status_code: int = 200,
    error: str = "",
) -> Response:
    ticket = console.service.store.get(number)
    leads_shift = login.account.leads_shift
    return render(
        console,
        request,
        "ticket.html",
        login,
        status_code,
        error=error,
        # Filled into "已转办至 {department}" / "已改派给 {assignee}" from the record, not
        # from the URL.
        details={"department": ticket.department, "assignee": ticket.assigned_to or ""},
        ticket=ticket,
        can_supervise=leads_shift,
        can_act=console.service.may_work_on(ticket, login.account),
        assignable=[a for a in console.accounts.list() if a.active and a.has(Role.OPERATOR)]
        if leads_shift
        else [],
        has_recording=_recording_of(console, ticket) is not None,
        dialer_ready=console.service.dialer is not None,
        earlier=console.service.caller_history(number),
        returned=_last(ticket, "return") if ticket.status == Status.RETURNED else None,
    )


def _last(ticket: Ticket, action: str) -> dict[str, Any] | None:
    """The detail of the newest history entry of ``action`` (e.g. the 退单 reason)."""
    found = [h.detail for h in ticket.history if h.action == action]
    return found[-1] if found else None


def _recording_of(console: Console, ticket: Ticket) -> Path | None:
    """Found by the call id, never by the stored path (see console.recordings)."""
    return find_recording(console.settings.data_dir, ticket.call_id, ticket.call_started_at)


@router.get("/tickets/{number}/pop", response_class=HTMLResponse)
def ticket_pop(request: Request, console: Ctx, login: Login, number: str) -> Response:
    ticket = console.service.store.get(_check_number(number), with_history=False)
    earlier = console.service.caller_history(number)
    return render(console, request, "_pop.html", login, ticket=ticket, earlier=earlier)


@router.get("/tickets/{number}/recording")
def recording(console: Ctx, login: Login, number: str) -> Response:
    ticket = console.service.store.get(_check_number(number), with_history=False)
    if not ticket.call_id:
        raise HTTPException(404, "本工单没有录音")
    path = _recording_of(console, ticket)
    if path is None:
        raise HTTPException(404, "录音文件不存在")
    return FileResponse(path, media_type="audio/wav")


class _Act:
    """One change to a ticket from its page: on success back to the page with the
    catalogue's message; when refused, the page itself with the reason (the reason can
    name the ticket's state, so it is shown here rather than carried in a URL).

    Routes receive it as a dependency (``Act``, ``ManagerAct``) in place of the request,
    console, login and number each of them would otherwise declare."""

    def __init__(
        self, request: Request, console: Console, login: LoginSession, number: str
    ) -> None:
        self.request, self.console, self.login = request, console, login
        # Checked when the change is attempted, not here: FastAPI builds this before it
        # reads the form, and a bad form must still answer 422 before a bad number's 404.
        self.number = number

    @property
    def service(self) -> TicketService:
        return self.console.service

    @property
    def account(self) -> Account:
        return self.login.account

    def __call__(self, success: str, action: Callable[[], object]) -> Response:
        refused = self.attempt(action)
        return refused or back(f"/tickets/{self.number}", msg=success)

    def attempt(self, action: Callable[[], object]) -> Response | None:
        _check_number(self.number)
        try:
            action()
        except TicketNotFound:
            raise  # the app's handler: the 404 page
        except (TicketError, DialerError) as exc:
            return _ticket_page(
                self.request, self.console, self.login, self.number, _refusal(exc), str(exc)
            )
        return None


def _operator_act(request: Request, console: Ctx, login: Login, number: str) -> _Act:
    return _Act(request, console, login, number)


def _manager_act(request: Request, console: Ctx, login: ManagerLogin, number: str) -> _Act:
    return _Act(request, console, login, number)


Act = Annotated[_Act, Depends(_operator_act)]
ManagerAct = Annotated[_Act, Depends(_manager_act)]


@router.post("/tickets/{number}/edit")
def edit(act: Act, form: Annotated[TicketForm, Form()]) -> Response:
    return act("saved", lambda: act.service.edit(act.number, form.edit(), act.account))


@router.post("/tickets/{number}/dispatch")
def dispatch(
    act: Act,
    department: Annotated[str, Form(max_length=100)],
    note: Annotated[str, Form(max_length=2000)] = "",
    co_departments: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006 (FastAPI)
) -> Response:
    return act(
        "dispatched",
        lambda: act.service.dispatch(act.number, department, act.account, note, co_departments),
    )


@router.post("/tickets/{number}/accept")
def accept(act: Act, note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return act("accepted", lambda: act.service.accept(act.number, act.account, note))


@router.post("/tickets/{number}/supervise")
def supervise(
    act: ManagerAct,
    note: Annotated[str, Form(max_length=2000)] = "",
    escalate: Annotated[bool, Form()] = False,
) -> Response:
    return act(
        "supervised",
        lambda: act.service.supervise(act.number, act.account, note, escalate=escalate),
    )


@router.post("/tickets/{number}/extension")
def decide_extension(
    act: ManagerAct,
    decision: Annotated[Literal["approve", "refuse"], Form()],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A 班长 decides a department's 延期 request."""
    approve = decision == "approve"
    return act(
        "extension_approved" if approve else "extension_refused",
        lambda: act.service.decide_extension(act.number, approve, act.account, note),
    )


@router.post("/tickets/{number}/merge")
def merge(
    act: Act,
    into: Annotated[str, Form(pattern=NUMBER)],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """并案: this work order is a duplicate of ``into`` and is closed into it."""
    refused = act.attempt(lambda: act.service.merge(act.number, into, act.account, note))
    return refused or back(f"/tickets/{act.number}", msg="merged", ticket=into)


@router.get("/tickets/{number}/attachments/{attachment_id}")
def attachment(console: Ctx, login: Login, number: str, attachment_id: int) -> Response:
    info, data = console.service.store.attachment(_check_number(number), attachment_id)
    return attachment_response(info, data)


def attachment_response(info: AttachmentInfo, data: bytes) -> Response:
    """A department's file, always downloaded (never shown inline as a page)."""
    return Response(
        data,
        media_type=info.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(info.filename)}",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/tickets/{number}/reply")
def reply(act: Act, reply: Annotated[str, Form(max_length=5000)]) -> Response:
    return act("replied", lambda: act.service.record_reply(act.number, reply, act.account))


@router.post("/tickets/{number}/call")
def call(act: Act) -> Response:
    return act("calling", lambda: act.service.call_back(act.number, act.account))


@router.post("/tickets/{number}/callback")
def callback(
    act: Act,
    outcome: Annotated[CallbackOutcome, Form()],
    note: Annotated[str, Form(max_length=2000)] = "",
    from_list: Annotated[bool, Form()] = False,
) -> Response:
    """The result of a 回电 (已回电 / 未接通 / 号码错误), kept in the ticket's history."""
    refused = act.attempt(
        lambda: act.service.record_callback(act.number, outcome, note, act.account)
    )
    if refused:
        return refused
    return back("/callbacks" if from_list else f"/tickets/{act.number}", msg="callback_recorded")


@router.get("/callbacks", response_class=HTMLResponse)
def callbacks(request: Request, console: Ctx, login: Login) -> Response:
    """回电清单: callers promised a call back (night, 留言) and not yet reached, oldest first."""
    due = console.service.callbacks_for(login.account)
    return render(
        console,
        request,
        "callbacks.html",
        login,
        due=due,
        callbacks_due=len(due),
        dialer_ready=console.service.dialer is not None,
    )


@router.post("/tickets/{number}/follow-up")
def follow_up(act: Act, result: Annotated[str, Form(max_length=5000)]) -> Response:
    return act("followed_up", lambda: act.service.follow_up(act.number, result, act.account))


@router.post("/tickets/{number}/close")
def close(
    act: Act,
    satisfaction: Annotated[Satisfaction, Form()],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    return act("closed", lambda: act.service.close(act.number, satisfaction, act.account, note))


@router.post("/tickets/{number}/release")
def release(act: Act) -> Response:
    refused = act.attempt(lambda: act.service.release(act.number, act.account))
    return refused or back("/", msg="released", ticket=act.number)


@router.post("/tickets/{number}/assign")
def reassign(act: ManagerAct, username: Annotated[str, Form(max_length=40)]) -> Response:
    return act("reassigned", lambda: act.service.reassign(act.number, username, act.account))


def _refusal(exc: Exception) -> int:
    """The status a refused change answers with, as the API's error handlers do."""
    if isinstance(exc, DialerError):
        return 503
    if isinstance(exc, TicketForbidden):
        return 403
    return 409 if isinstance(exc, InvalidTransition) else 422


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
    deadline: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    errors = []
    try:
        start = date.fromisoformat(date_from) if date_from else None
        end = date.fromisoformat(date_to) if date_to else None
    except ValueError:
        start = end = None
        errors.append("日期格式应为 YYYY-MM-DD")
    chosen = Status(status) if status in {s.value for s in Status} else None
    which = deadline if deadline in FILTERS else ""
    asked = any((number, phone, text, status, date_from, date_to, which))
    results = (
        console.service.store.search(
            number=number,
            phone=phone,
            text=text,
            status=chosen,
            date_from=start,
            date_to=end,
            deadline=which,
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
            "deadline": which,
        },
        search_errors=errors,
    )


# ---- overdue list (班长) ----


@router.get("/overdue", response_class=HTMLResponse)
def overdue(
    request: Request,
    console: Ctx,
    login: Login,
    which: Annotated[str, Query(max_length=20)] = "overdue",
) -> Response:
    try:
        check_sees_overdue_list(login.account)
    except TicketForbidden as exc:
        raise HTTPException(403, "权限不足") from exc
    which = which if which in FILTERS else "overdue"
    store = console.service.store
    return render(
        console,
        request,
        "overdue.html",
        login,
        which=which,
        counts=store.deadline_counts(),
        results=store.search(deadline=which, limit=500),
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
        detail = str(exc.detail)
        return error_page(request, exc.status_code, PAGE_DETAILS.get(detail, detail))

    app.add_exception_handler(LoginRequired, to_login)
    app.add_exception_handler(StarletteHTTPException, http_error)
