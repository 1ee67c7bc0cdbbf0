"""REST API (/api/v1) for the city's case system: the same operations as the console.

Authenticate with ``POST /api/v1/auth/token`` and send ``Authorization: Bearer <token>``.
Every change lands in the ticket's append-only history with the caller's user name.

Operators work only on the tickets they hold or that wait in their skill queues, and pop
tickets only onto their own seat; a 班长 acts on any ticket and reassigns it
(``tickets.access``). Call evidence in a new ticket (call id, transcript, recording...)
is accepted only from the call controller's service identity (``Role.SERVICE``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, Field, StringConstraints

from console.app import Console, get_console
from console.auth import api_login, api_role
from console.login import LoginBusy, LoginLocked, request_address
from console.refusals import StrictJSONRoute
from hotline.draft import TicketDraft, evidence_fields
from tickets.accounts import Account, LoginSession, Role
from tickets.queue import QueueEntry
from tickets.ticket import HistoryEntry, Satisfaction, Status, Ticket, TicketEdit

# Strict JSON (console.refusals): no lone surrogates, NaN or infinities reach a handler.
router = APIRouter(prefix="/api/v1", tags=["工单 API"], route_class=StrictJSONRoute)

NUMBER = r"^\d{8}-\d{4,6}$"
NO_NUL = r"^[^\x00]*$"
TicketNumber = Annotated[str, Path(pattern=NUMBER, description="工单编号，如 20261122-0042")]
Text = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]
LongText = Annotated[str, StringConstraints(max_length=5000, pattern=NO_NUL)]
Operator = Annotated[LoginSession, Depends(api_role(Role.OPERATOR))]
Manager = Annotated[LoginSession, Depends(api_role(Role.MANAGER))]
Admin = Annotated[LoginSession, Depends(api_role(Role.ADMIN))]
Ctx = Annotated[Console, Depends(get_console)]
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)


class TokenRequest(BaseModel):
    username: Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=NO_NUL)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]


class TokenResponse(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime
    role: Role


class TicketCreate(BaseModel):
    draft: TicketDraft
    skill: Annotated[str, StringConstraints(max_length=40, pattern=NO_NUL)] = "general"
    callback_promised: bool | None = None


Department = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)]


class DispatchRequest(BaseModel):
    department: Department  # 主办
    note: Text = ""
    co_departments: list[Department] = Field(default_factory=list, max_length=20)  # 协办


class NoteRequest(BaseModel):
    note: Text = ""


class ReplyRequest(BaseModel):
    reply: Annotated[str, StringConstraints(min_length=1, max_length=5000, pattern=NO_NUL)]


class FollowUpRequest(BaseModel):
    result: LongText


class CloseRequest(BaseModel):
    satisfaction: Satisfaction
    note: Text = ""


class AssignRequest(BaseModel):
    username: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{2,40}$")]


class ScreenPopRequest(BaseModel):
    seat: Annotated[
        str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.@-]+$")
    ]


class QueueItem(BaseModel):
    ticket: str
    skill: str
    priority: str
    seat: str | None
    enqueued_ms: int


class QueueView(BaseModel):
    waiting: list[QueueItem]
    mine: list[QueueItem]


class UserCreate(BaseModel):
    username: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{2,40}$")]
    password: Annotated[str, StringConstraints(min_length=8, max_length=200, pattern=NO_NUL)]
    role: Role = Role.OPERATOR
    display_name: Annotated[str, StringConstraints(max_length=80, pattern=NO_NUL)] = ""
    extension: Annotated[str, StringConstraints(max_length=40, pattern=r"^[A-Za-z0-9_.-]*$")] = ""
    skills: list[Annotated[str, StringConstraints(max_length=40, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=20
    )
    # A department user's unit: a code from tickets.departments.
    department: Annotated[str, StringConstraints(max_length=40, pattern=NO_NUL)] = ""


class UserView(BaseModel):
    username: str
    display_name: str
    role: Role
    extension: str
    skills: list[str]
    active: bool
    department: str = ""


# The views carry the fields of the same names on the store's objects; pydantic copies them
# (``from_attributes``) so a field added to a view cannot be forgotten in a hand-written copy.
def _user_view(account: Account) -> UserView:
    return UserView.model_validate(account, from_attributes=True)


def _item(entry: QueueEntry) -> QueueItem:
    return QueueItem.model_validate(entry, from_attributes=True)


# ---- auth ----


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    tags=["认证"],
    responses={
        401: {"description": "用户名或密码错误"},
        429: {"description": "失败次数过多，账号或来源地址暂时锁定（见 Retry-After）"},
        503: {"description": "登录请求过多，稍后重试"},
    },
)
async def issue_token(body: TokenRequest, request: Request, console: Ctx) -> TokenResponse:
    try:
        account = await console.logins.sign_in(
            body.username, body.password, request_address(request)
        )
    except LoginLocked as locked:
        raise HTTPException(
            429, locked.message, headers={"Retry-After": locked.retry_after_header}
        ) from None
    except LoginBusy as busy:
        raise HTTPException(503, busy.message, headers={"Retry-After": "5"}) from None
    if account is None:
        raise HTTPException(401, "用户名或密码错误")
    session = await asyncio.to_thread(console.accounts.open_session, account, "api")
    return TokenResponse(token=session.token, expires_at=session.expires_at, role=account.role)


@router.post("/auth/logout", status_code=204, tags=["认证"])
def revoke_token(console: Ctx, login: Annotated[LoginSession, Depends(api_login)]) -> Response:
    console.accounts.close_session(login.token)
    return Response(status_code=204)


# ---- tickets ----


@router.get("/tickets", response_model=list[Ticket])
def search_tickets(
    console: Ctx,
    login: Operator,
    number: Annotated[str, Query(max_length=20, pattern=r"^[\d-]*$")] = "",
    phone: Annotated[str, Query(max_length=40, pattern=NO_NUL)] = "",
    text: Annotated[str, Query(max_length=200, pattern=NO_NUL)] = "",
    status: Status | None = None,
    date_from: Annotated[date | None, Query(ge=EARLIEST, le=LATEST)] = None,
    date_to: Annotated[date | None, Query(ge=EARLIEST, le=LATEST)] = None,
    deadline: Annotated[
        Literal["overdue", "due_soon", "dispatch_late"] | None,
        Query(description="超期 overdue / 即将超期 due_soon / 派单超时 dispatch_late（仅未办结）"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[Ticket]:
    """按编号、电话、文字、状态、日期、期限查询工单（不含处理记录）。"""
    return console.service.store.search(
        number=number,
        phone=phone,
        text=text,
        status=status,
        date_from=date_from,
        date_to=date_to,
        deadline=deadline or "",
        limit=limit,
        offset=offset,
    )


@router.post(
    "/tickets",
    response_model=Ticket,
    status_code=201,
    responses={403: {"description": "只有呼叫中控系统账号可以提交通话证据字段"}},
)
def create_ticket(body: TicketCreate, console: Ctx, login: Operator) -> Ticket:
    """由草稿受理一张新工单并放入技能队列。

    通话证据（来电号码、通话编号、转写、录音等）只接受呼叫中控系统账号提交。"""
    if "\\u0000" in body.model_dump_json():
        raise HTTPException(422, "文本中不能含 NUL 字符")
    evidence = evidence_fields(body.draft)
    if evidence and not login.account.is_controller:
        raise HTTPException(
            403,
            "通话证据只能由呼叫中控系统账号提交，请去掉这些字段：" + "、".join(evidence),
        )
    return console.service.intake(
        body.draft,
        skill=body.skill,
        callback_promised=body.callback_promised,
        actor=login.account.username,
    )


@router.get(
    "/tickets/{number}", response_model=Ticket, responses={404: {"description": "没有这个工单"}}
)
def get_ticket(number: TicketNumber, console: Ctx, login: Operator) -> Ticket:
    return console.service.store.get(number)


@router.get(
    "/tickets/{number}/history",
    response_model=list[HistoryEntry],
    responses={404: {"description": "没有这个工单"}},
)
def ticket_history(number: TicketNumber, console: Ctx, login: Operator) -> list[HistoryEntry]:
    return console.service.store.history(number)


_CHANGE_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "本工单不归您办理"},
    404: {"description": "没有这个工单"},
    409: {"description": "当前状态不允许此操作"},
    422: {"description": "请求内容无效"},
}


def _ticket_change(
    action: str, more_errors: dict[int | str, dict[str, str]] | None = None
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The route of one change to a work order: ``POST /tickets/{number}/<action>``,
    answered with the work order as it now stands, refused as ``_CHANGE_ERRORS`` says."""
    return router.post(
        f"/tickets/{{number}}/{action}",
        response_model=Ticket,
        responses={**_CHANGE_ERRORS, **(more_errors or {})},
    )


@router.patch("/tickets/{number}", response_model=Ticket, responses=_CHANGE_ERRORS)
def edit_ticket(number: TicketNumber, body: TicketEdit, console: Ctx, login: Operator) -> Ticket:
    if "\\u0000" in body.model_dump_json():
        raise HTTPException(422, "文本中不能含 NUL 字符")
    return console.service.edit(number, body, login.account)


@_ticket_change("dispatch")
def dispatch_ticket(
    number: TicketNumber, body: DispatchRequest, console: Ctx, login: Operator
) -> Ticket:
    """转办：派给承办单位。"""
    return console.service.dispatch(
        number, body.department, login.account, body.note, body.co_departments
    )


@_ticket_change("accept")
def accept_ticket(number: TicketNumber, body: NoteRequest, console: Ctx, login: Operator) -> Ticket:
    """办理：承办单位已签收。"""
    return console.service.accept(number, login.account, body.note)


@_ticket_change("supervise")
def supervise_ticket(
    number: TicketNumber, body: NoteRequest, console: Ctx, login: Manager
) -> Ticket:
    """督办（班长及以上）。"""
    return console.service.supervise(number, login.account, body.note)


@_ticket_change("reply")
def record_reply(number: TicketNumber, body: ReplyRequest, console: Ctx, login: Operator) -> Ticket:
    """反馈：登记承办单位的答复。"""
    return console.service.record_reply(number, body.reply, login.account)


@_ticket_change("call", {503: {"description": "外呼不可用"}})
def call_caller(number: TicketNumber, console: Ctx, login: Operator) -> Ticket:
    """点击回拨：先振铃本坐席分机，接起后呼叫市民。"""
    return console.service.call_back(number, login.account)


@_ticket_change("follow-up")
def follow_up_ticket(
    number: TicketNumber, body: FollowUpRequest, console: Ctx, login: Operator
) -> Ticket:
    """回访：记录回访结果。"""
    return console.service.follow_up(number, body.result, login.account)


@_ticket_change("close")
def close_ticket(number: TicketNumber, body: CloseRequest, console: Ctx, login: Operator) -> Ticket:
    """办结，记录市民满意度。"""
    return console.service.close(number, body.satisfaction, login.account, body.note)


@_ticket_change("release")
def release_ticket(number: TicketNumber, console: Ctx, login: Operator) -> Ticket:
    """退回队列，由其他坐席接办。"""
    return console.service.release(number, login.account)


@_ticket_change("assign")
def reassign_ticket(
    number: TicketNumber, body: AssignRequest, console: Ctx, login: Manager
) -> Ticket:
    """改派（班长及以上）：把工单交给另一位坐席办理。"""
    return console.service.reassign(number, body.username, login.account)


@router.post("/tickets/{number}/screen-pop", status_code=204, responses=_CHANGE_ERRORS)
def screen_pop(
    number: TicketNumber, body: ScreenPopRequest, console: Ctx, login: Operator
) -> Response:
    """来电已接通到坐席：把工单交给该坐席并弹屏。

    话务员只能弹屏到本人坐席；呼叫中控系统账号和班长可弹屏到任意坐席。"""
    console.service.store.get(number, with_history=False)  # 404 when unknown
    account = console.accounts.by_seat(body.seat)
    console.service.screen_pop(number, body.seat, account, requested_by=login.account)
    return Response(status_code=204)


# ---- queue ----


@router.get("/queue", response_model=QueueView, tags=["队列"])
def queue_view(console: Ctx, login: Operator) -> QueueView:
    entries = console.service.queue.entries(login.account.skills or None)
    seat = login.account.seat
    return QueueView(
        waiting=[_item(e) for e in entries if e.seat is None],
        mine=[_item(e) for e in entries if e.seat == seat],
    )


@router.post(
    "/queue/claim",
    response_model=Ticket,
    tags=["队列"],
    responses={204: {"description": "队列为空"}},
)
def claim_ticket(console: Ctx, login: Operator) -> Ticket | Response:
    ticket = console.service.claim_next(login.account)
    return ticket if ticket is not None else Response(status_code=204)


# ---- users ----


@router.get("/users", response_model=list[UserView], tags=["用户"])
def list_users(console: Ctx, login: Admin) -> list[UserView]:
    return [_user_view(a) for a in console.accounts.list()]


@router.post(
    "/users",
    response_model=UserView,
    status_code=201,
    tags=["用户"],
    responses={422: {"description": "用户名已存在或无效"}},
)
def add_user(body: UserCreate, console: Ctx, login: Admin) -> UserView:
    if body.department and console.settings.tickets.department_by_code(body.department) is None:
        raise HTTPException(
            422, f"没有代码为 {body.department} 的承办单位（见 tickets.departments）"
        )
    account = console.accounts.add(
        body.username,
        body.password,
        body.role,
        display_name=body.display_name,
        extension=body.extension,
        skills=body.skills,
        department=body.department,
    )
    return _user_view(account)
