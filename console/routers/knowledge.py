"""知识库查询: the knowledge base read-only, for every signed-in person (operators look an
answer up while the caller is on the line). Editing stays on the managers' pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from console.refusals import refuse_nul
from console.routers.manager import Ctx, State
from console.routers.operator import Login, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_nul)])
MAX_SHOWN = 50


@router.get("/kb", response_class=HTMLResponse)
def kb_lookup(
    request: Request,
    console: Ctx,
    login: Login,
    state: State,
    q: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """Entries in force (not retired) whose words hold every word of ``q``."""
    found = state.config.kb_search(q) if q.strip() else []
    return render(
        console,
        request,
        "kb_lookup.html",
        login,
        q=q,
        entries=found[:MAX_SHOWN],
        found=len(found),
        max_shown=MAX_SHOWN,
    )
