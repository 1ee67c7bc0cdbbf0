"""Managers' pages: menu editor, call simulator, knowledge base, prompts, figures, hot topics.

Every page needs the manager role. Configuration changes go through
:class:`manage.config.ConfigStore` (validated, versioned with author and time, announced on
Redis so controllers reload between calls); this process's own brain (the simulator's)
is refreshed right after each change.
"""

from __future__ import annotations

import csv
import io
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import yaml
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from bot.brain import BrainCache
from bot.dialogue import Dialogue
from bot.events import CallStarted, CreateTicket, Dtmf, HangUp, Say, Transfer, Utterance
from bot.menu import ACTIONS, INTAKE_TYPES, QUEUES, menu_problems, parse_menu
from console import charts, messages
from console.app import MAX_UPLOAD, Console, get_console
from console.auth import page_role
from console.refusals import refuse_nul
from console.routers.operator import back, render
from hotline.draft import REQUEST_TYPE_LABELS, request_type_label
from manage.audio import RecordingError, check_recording
from manage.config import ConfigError, ConfigStore, MenuInvalid, parse_kb_upload
from manage.figures import Figures, FigureSet, period_bounds
from manage.hot import hot_topics
from manage.render import RenderJob, spoken_texts
from manage.spreadsheet import escape_cell
from tickets.accounts import LoginSession, Role
from voice.prompts import PromptError, PromptLibrary

router = APIRouter(prefix="/manage", include_in_schema=False, dependencies=[Depends(refuse_nul)])
Manager = Annotated[LoginSession, Depends(page_role(Role.MANAGER))]
Ctx = Annotated[Console, Depends(get_console)]
ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_SUB_ROWS = 9
ACTION_LABELS = {
    "ask": "请来电人说话（咨询）",
    "intake": "登记工单",
    "transfer": "转人工专席",
    "submenu": "进入下级菜单",
    "repeat": "重听菜单",
}
INTAKE_LABELS = {
    "complaint": "投诉",
    "help": "求助",
    "report": "举报",
    "suggestion": "建议",
    "praise": "表扬",
}
QUEUE_LABELS = {
    "general": "综合",
    "social_insurance": "社保医保",
    "real_estate": "不动产住房",
    "business_environment": "营商环境",
}
HANDLED_LABELS = {"bot": "机器人答复", "person": "转人工/工单", "abandoned": "未办结挂机"}


@dataclass
class Simulation:
    owner: str
    dialogue: Dialogue
    brain_version: int
    lines: list[tuple[str, str]] = field(default_factory=list)  # (who, text)
    ended: bool = False


class ManagerState:
    """Per-app: the config store, this process's brain cache, simulations, render job."""

    def __init__(self, console: Console) -> None:
        settings = console.settings
        self.config = ConfigStore(console.service.store, settings, console.service.queue.redis)
        self.config.seed()
        self.config.materialise()
        self.cache = BrainCache(self.config.bot_paths(), check_every=3600.0)
        self.library = PromptLibrary.from_settings(
            settings.ivr, settings.data_dir, settings.models_dir
        )
        self.render_job = RenderJob(self.library)
        self.sims: OrderedDict[str, Simulation] = OrderedDict()
        self.lock = threading.Lock()

    def changed(self) -> None:
        self.cache.refresh()

    def simulation(self, sim_id: str, login: LoginSession) -> Simulation:
        sim = self.sims.get(sim_id)
        if sim is None or sim.owner != login.account.username:
            raise HTTPException(404, "模拟通话已结束，请重新开始")
        return sim


_init_lock = threading.Lock()


def get_manager(console: Ctx) -> ManagerState:
    state = getattr(console, "_manager", None)
    if state is None:
        with _init_lock:
            state = getattr(console, "_manager", None)
            if state is None:
                state = ManagerState(console)
                console._manager = state  # type: ignore[attr-defined]
    return state


State = Annotated[ManagerState, Depends(get_manager)]


# ---- menu editor ----


def menu_to_form(raw: dict[str, Any]) -> dict[str, Any]:
    """The menu as the editor's tree: named submenus written inline, blank rows to add."""
    named = raw.get("submenus") or {}
    named = named if isinstance(named, dict) else {}
    listed = raw.get("options")
    options = []
    # A broken menu (options: 3) still opens in the editor, with its problems listed.
    for item in listed if isinstance(listed, list) else []:
        if not isinstance(item, dict):
            continue
        option = _form_option(item)
        sub = item.get("submenu")
        if isinstance(sub, str) and isinstance(named.get(sub), dict):
            option["prompt"] = option["prompt"] or str(named[sub].get("prompt") or "")
            sub = named[sub].get("options")
        option["sub"] = (
            [_form_option(s) for s in sub if isinstance(s, dict)] if isinstance(sub, list) else []
        )
        options.append(option)
    return {"prompt": str(raw.get("prompt") or ""), "options": options}


def _form_option(item: dict[str, Any]) -> dict[str, Any]:
    action = next((a for a in ACTIONS if a in item), "")
    value = item.get(action, "") if action not in ("submenu", "repeat") else ""
    return {
        "key": str(item.get("key", "")),
        "label": str(item.get("label", "")),
        "action": action,
        "value": str(value or ""),
        "prompt": str(item.get("prompt") or ""),
        "sub": [],
    }


def form_to_menu(form: FormData) -> dict[str, Any]:
    def get(name: str) -> str:
        return str(form.get(name, "")).strip()

    raw: dict[str, Any] = {}
    if get("prompt"):
        raw["prompt"] = get("prompt")
    options = []
    for i in range(12):
        option = _option_from(get, f"o{i}")
        if option is None:
            continue
        if option.get("submenu") == []:
            sub = [s for j in range(MAX_SUB_ROWS) if (s := _option_from(get, f"o{i}s{j}"))]
            option["submenu"] = sub
            if get(f"o{i}_prompt"):
                option["prompt"] = get(f"o{i}_prompt")
        options.append(option)
    raw["options"] = options
    return raw


def _option_from(get: Any, prefix: str) -> dict[str, Any] | None:
    key, label, action = get(f"{prefix}_key"), get(f"{prefix}_label"), get(f"{prefix}_action")
    if not key and not label:
        return None
    option: dict[str, Any] = {"key": key, "label": label}
    if action == "submenu" and "s" not in prefix[1:]:
        option["submenu"] = []
    elif action == "repeat":
        option["repeat"] = True
    elif action in ("ask", "intake", "transfer"):
        option[action] = get(f"{prefix}_value")
    elif action == "submenu":
        option["submenu"] = get(f"{prefix}_value")  # a third level: validation says no
    return option


def dump_menu(raw: dict[str, Any]) -> str:
    return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False, width=1000)


def _levels(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(level name, what the caller hears) of a valid menu."""
    menu = parse_menu(raw, "menu")
    levels = [("主菜单", menu.spoken(menu.options))]
    levels += [(f"{o.key} {o.label}", menu.spoken(o.submenu)) for o in menu.options if o.submenu]
    return levels


def _editor(
    state: ManagerState, raw: dict[str, Any], problems: list[Any], checked: bool
) -> dict[str, Any]:
    form = menu_to_form(raw)
    for option in form["options"]:
        option["sub"] = option["sub"] + [_form_option({})]
    form["options"].append({**_form_option({}), "sub": [_form_option({})]})
    levels = _levels(raw) if checked and not problems else []
    return {
        "form": form,
        "problems": problems,
        "checked": checked,
        "levels": levels,
        "versions": state.config.versions("menu", limit=30),
        "ACTIONS": ACTIONS,
        "ACTION_LABELS": ACTION_LABELS,
        "INTAKE_TYPES": INTAKE_TYPES,
        "INTAKE_LABELS": INTAKE_LABELS,
        "QUEUES": QUEUES,
        "QUEUE_LABELS": QUEUE_LABELS,
        "yaml_text": dump_menu(raw),
    }


@router.get("/menu", response_class=HTMLResponse)
def menu_page(request: Request, console: Ctx, login: Manager, state: State) -> Response:
    active = state.config.active("menu")
    raw = yaml.safe_load(active.content) if active else {"options": []}
    return render(
        console,
        request,
        "manage_menu.html",
        login,
        active=active,
        **_editor(state, raw, [], checked=False),
    )


@router.post("/menu/check", response_class=HTMLResponse)
async def menu_check(request: Request, console: Ctx, login: Manager, state: State) -> Response:
    raw = form_to_menu(await request.form())
    problems = menu_problems(raw)
    return render(
        console, request, "_menu_editor.html", login, **_editor(state, raw, problems, checked=True)
    )


@router.post("/menu/save", response_class=HTMLResponse)
async def menu_save(request: Request, console: Ctx, login: Manager, state: State) -> Response:
    form = await request.form()
    raw = form_to_menu(form)
    note = str(form.get("note", ""))[:200]
    return _save_menu(request, console, login, state, raw, dump_menu(raw), note)


@router.post("/menu/yaml", response_class=HTMLResponse)
def menu_yaml(
    request: Request,
    console: Ctx,
    login: Manager,
    state: State,
    content: Annotated[str, Form(max_length=200_000)],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        raw = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        error = f"YAML 格式错误（第 {mark.line + 1} 行）" if mark else "YAML 格式错误"
        return _menu_refused(request, console, login, state, error, content)
    if not isinstance(raw, dict):
        return _menu_refused(
            request, console, login, state, "菜单格式不对：应逐项列出菜单选项", content
        )
    return _save_menu(request, console, login, state, raw, content, note)


def _save_menu(
    request: Request,
    console: Console,
    login: LoginSession,
    state: ManagerState,
    raw: dict[str, Any],
    content: str,
    note: str,
) -> Response:
    try:
        version = state.config.save("menu", content, login.account.username, note)
    except MenuInvalid as exc:
        return render(
            console,
            request,
            "manage_menu.html",
            login,
            status_code=422,
            active=state.config.active("menu"),
            **_editor(state, raw, exc.problems, checked=True),
        )
    except ConfigError as exc:
        return _menu_refused(request, console, login, state, messages.problem(str(exc)), content)
    state.changed()
    return back("/manage/menu", msg="menu_saved", version=version.version)


def _menu_refused(
    request: Request,
    console: Console,
    login: LoginSession,
    state: ManagerState,
    error: str,
    content: str | None = None,
) -> Response:
    """The menu page with the reason on top and the manager's text kept to fix it (the
    reason quotes their text, so it is shown here, never carried in a URL)."""
    active = state.config.active("menu")
    raw = yaml.safe_load(active.content) if active else {"options": []}
    page = _editor(state, raw, [], checked=False)
    if content is not None:
        page.update(yaml_text=content, yaml_open=True)
    return render(
        console, request, "manage_menu.html", login, 422, error=error, active=active, **page
    )


@router.post("/menu/rollback/{number}")
def menu_rollback(
    request: Request, console: Ctx, login: Manager, state: State, number: int
) -> Response:
    try:
        version = state.config.rollback("menu", number, login.account.username)
    except ConfigError as exc:
        return _menu_refused(request, console, login, state, messages.problem(str(exc)))
    state.changed()
    return back("/manage/menu", msg="menu_rolled_back", target=number, version=version.version)


@router.get("/tts")
def tts(
    login: Manager,
    state: State,
    text: Annotated[str, Query(min_length=1, max_length=600)],
    prompt: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The audio a caller would hear for ``text`` (a recording wins for a named prompt)."""
    try:
        audio = state.library.get(text, prompt or None)
    except PromptError as exc:
        raise HTTPException(503, messages.problem(str(exc))) from exc
    return Response(
        _wav(audio.pcm), media_type="audio/wav", headers={"Cache-Control": "private, max-age=300"}
    )


def _wav(pcm: bytes) -> bytes:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(pcm)
    return buffer.getvalue()


# ---- call simulator ----


@router.get("/simulator", response_class=HTMLResponse)
def simulator(request: Request, console: Ctx, login: Manager, state: State) -> Response:
    return render(
        console,
        request,
        "manage_simulator.html",
        login,
        sim=None,
        sim_id="",
        brain_error=messages.problem(state.cache.last_error) if state.cache.last_error else "",
    )


@router.post("/simulator/start", response_class=HTMLResponse)
def simulator_start(
    request: Request,
    console: Ctx,
    login: Manager,
    state: State,
    night: Annotated[bool, Form()] = False,
) -> Response:
    brain = state.cache.current()
    sim = Simulation(login.account.username, Dialogue(brain), state.cache.version)
    with state.lock:
        sim_id = uuid.uuid4().hex
        state.sims[sim_id] = sim
        while len(state.sims) > 200:
            state.sims.popitem(last=False)
    _run(sim, CallStarted("12345000000", seats_available=not night))
    return render(console, request, "_simulation.html", login, sim=sim, sim_id=sim_id)


@router.post("/simulator/{sim_id}/turn", response_class=HTMLResponse)
def simulator_turn(
    request: Request,
    console: Ctx,
    login: Manager,
    state: State,
    sim_id: str,
    text: Annotated[str, Form(max_length=500)] = "",
    key: Annotated[str, Form(max_length=1, pattern=r"^[0-9*#]?$")] = "",
) -> Response:
    sim = state.simulation(sim_id, login)
    if not sim.ended:
        if key:
            sim.lines.append(("caller", f"［按键 {key}］"))
            _run(sim, Dtmf(key))
        elif text.strip():
            sim.lines.append(("caller", text.strip()))
            _run(sim, Utterance(text.strip(), 0.9))
    return render(console, request, "_simulation.html", login, sim=sim, sim_id=sim_id)


def _run(sim: Simulation, event: Any) -> None:
    decision = sim.dialogue.handle(event)
    for action in decision.actions:
        if isinstance(action, Say):
            sim.lines.append(("bot", action.text))
        elif isinstance(action, Transfer):
            sim.lines.append(
                (
                    "system",
                    f"转接人工：{QUEUE_LABELS.get(action.queue, action.queue)}（{action.reason}）",
                )
            )
            sim.ended = True
        elif isinstance(action, CreateTicket):
            t = action.ticket
            sim.lines.append(
                (
                    "system",
                    f"生成工单：{request_type_label(t.type)}"
                    f" {t.topic}" + ("，承诺回电" if action.callback_promised else ""),
                )
            )
        elif isinstance(action, HangUp):
            sim.lines.append(("system", "挂机"))
            sim.ended = True
    if decision.state == "ended":
        sim.ended = True


# ---- knowledge base ----


def _recent(days: int = 30) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=days), now + timedelta(minutes=1)


@router.get("/kb", response_class=HTMLResponse)
def kb_page(
    request: Request,
    console: Ctx,
    login: Manager,
    state: State,
    q: Annotated[str, Query(max_length=100)] = "",
    retired: Annotated[bool, Query()] = False,
) -> Response:
    return _kb_list(request, console, login, state, q, retired)


def _kb_list(
    request: Request,
    console: Console,
    login: LoginSession,
    state: ManagerState,
    q: str = "",
    retired: bool = False,
    status_code: int = 200,
    error: str = "",
) -> Response:
    entries = state.config.kb_search(q, include_retired=retired)
    start, end = _recent()
    figures = Figures(console.service.store, console.settings.tickets.timezone)
    stats = figures.compute(start, end, top=30)
    hits = dict(stats.kb_hits)
    return render(
        console,
        request,
        "manage_kb.html",
        login,
        status_code,
        error=error,
        entries=entries,
        q=q,
        retired=retired,
        hits=hits,
        stats=stats,
        total=len(state.config.kb_states()),
    )


@router.get("/kb/new", response_class=HTMLResponse)
def kb_new(request: Request, console: Ctx, login: Manager) -> Response:
    return render(
        console,
        request,
        "manage_kb_entry.html",
        login,
        entry=None,
        history=[],
        data={"id": "", "topic": "", "department": "", "question": "", "also": [], "answer": ""},
    )


@router.get("/kb/export.{fmt}")
def kb_export(login: Manager, state: State, fmt: str) -> Response:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    if fmt == "csv":
        return Response(
            "\ufeff" + state.config.kb_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="kb-{stamp}.csv"'},
        )
    if fmt in ("yaml", "yml"):
        return Response(
            state.config.kb_yaml(),
            media_type="application/yaml; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="kb-{stamp}.yaml"'},
        )
    raise HTTPException(404, "导出格式应为 csv 或 yaml")


@router.get("/kb/{entry_id}", response_class=HTMLResponse)
def kb_entry(
    request: Request, console: Ctx, login: Manager, state: State, entry_id: str
) -> Response:
    return _kb_entry_page(request, console, login, state, entry_id)


def _kb_entry_page(
    request: Request,
    console: Console,
    login: LoginSession,
    state: ManagerState,
    entry_id: str,
    data: dict[str, Any] | None = None,
    error: str = "",
) -> Response:
    """An entry's form and history; with ``error`` the refused change's form (status 422),
    showing what the manager typed (``data``) so nothing is lost."""
    history = state.config.kb_history(entry_id) if entry_id else []
    if entry_id and not history:
        raise HTTPException(404, "没有这个知识条目")
    return render(
        console,
        request,
        "manage_kb_entry.html",
        login,
        422 if error else 200,
        error=error,
        entry=history[0] if history else None,
        history=history,
        data=data if data is not None else history[0].data,
    )


@router.post("/kb/save")
def kb_save(
    request: Request,
    console: Ctx,
    login: Manager,
    state: State,
    id: Annotated[str, Form(max_length=64)],
    topic: Annotated[str, Form(max_length=100)] = "",
    department: Annotated[str, Form(max_length=100)] = "",
    question: Annotated[str, Form(max_length=500)] = "",
    also: Annotated[str, Form(max_length=5000)] = "",
    answer: Annotated[str, Form(max_length=5000)] = "",
    note: Annotated[str, Form(max_length=200)] = "",
    is_new: Annotated[bool, Form()] = False,
) -> Response:
    entry_id = id.strip()
    data = {
        "id": entry_id,
        "topic": topic,
        "department": department,
        "question": question,
        "also": [line.strip() for line in also.splitlines() if line.strip()],
        "answer": answer,
    }
    form_of = "" if is_new else entry_id  # which form the refusal shows: new, or this entry
    if is_new and state.config.kb_state(entry_id) is not None:
        error = f"编号 {entry_id} 已存在，请换一个编号"
        return _kb_entry_page(request, console, login, state, form_of, data, error)
    try:
        changed = state.config.kb_save([data], login.account.username, note)
    except ConfigError as exc:
        error = messages.problem(str(exc))
        return _kb_entry_page(request, console, login, state, form_of, data, error)
    state.changed()
    return back(f"/manage/kb/{quote(entry_id)}", msg="kb_saved" if changed else "kb_unchanged")


@router.post("/kb/{entry_id}/retire")
def kb_retire(
    request: Request, console: Ctx, login: Manager, state: State, entry_id: str
) -> Response:
    try:
        state.config.kb_save([], login.account.username, "停用", retire=[entry_id])
    except ConfigError as exc:
        return _kb_entry_page(
            request, console, login, state, entry_id, error=messages.problem(str(exc))
        )
    state.changed()
    return back("/manage/kb", msg="kb_retired", entry=entry_id)


@router.post("/kb/{entry_id}/restore/{revision}")
def kb_restore(
    request: Request, console: Ctx, login: Manager, state: State, entry_id: str, revision: int
) -> Response:
    try:
        state.config.kb_restore(entry_id, revision, login.account.username)
    except ConfigError as exc:
        return _kb_entry_page(
            request, console, login, state, entry_id, error=messages.problem(str(exc))
        )
    state.changed()
    return back(f"/manage/kb/{quote(entry_id)}", msg="kb_restored", revision=revision)


@router.post("/kb/import")
async def kb_import(
    request: Request, console: Ctx, login: Manager, state: State, file: UploadFile
) -> Response:
    raw = await file.read(MAX_UPLOAD + 1)
    if len(raw) > MAX_UPLOAD:
        return back("/manage/kb", err="file_too_large")
    try:
        items = parse_kb_upload(file.filename or "upload", raw)
        changed = state.config.kb_save(items, login.account.username, f"导入 {file.filename}"[:200])
    except ConfigError as exc:
        # The reason names rows and fields of the file: shown here, not carried in a URL.
        return _kb_list(
            request, console, login, state, status_code=422, error=messages.problem(str(exc))
        )
    state.changed()
    return back("/manage/kb", msg="kb_imported", changed=changed, unchanged=len(items) - changed)


# ---- prompts ----


@router.get("/prompts", response_class=HTMLResponse)
def prompts_page(request: Request, console: Ctx, login: Manager, state: State) -> Response:
    return _prompts_page(request, console, login, state)


def _prompts_page(
    request: Request,
    console: Console,
    login: LoginSession,
    state: ManagerState,
    error: str = "",
) -> Response:
    active = state.config.active("prompts")
    texts: dict[str, str] = yaml.safe_load(active.content) if active else {}
    recordings = state.config.recordings()
    return render(
        console,
        request,
        "manage_prompts.html",
        login,
        422 if error else 200,
        error=error,
        texts=texts,
        recordings=recordings,
        progress=state.render_job.progress,
        active=active,
    )


@router.post("/prompts/save")
async def prompts_save(request: Request, console: Ctx, login: Manager, state: State) -> Response:
    form = await request.form()
    active = state.config.active("prompts")
    texts: dict[str, str] = dict(yaml.safe_load(active.content)) if active else {}
    for name in list(texts):
        value = form.get(f"p_{name}")
        if isinstance(value, str):
            texts[name] = value.strip()
    content = yaml.safe_dump(texts, allow_unicode=True, sort_keys=False, width=1000)
    try:
        version = state.config.save(
            "prompts", content, login.account.username, str(form.get("note", ""))[:200]
        )
    except ConfigError as exc:
        return _prompts_page(request, console, login, state, messages.problem(str(exc)))
    state.changed()
    _start_render(state)
    return back("/manage/prompts", msg="prompts_saved", version=version.version)


def _start_render(state: ManagerState) -> None:
    brain = state.cache.current()
    state.render_job.start(
        spoken_texts(brain.prompts.texts, brain.menu, [e.answer for e in brain.kb])
    )


@router.post("/prompts/render", response_class=HTMLResponse)
def prompts_render(request: Request, console: Ctx, login: Manager, state: State) -> Response:
    try:
        _start_render(state)
    except PromptError as exc:
        # Status 200: htmx swaps only successful answers into the page, and this one
        # carries the reason where the progress would have been.
        return render(
            console,
            request,
            "_render_progress.html",
            login,
            progress=state.render_job.progress,
            render_error=messages.problem(str(exc)),
        )
    return render(
        console, request, "_render_progress.html", login, progress=state.render_job.progress
    )


@router.get("/prompts/progress", response_class=HTMLResponse)
def prompts_progress(request: Request, console: Ctx, login: Manager, state: State) -> Response:
    return render(
        console, request, "_render_progress.html", login, progress=state.render_job.progress
    )


@router.get("/prompts/{prompt_id}/audio")
def prompt_audio(login: Manager, state: State, prompt_id: str) -> Response:
    brain = state.cache.current()
    text = brain.prompts.texts.get(prompt_id)
    if text is None:
        raise HTTPException(404, "没有这个提示语")
    try:
        audio = state.library.get(text, prompt_id)
    except PromptError as exc:
        raise HTTPException(503, messages.problem(str(exc))) from exc
    return Response(_wav(audio.pcm), media_type="audio/wav", headers={"Cache-Control": "no-store"})


@router.post("/prompts/upload")
async def prompt_upload(
    request: Request,
    console: Ctx,
    login: Manager,
    state: State,
    prompt_id: Annotated[str, Form(max_length=64)],
    file: UploadFile,
) -> Response:
    import re

    if not re.match(ID, prompt_id) or prompt_id not in state.cache.current().prompts.texts:
        return back("/manage/prompts", err="no_such_prompt")
    raw = await file.read(MAX_UPLOAD + 1)
    if len(raw) > MAX_UPLOAD:
        return back("/manage/prompts", err="file_too_large")
    try:
        checked = check_recording(raw, file.filename or "upload.wav")
    except RecordingError as exc:
        error = f"录音未采用：{messages.problem(str(exc))}"
        return _prompts_page(request, console, login, state, error)
    state.config.save_recording(prompt_id, checked.wav, checked.info(), login.account.username)
    seconds = f"{checked.seconds:.1f}"
    return back("/manage/prompts", msg="recording_taken", prompt=prompt_id, seconds=seconds)


@router.post("/prompts/{prompt_id}/remove")
def prompt_remove(login: Manager, state: State, prompt_id: str) -> Response:
    if prompt_id not in state.config.recordings():
        return back("/manage/prompts", err="no_recording")
    state.config.remove_recording(prompt_id, login.account.username)
    return back("/manage/prompts", msg="recording_removed", prompt=prompt_id)


# ---- figures ----


def _period(
    console: Console, period: str, day: str, date_from: str, date_to: str
) -> tuple[datetime, datetime, str]:
    tz = console.settings.tickets.timezone
    try:
        chosen = date.fromisoformat(day) if day else None
        if period == "custom":
            first = date.fromisoformat(date_from)
            last = date.fromisoformat(date_to)
            if last < first:
                raise ValueError
            start, _ = period_bounds("day", first, tz)
            _, end = period_bounds("day", last, tz)
            return start, end, f"{first} 至 {last}"
    except ValueError as exc:
        raise HTTPException(422, "日期格式应为 YYYY-MM-DD，且截止日期不早于起始日期") from exc
    start, end = period_bounds(period if period in ("day", "week", "month") else "day", chosen, tz)
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    first_day = start.astimezone(zone).date()
    last_day = (end.astimezone(zone) - timedelta(seconds=1)).date()
    label = str(first_day) if first_day == last_day else f"{first_day} 至 {last_day}"
    return start, end, label


PeriodQ = Annotated[str, Query(pattern=r"^(day|week|month|custom)$")]
DayQ = Annotated[str, Query(max_length=10)]


@dataclass(frozen=True)
class ChosenFigures:
    """The figures of the period chosen in the query, with the choice itself (the page
    shows it back in its form)."""

    figures: FigureSet
    label: str
    period: str
    day: str
    date_from: str
    date_to: str


def _chosen_figures(
    console: Ctx,
    period: PeriodQ = "week",
    day: DayQ = "",
    date_from: DayQ = "",
    date_to: DayQ = "",
) -> ChosenFigures:
    """The page and its CSV read the same query; declared after ``login`` in each route,
    this runs only once the manager is known."""
    start, end, label = _period(console, period, day, date_from, date_to)
    f = Figures(console.service.store, console.settings.tickets.timezone).compute(start, end)
    return ChosenFigures(f, label, period, day, date_from, date_to)


Chosen = Annotated[ChosenFigures, Depends(_chosen_figures)]


@router.get("/figures", response_class=HTMLResponse)
def figures_page(request: Request, console: Ctx, login: Manager, chosen: Chosen) -> Response:
    f = chosen.figures
    return render(
        console,
        request,
        "manage_figures.html",
        login,
        f=f,
        label=chosen.label,
        period=chosen.period,
        day=chosen.day,
        date_from=chosen.date_from,
        date_to=chosen.date_to,
        query=request.url.query,
        **_charts(f),
    )


def _charts(f: Any) -> dict[str, Any]:
    return {
        "chart_hours": charts.columns(f.per_hour, [f"{h}" for h in range(24)], "每小时来电量"),
        "chart_types": charts.bars([(request_type_label(k), n) for k, n in f.by_type], "按类型"),
        "chart_topics": charts.bars(f.by_topic, "按主题"),
        "chart_districts": charts.bars(f.by_district, "按区域"),
        "chart_handled": charts.share(
            [(HANDLED_LABELS[k], f.handled.get(k, 0)) for k in HANDLED_LABELS], "机器人答复与转人工"
        ),
        "chart_days": charts.columns(
            list(f.per_day.values()), [d[5:] for d in f.per_day], "每日来电量"
        ),
    }


@router.get("/figures.csv")
def figures_csv(login: Manager, chosen: Chosen) -> Response:
    name = f"hotline-figures-{chosen.label.replace(' 至 ', '_')}.csv"
    return Response(
        "\ufeff" + _figures_csv(chosen.figures),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


TYPE_VALUE_LABELS = {t.value: label for t, label in REQUEST_TYPE_LABELS.items()}


def _figures_csv(f: FigureSet) -> str:
    """The figures for a spreadsheet, headed and labelled in Chinese (``FigureSet.csv``,
    for the command line, keeps the code's keys)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    zone = ZoneInfo(f.timezone)
    writer.writerow(messages.FIGURES_HEADER)
    rows: list[tuple[str, str, Any]] = [
        ("period", "start", f.start.astimezone(zone).isoformat()),
        ("period", "end", f.end.astimezone(zone).isoformat()),
        *f.rows(),
    ]
    for section, key, value in rows:
        shown = messages.figure_row(section, key, TYPE_VALUE_LABELS)
        # Keys include what callers said (unanswered questions): no formulas.
        writer.writerow([escape_cell(cell) for cell in (*shown, "" if value is None else value)])
    return out.getvalue()


@router.get("/report", response_class=HTMLResponse)
def report(
    request: Request,
    console: Ctx,
    login: Manager,
    period: Annotated[str, Query(pattern=r"^(day|week|month)$")] = "day",
    day: DayQ = "",
) -> Response:
    start, end, label = _period(console, period, day, "", "")
    f = Figures(console.service.store, console.settings.tickets.timezone).compute(start, end)
    clusters = hot_topics(console.service.store, now=min(end, datetime.now(UTC)))
    title = {"day": "日报", "week": "周报", "month": "月报"}[period]
    return render(
        console,
        request,
        "manage_report.html",
        login,
        f=f,
        label=label,
        title=title,
        clusters=clusters[:10],
        TYPE_NAMES={t.value: label for t, label in REQUEST_TYPE_LABELS.items()},
        HANDLED_LABELS=HANDLED_LABELS,
        **_charts(f),
    )


# ---- hot topics ----


@router.get("/hot", response_class=HTMLResponse)
def hot(
    request: Request,
    console: Ctx,
    login: Manager,
    days: Annotated[int, Query(ge=1, le=60)] = 7,
    min_size: Annotated[int, Query(ge=2, le=100)] = 3,
) -> Response:
    clusters = hot_topics(console.service.store, days=days, min_size=min_size)
    return render(
        console, request, "manage_hot.html", login, clusters=clusters, days=days, min_size=min_size
    )
