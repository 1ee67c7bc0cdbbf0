"""Refusing bad input cleanly: a 4xx that says where and what, never a 500, never a
traceback, never the input echoed back.

FastAPI's own answer to invalid input repeats the input (``"input": ...``); with a lone
surrogate in it (``"\\ud800"`` is valid JSON syntax) even that answer failed to encode and
became a 500, and the same string reached the database as a 500 too. Here:

* the API's JSON is parsed strictly (:class:`StrictJSONRoute`): UTF-8 only, no lone
  surrogates, no ``NaN``/``Infinity`` and no number too large for a float, nothing nested
  past Python's recursion limit; each is a 422 ``json_invalid``;
* validation errors answer with the field's location and the error's type only, plus a
  fixed Chinese message per type (:func:`validation_failed`); pages get a Chinese page;
* pages refuse NUL characters in the path, query or form (:func:`refuse_nul`): PostgreSQL
  cannot store them and answered with a 500;
* anything unforeseen is a plain 500 with a fixed text (:func:`server_failed`); the
  traceback goes to the log only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from console.app import Console

# Fixed texts per pydantic error type: what is wrong, never what was sent.
TYPE_MESSAGES: dict[str, str] = {
    "json_invalid": "请求体不是有效的 JSON",
    "missing": "缺少必填内容",
    "string_too_long": "内容过长",
    "string_too_short": "内容过短或为空",
    "string_pattern_mismatch": "格式不符",
    "nul_character": "不能含 NUL 字符",
    "enum": "不是允许的取值",
    "literal_error": "不是允许的取值",
    "int_parsing": "应为整数",
    "float_parsing": "应为数字",
    "finite_number": "应为有限的数字",
    "bool_parsing": "应为是或否",
    "date_parsing": "日期格式应为 YYYY-MM-DD",
    "date_from_datetime_parsing": "日期格式应为 YYYY-MM-DD",
    "datetime_parsing": "时间格式无效",
    "datetime_from_date_parsing": "时间格式无效",
    "greater_than": "超出允许范围",
    "greater_than_equal": "超出允许范围",
    "less_than": "超出允许范围",
    "less_than_equal": "超出允许范围",
    "too_long": "条目过多",
    "too_short": "条目过少",
}
# Form and query fields of the pages, by the label the page shows.
FIELD_LABELS: dict[str, str] = {
    "username": "用户名",
    "password": "密码",
    "type": "诉求类型",
    "urgency": "紧急程度",
    "topic": "主题",
    "department": "承办单位",
    "skill": "技能队列",
    "caller_name": "来电人姓名",
    "callback_number": "回电号码",
    "confidential": "保密",
    "where": "地点",
    "when": "时间",
    "who_what": "涉及对象",
    "what_happened": "事件经过",
    "caller_wants": "诉求",
    "summary": "摘要",
    "note": "说明",
    "reply": "单位答复",
    "result": "回访结果",
    "satisfaction": "满意度",
    "number": "工单编号",
    "phone": "电话",
    "text": "文字",
    "status": "状态",
    "date_from": "起始日期",
    "date_to": "截止日期",
    "day": "日期",
    "period": "统计周期",
    "days": "天数",
    "min_size": "最少件数",
    "q": "搜索词",
    "retired": "含已停用",
    "content": "菜单 YAML",
    "id": "编号",
    "question": "标准问题",
    "also": "其他问法",
    "answer": "答案",
    "prompt_id": "提示语",
    "prompt": "提示语",
    "file": "文件",
    "key": "按键",
    "night": "夜间模式",
    "revision": "版本",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_TYPE = re.compile(r"[a-z_]{1,50}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def safe_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Each error as location, type and a fixed message. A location part that is not a
    plain field name (a key the client made up) is shown as "*"."""
    out = []
    for error in exc.errors():
        loc = [
            part if isinstance(part, int) or _NAME.fullmatch(str(part)) else "*"
            for part in error.get("loc", ())
        ]
        kind = str(error.get("type", ""))
        kind = kind if _TYPE.fullmatch(kind) else "invalid"
        out.append({"loc": loc, "type": kind, "msg": TYPE_MESSAGES.get(kind, "内容无效")})
    return out


async def validation_failed(request: Request, exc: Exception) -> Response:
    """422: the API gets where and what in JSON; a page gets a Chinese page."""
    assert isinstance(exc, RequestValidationError)
    errors = safe_errors(exc)
    if _is_api(request):
        return JSONResponse({"detail": errors}, status_code=422)
    fields = []
    for error in errors:
        label = FIELD_LABELS.get(str(error["loc"][-1])) if error["loc"] else None
        fields.append(f"{label or '某项内容'}（{error['msg']}）")
    detail = "提交的内容无效，请返回检查后重试：" + "；".join(dict.fromkeys(fields))
    return error_page(request, 422, detail)


async def server_failed(request: Request, exc: Exception) -> Response:
    """500 with a fixed text; Starlette logs the traceback, the client never sees it."""
    detail = "服务器内部错误，请稍后重试；如反复出现，请联系系统管理员"
    if _is_api(request):
        return JSONResponse({"detail": detail}, status_code=500)
    return error_page(request, 500, detail)


def error_page(request: Request, status: int, detail: str) -> Response:
    console: Console = request.app.state.console
    return console.templates.TemplateResponse(
        request,
        "error.html",
        {
            "status": status,
            "detail": detail,
            "account": None,
            "login": None,
            "csrf": "",
            "msg": "",
            "err": "",
        },
        status_code=status,
    )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/openapi"))


# ---- NUL characters on pages ----


async def refuse_nul(request: Request) -> None:
    """Pages' router dependency: a NUL in the path, query or a form field is a 422."""
    found = [("path", k) for k, v in request.path_params.items() if "\x00" in str(v)]
    found += [("query", k) for k, v in request.query_params.multi_items() if "\x00" in k + v]
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        found += [
            ("body", k) for k, v in form.multi_items() if isinstance(v, str) and "\x00" in k + v
        ]
    if found:
        raise RequestValidationError(
            [{"type": "nul_character", "loc": (where, _printable(name))} for where, name in found]
        )


def _printable(name: str) -> str:
    return name if _NAME.fullmatch(name) else "*"


# ---- strict JSON for the API ----


def parse_json(body: bytes) -> Any:
    """The body as JSON, refusing what RFC 8259 or the database does not take; every
    refusal is a :class:`json.JSONDecodeError`, which FastAPI answers as a 422."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("not UTF-8", "", exc.start) from exc
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # our refusals, int digits, nesting depth
        raise json.JSONDecodeError(type(exc).__name__, text, 0) from exc
    if _has_lone_surrogate(value):
        raise json.JSONDecodeError("lone surrogate", text, 0)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise ValueError("number out of range")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string (or key) holds half a UTF-16 pair: valid JSON escapes, but no
    UTF-8 text, so neither the database nor a JSON answer can take it."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """Routes whose JSON bodies are read by :func:`parse_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


# ---- English texts of the framework, on pages ----

PAGE_DETAILS: dict[str, str] = {
    "Not Found": "页面不存在",
    "Method Not Allowed": "不支持这种请求方式",
    "There was an error parsing the body": "提交的内容无法解析，请返回重试",
}
