"""The banners a page shows after a redirect: chosen by key from a fixed catalogue.

A redirect after a change says what happened with ``?msg=<key>`` (or ``?err=<key>``), never
with the text itself: a link anyone can send must not make the console show words of the
sender's choosing (``?err=账号已冻结，请致电…`` looked like a system message). Unknown keys
show nothing. A message may name a detail (a ticket number, a version); such details
travel in the query only in a checked format (digits, a ticket number, an identifier), or
come from the page itself (the ticket's department, read from the database). Errors with
free text (a YAML parser's complaint, a refused transition) are shown on the page that
answers the POST, not carried in a URL.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from urllib.parse import urlencode

NOTICES: dict[str, str] = {
    "queue_empty": "队列中暂无待接工单",
    "saved": "已保存",
    "dispatched": "已转办至 {department}",
    "accepted": "已登记承办单位签收",
    "supervised": "已督办",
    "replied": "已登记承办单位反馈",
    "calling": "正在呼叫：请接起您的话机",
    "followed_up": "已记录回访结果",
    "callback_recorded": "已登记回电结果",
    "ticket_filed": "已新建工单 {ticket}",
    "closed": "工单已办结",
    "released": "工单 {ticket} 已退回队列",
    "reassigned": "已改派给 {assignee}",
    "menu_saved": "菜单已保存为版本 {version}，新来电即生效",
    "menu_rolled_back": "已回滚到版本 {target}（保存为版本 {version}）",
    "kb_saved": "已保存，新来电即按新答案回答",
    "kb_unchanged": "内容没有变化",
    "kb_retired": "条目 {entry} 已停用",
    "kb_restored": "已恢复第 {revision} 版内容",
    "kb_imported": "已导入：{changed} 条新增或修改，{unchanged} 条未变",
    "prompts_saved": "提示语已保存为版本 {version}，正在后台重新生成语音",
    "recording_taken": "{prompt} 已使用真人录音（{seconds} 秒，已转为 8 kHz）",
    "recording_removed": "{prompt} 已恢复为合成语音",
    "extension_approved": "已同意延期，办理期限已顺延",
    "extension_refused": "已不同意延期",
    "merged": "已并案至工单 {ticket}",
    "dept_accepted": "已签收，请按期办理",
    "dept_extension_requested": "延期申请已提交，等待热线审批",
    "dept_returned": "已退单，工单退回热线重新派单",
    "dept_replied": "办理结果已反馈热线",
    "dept_assist_noted": "协办意见已提交",
}

PROBLEMS: dict[str, str] = {
    "login_expired": "页面已过期，请重新登录",
    "bad_login": "用户名或密码错误",
    "file_too_large": "文件过大（上限 20 MB）",
    "no_such_prompt": "没有这个提示语",
    "no_recording": "这个提示语没有录音",
}

_NUMBER = r"\d{1,9}"
_IDENTIFIER = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"  # KB entry and prompt ids
# The details a URL may carry, each in the only format it can have.
DETAILS: dict[str, re.Pattern[str]] = {
    "ticket": re.compile(r"\d{8}-\d{4,6}"),
    "version": re.compile(_NUMBER),
    "target": re.compile(_NUMBER),
    "revision": re.compile(_NUMBER),
    "changed": re.compile(_NUMBER),
    "unchanged": re.compile(_NUMBER),
    "entry": re.compile(_IDENTIFIER),
    "prompt": re.compile(_IDENTIFIER),
    "seconds": re.compile(r"\d{1,4}\.\d"),
}


def link(path: str, msg: str = "", err: str = "", **details: object) -> str:
    """``path`` with the message key and its checked details in the query."""
    if (msg and msg not in NOTICES) or (err and err not in PROBLEMS):
        raise KeyError(f"no message {msg or err!r} in the catalogue")
    query: dict[str, str] = {"msg": msg} if msg else {"err": err} if err else {}
    for name, value in details.items():
        if name not in DETAILS:
            raise KeyError(f"{name!r} is not a detail a URL may carry")
        if DETAILS[name].fullmatch(str(value)):
            query[name] = str(value)
    return f"{path}?{urlencode(query)}" if query else path


def banner(
    catalogue: Mapping[str, str],
    key: str,
    query: Mapping[str, str],
    page_details: Mapping[str, str] | None = None,
) -> str:
    """The catalogue's text for ``key`` with its details filled in, or "" when the key is
    unknown or a detail is missing or not in its format (better no banner than a wrong one)."""
    text = catalogue.get(key)
    if text is None:
        return ""
    values: dict[str, str] = {}
    for name in _placeholders(text):
        if page_details and name in page_details:
            values[name] = page_details[name]
        elif name in DETAILS and DETAILS[name].fullmatch(query.get(name, "")):
            values[name] = query[name]
        else:
            return ""
    return text.format_map(values)


def _placeholders(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]
