"""The API's interactive docs (Swagger UI, ReDoc) and its OpenAPI document, for admins.

The viewers' scripts and styles come from the fastapi-offline package and are served by
the console itself: hotlines run on closed government networks, and a script from a
public CDN (unpinned, without integrity) would be code the console does not control,
running with an admin's session. Each viewer is started by console/static/docs.js, so
the pages need no inline script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import fastapi_offline
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from console.app import Console, get_console
from console.auth import api_role, page_role
from console.security import DOCS_POLICY
from tickets.accounts import LoginSession, Role

ASSETS_URL = "/docs-assets"
ASSETS_DIR = str(Path(fastapi_offline.__file__).resolve().parent / "static")

router = APIRouter(include_in_schema=False)
AdminPage = Annotated[LoginSession, Depends(page_role(Role.ADMIN))]
AdminApi = Annotated[LoginSession, Depends(api_role(Role.ADMIN))]
Ctx = Annotated[Console, Depends(get_console)]


@router.get("/openapi.json")
def openapi(request: Request, login: AdminApi) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request, console: Ctx, login: AdminPage) -> Response:
    return _viewer(request, console, login, "docs_swagger.html")


@router.get("/redoc")
def redoc(request: Request, console: Ctx, login: AdminPage) -> Response:
    return _viewer(request, console, login, "docs_redoc.html")


def _viewer(request: Request, console: Console, login: LoginSession, name: str) -> Response:
    context = {
        "title": request.app.title,
        "assets": ASSETS_URL,
        "openapi_url": "/openapi.json",
        # "Try it out" runs with the admin's cookie: state changes need the CSRF token.
        "csrf": login.csrf_token,
    }
    response = console.templates.TemplateResponse(request, name, context)
    response.headers["Content-Security-Policy"] = DOCS_POLICY
    return response
