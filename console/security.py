"""What every response says about itself to the browser, and when cookies are Secure.

Deployments put nginx (TLS) in front of the consoles, on another machine: the console sees
plain HTTP from the proxy's address. The proxy's ``X-Forwarded-Proto``/``X-Forwarded-For``
are believed only from ``console.trusted_proxies`` (uvicorn's ProxyHeadersMiddleware,
installed in the app so tests and every server see the same rule); then
``request.url.scheme`` is the browser's scheme and ``request.client`` the browser's address.
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotline.settings import ConsoleSettings

# Pages: scripts, styles, media and requests only from the console itself; no inline
# script or style (the templates have none: handlers are in console.js), no framing.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The API docs (admins only): Swagger UI and ReDoc set styles from script and draw icons
# from data: URIs; ReDoc's search runs in a worker made from a blob. Scripts stay 'self'.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000"
ALWAYS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """CSP, no framing, no sniffing, no referrer off-site; HSTS once the request is HTTPS.

    A response that brings its own Content-Security-Policy (the API docs) keeps it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", PAGE_POLICY)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, with_headers)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_cookies(request: Request, console: ConsoleSettings) -> bool:
    """Whether cookies set on this response carry ``Secure``.

    auto: always, unless the console listens on loopback only (a developer's machine, or
    a proxy on the same host): then when the browser came over HTTPS.
    """
    if console.secure_cookies == "auto":
        return request.url.scheme == "https" or not is_loopback(console.host)
    return bool(console.secure_cookies)


def https_needed_but_missing(request: Request, console: ConsoleSettings) -> bool:
    """The browser would drop the Secure cookies of this plain-HTTP page: say so on it.

    Browsers accept Secure cookies from http://localhost, so loopback clients are fine.
    """
    client = request.client.host if request.client else None
    return (
        secure_cookies(request, console)
        and request.url.scheme != "https"
        and not is_loopback(client)
    )
