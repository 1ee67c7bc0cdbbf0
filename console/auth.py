"""Who is asking: session cookie (pages) or bearer token (API), roles, CSRF.

Browsers carry the session in an HttpOnly cookie; every state-changing request from a
browser must also carry the session's CSRF token (form field or X-CSRF-Token header).
API clients send ``Authorization: Bearer <token>`` and need no CSRF token, since no
browser attaches that header on its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from console.app import Console, get_console
from tickets.accounts import LoginSession, Role

SESSION_COOKIE = "hotline_session"
LOGIN_CSRF_COOKIE = "hotline_login_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class LoginRequired(Exception):
    """A page needs a login: the handler redirects to /login."""


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _csrf_ok(request: Request, login: LoginSession) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        sent = str(form.get("csrf_token", ""))
    return bool(sent) and same_token(sent, login.csrf_token)


def same_token(sent: str, expected: str) -> bool:
    """Constant-time comparison of a token a client sent. As bytes: compare_digest refuses
    text outside ASCII with a TypeError, and a forged token may be anything."""
    return secrets.compare_digest(sent.encode("utf-8", "replace"), expected.encode())


async def api_login(
    request: Request, console: Annotated[Console, Depends(get_console)]
) -> LoginSession:
    """For the REST API: bearer token, or the browser's cookie plus CSRF on changes."""
    token = _bearer(request)
    if token:
        login = console.accounts.session(token)
        if login is None:
            raise HTTPException(401, "登录已失效", headers={"WWW-Authenticate": "Bearer"})
        return login
    login = console.accounts.session(request.cookies.get(SESSION_COOKIE, ""))
    if login is None:
        raise HTTPException(401, "需要登录", headers={"WWW-Authenticate": "Bearer"})
    if request.method in UNSAFE and not await _csrf_ok(request, login):
        raise HTTPException(403, "CSRF 校验失败")
    return login


async def page_login(
    request: Request, console: Annotated[Console, Depends(get_console)]
) -> LoginSession:
    """For HTML pages: the cookie session, CSRF-checked on every change."""
    login = console.accounts.session(request.cookies.get(SESSION_COOKIE, ""))
    if login is None:
        raise LoginRequired
    if request.method in UNSAFE and not await _csrf_ok(request, login):
        raise HTTPException(403, "CSRF 校验失败，请刷新页面后重试")
    return login


def api_role(role: Role) -> Callable[..., object]:
    async def check(login: Annotated[LoginSession, Depends(api_login)]) -> LoginSession:
        if not login.account.has(role):
            raise HTTPException(403, "权限不足")
        return login

    return check


def page_role(role: Role) -> Callable[..., object]:
    async def check(login: Annotated[LoginSession, Depends(page_login)]) -> LoginSession:
        if not login.account.has(role):
            raise HTTPException(403, "权限不足")
        return login

    return check
