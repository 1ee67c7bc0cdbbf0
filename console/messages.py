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

import logging
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
            values[name] = prompt_name(query[name]) if name == "prompt" else query[name]
        else:
            return ""
    return text.format_map(values)


def _placeholders(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


# ---- what the bot and the checks write in English, as staff read it ----
#
# The bot, the call controller and the checks of menus, knowledge bases, prompts and
# recordings (bot/, ivr/, manage/) write English: for the command line, the logs and the
# API, which keep the original. Every console page shows them through the functions
# below; a message of a shape not listed here is shown as a general Chinese sentence
# (and logged), never as English.

log = logging.getLogger(__name__)

FIELD_NAMES: dict[str, str] = {
    # the five elements and the caller (bot.dialogue's ask:/fix: steps)
    "where": "地点", "when": "时间", "who_what": "涉及对象", "what_happened": "事情经过",
    "caller_wants": "诉求", "caller_name": "姓名", "name": "姓名",
    "callback_number": "回拨号码", "callback_digits": "回拨号码", "address": "地址",
    "ticket_number": "工单编号", "confirm": "确认",
    # knowledge-base fields
    "id": "编号", "topic": "主题", "department": "承办单位", "question": "问题",
    "also": "其他问法", "answer": "答案",
    # menu fields
    "key": "按键", "label": "名称", "prompt": "提示语", "options": "选项",
    "submenus": "下级菜单", "ask": "请来电人说话", "intake": "登记工单",
    "transfer": "转人工专席", "submenu": "进入下级菜单", "repeat": "重听菜单",
}  # fmt: skip

DIALOGUE_STEPS: dict[str, str] = {
    "main": "主菜单", "submenu": "下级菜单", "answered": "已答复", "rephrase": "请重述",
    "readback": "复述核对", "correct": "更正", "ended": "结束", "intake": "登记",
    "consultation": "咨询", "complaint": "投诉", "help": "求助", "report": "举报",
    "suggestion": "建议", "praise": "表扬", "human": "转人工", "emergency": "紧急",
}  # fmt: skip

ACTORS = {"bot": "机器人", "system": "系统", "controller": "呼叫中控"}

PROMPT_NAMES: dict[str, str] = {
    "greeting": "欢迎语", "greeting_night": "夜间欢迎语", "listen_again": "请再说",
    "rephrase": "没听清", "not_understood_handover": "答不了转人工",
    "not_understood_night": "答不了夜间登记", "answer_followup": "答后追问",
    "goodbye": "结束语", "emergency": "危及生命", "emergency_fire": "火情",
    "emergency_medical": "急症", "emergency_police": "治安", "emergency_traffic": "交通事故",
    "emergency_water": "落水", "emergency_check": "询问是否危及生命", "confirm_kb": "确认问题",
    "cannot_answer": "暂时答不了", "ask_again": "请再说问题", "ask_ticket_number": "询问工单编号",
    "ticket_status": "工单进度", "ticket_not_found": "查无工单", "readback_changed": "更正后复述",
    "emergency_night": "夜间危及生命", "abusive_warning": "文明用语提醒",
    "abusive_end": "不文明来电结束", "transfer": "转人工", "human_night": "夜间要人工",
    "intake_start": "开始登记", "ask_what_happened": "询问事情经过", "ask_where": "询问地点",
    "ask_where_area": "询问街道", "ask_where_spot": "询问具体位置", "ask_when": "询问时间",
    "ask_who_what": "询问涉及对象", "ask_caller_wants": "询问诉求",
    "ask_caller_name": "询问称呼", "ask_callback_number": "询问回拨号码",
    "ask_callback_digits": "请输入回拨号码", "readback": "复述核对",
    "ask_correction": "询问更正项", "ask_correction_field": "请重说更正项",
    "ticket_created_day": "已生成工单（白天）", "ticket_created_night": "已登记工单（夜间）",
    "silence": "无声提醒", "silence_menu": "无声时读菜单", "silence_end": "无声挂机",
    "menu_invalid": "无此选项", "survey": "满意度评价", "callback_registered": "非工作时间登记回电",
    "confirm_heard": "确认听到的词",
}  # fmt: skip

_HANDOVER: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"caller hung up before the intake was finished"), "登记未完成时来电人挂机"),
    (re.compile(r"the call controller stopped mid-call"), "通话中呼叫中控停止运行"),
    (re.compile(r"emergency: (?P<cue>.*)"), "紧急情况：{cue}"),
    (re.compile(r"caller asked for a person(?: \((?P<cue>.*)\))?"), "来电人要求转人工（{cue}）"),
    (re.compile(r"caller said no to two suggested answers"), "来电人两次否认推荐的答案"),
    (re.compile(r"not answered after rephrasing: (?P<why>.*)"),
     "请来电人换个说法后仍未能答复：{why}"),
    (re.compile(r"empty utterance"), "没有听到内容"),
    (re.compile(r"recogniser confidence (?P<value>[\d.]+)"), "语音识别置信度低（{value}）"),
    (re.compile(r"no knowledge-base answer"), "知识库中没有答案"),
    (re.compile(r"work order number not found twice"), "两次未查到工单编号"),
    (re.compile(r"caller pressed 0"), "来电人按 0 转人工"),
    (re.compile(r"menu choice (?P<label>.*)"), "菜单选择：{label}"),
    (re.compile(r"menu: (?P<label>.*)"), "菜单选择：{label}"),
    (re.compile(r"caller went silent during intake"), "登记过程中来电人不再说话"),
    (re.compile(r"two corrections not understood"), "两次更正未能听懂"),
    (re.compile(r"media-(?P<direction>\w+)"), "通话语音中断"),
    (re.compile(r"shutdown"), "系统停止运行"),
]  # fmt: skip


def handover_reason(reason: str) -> str:
    """转人工原因 in Chinese (the bot records it in English, see bot.dialogue)."""
    if not _has_english(reason):
        return reason
    for pattern, text in _HANDOVER:
        found = pattern.fullmatch(reason.strip())
        if found:
            values = {k: handover_reason(v or "") for k, v in found.groupdict().items()}
            return text.format_map(values).replace("（）", "")
    log.warning("handover reason without a Chinese wording: %r", reason)
    return "其他原因"


def dialogue_step(step: str) -> str:
    """One step of a call's path: a menu choice ``2:投诉`` (按2 投诉) or a dialogue state
    (``main`` 主菜单, ``ask:caller_wants`` 询问诉求)."""
    kind, _, detail = step.partition(":")
    if detail and not _has_english(kind):  # a menu key, e.g. "2:投诉"
        return f"按{kind} {detail}"
    if kind in ("ask", "fix", "where") and detail:
        verb = {"ask": "询问", "fix": "更正", "where": "核对"}[kind]
        return f"{verb}{FIELD_NAMES.get(detail, '地点' if kind == 'where' else '信息')}"
    if step in DIALOGUE_STEPS:
        return DIALOGUE_STEPS[step]
    return step if not _has_english(step) else "其他步骤"


def actor_name(actor: str) -> str:
    """Who did it: people by their user name, the system's own parts in words."""
    if actor.startswith("seat:"):
        return f"坐席 {actor.removeprefix('seat:')}"
    return ACTORS.get(actor, actor)


def prompt_name(prompt_id: str) -> str:
    return PROMPT_NAMES.get(prompt_id, prompt_id)


# The checks' messages look like "<where>: <what>"; each part is translated on its own.
_PLACES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"knowledge base(?: .*)?"), "知识库"),
    (re.compile(r"prompts(?: .*)?"), "提示语"),
    (re.compile(r"menu"), "菜单"),
    (re.compile(r"(?P<name>[^:\s]+\.[A-Za-z0-9]{2,4})"), "{name}"),  # an uploaded file
    (re.compile(r"entry (?P<n>.+?)(?: \(id '(?P<id>[^']*)'\))?"), "条目 {n}"),
    (re.compile(r"row (?P<n>\d+)"), "第 {n} 行"),
    (re.compile(r"submenus(?:\.(?P<name>[^.]+))?(?:\.options)?"), "下级菜单 {name}"),
]
_NODE = re.compile(
    r"(?:options|\.submenu)\[(?P<n>\d+)\](?: \(key (?P<key>\S+)(?: (?P<label>[^)]*))?\))?"
)

_PROBLEMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"field '(?P<field>\w+)' is missing or empty"), "「{field}」未填写"),
    (re.compile(r"field '(?P<field>\w+)' must be text"), "「{field}」应为文字"),
    (re.compile(r"field 'id' must be letters, digits, '-', '_' or '\.' \(got '(?P<got>.*)'\)"),
    "编号只能用字母、数字、-、_ 或 .（现为「{got}」）"),
    (re.compile(r"field 'also' must be a list of questions"), "「其他问法」应为问题列表"),
    (re.compile(r"unknown field '(?P<field>[^']*)'.*"), "不认识的字段「{field}」"),
    (re.compile(r"field 'id' duplicates (?P<other>.*)"), "编号与{other}重复"),
    (re.compile(r"the knowledge base has no entries"), "知识库里没有任何条目"),
    (re.compile(r"not valid YAML(?: at line (?P<line>\d+))?.*", re.S),
     "YAML 格式错误（第 {line} 行）"),
    (re.compile(r"expected a list of entries"), "应为条目列表"),
    (re.compile(r"expected a mapping with fields .*"),
     "每个条目应包含编号、主题、承办单位、问题、答案等字段"),
    (re.compile(r"CSV header lacks column\(s\) (?P<columns>[^(]*).*"), "CSV 表头缺少列：{columns}"),
    (re.compile(r"use a \.yaml, \.yml or \.csv file"), "请上传 .yaml、.yml 或 .csv 文件"),
    (re.compile(r"no entry '(?P<id>[^']*)' to retire"), "没有条目「{id}」，无法停用"),
    (re.compile(r"entry '(?P<id>[^']*)' has no revision (?P<n>\d+)"), "条目「{id}」没有第 {n} 版"),
    (re.compile(r"not UTF-8 text.*"), "不是 UTF-8 编码的文本"),
    (re.compile(r"no version (?P<n>\d+)"), "没有版本 {n}"),
    (re.compile(r"expected a mapping of prompt id to text"), "应为「提示语编号: 文字」的对照表"),
    (re.compile(r"prompt\(s\) missing or empty: (?P<ids>.*)"), "以下提示语缺失或为空：{ids}"),
    (re.compile(r"expected a mapping with 'options'(?: \(and 'prompt'\))?"),
     "应包含选项列表（及提示语）"),
    (re.compile(r"expected a mapping of name to submenu"), "应为「名称: 下级菜单」的对照表"),
    (re.compile(r"unreachable: no option leads to this submenu"), "没有任何选项进入这个下级菜单"),
    (re.compile(r"expected a non-empty list of options.*"),
     "至少要有一个选项（空的一级菜单是死路）"),
    (re.compile(r"(?P<n>\d+) options; at most 9 per level"), "有 {n} 个选项，每级最多 9 个"),
    (re.compile(r"expected a mapping"), "格式不对"),
    (re.compile(r"key '0' is reserved for reaching a person"), "按键 0 留给转人工，不能另作他用"),
    (re.compile(r"field 'key' must be one of 1-9, \* or # \(got (?P<got>.*)\)"),
     "按键只能是 1-9、* 或 #（现为 {got}）"),
    (re.compile(r"key '(?P<key>[^']*)' is used twice on this level \(also (?P<other>.*)\)"),
     "按键 {key} 在本级重复（另见{other}）"),
    (re.compile(r"field 'prompt' is empty: .*", re.S), "提示语为空：来电人将什么也听不到"),
    (re.compile(r"the prompt never tells the caller how to reach a person.*", re.S),
     "提示语没有告诉来电人如何转人工（如「人工服务请按零」）"),
    (re.compile(r"the prompt does not mention key (?P<key>\S+) \((?P<name>.*)\)"),
     "提示语没有提到按键 {key}（{name}）"),
    (re.compile(r"needs exactly one action of .*", re.S), "每个选项须有且只有一个动作"),
    (re.compile(r"field 'prompt' belongs to a submenu option only"),
     "只有进入下级菜单的选项才能有提示语"),
    (re.compile(r"a submenu inside a submenu; .*"), "菜单最多两级，下级菜单里不能再有下级菜单"),
    (re.compile(r"submenu '(?P<name>[^']*)' is not defined under 'submenus'"),
     "下级菜单「{name}」没有定义"),
    (re.compile(r"field 'intake' must be one of .* \(got (?P<got>.*)\)"),
     "登记类型须为投诉、求助、举报、建议或表扬（现为 {got}）"),
    (re.compile(r"field 'transfer' must be a queue: .* \(got (?P<got>.*)\)"),
     "转人工须选择已配置的专席队列（现为 {got}）"),
    (re.compile(r"field 'ask' is missing its prompt text.*"), "「请来电人说话」缺少提示语"),
    (re.compile(r"not a PCM WAV file.*"), "不是 PCM 编码的 WAV 文件"),
    (re.compile(r"unsupported sample width (?P<bits>\d+) bit"), "不支持 {bits} 位采样"),
    (re.compile(r"contains no audio"), "没有声音"),
    (re.compile(r"clipped: (?P<n>\d+) samples at full scale.*"),
     "录音削波（{n} 个采样满幅），请把音量调低约 6 dB 后重录"),
    (re.compile(r"(?P<s>\d+) s long; a prompt should be under (?P<max>\d+) s"),
     "录音长 {s} 秒，提示音应短于 {max} 秒"),
    (re.compile(r"almost silent \(level (?P<level>-?\d+) dBFS\).*", re.S),
     "录音几乎无声（电平 {level} dBFS），请检查麦克风后重录"),
    (re.compile(r"starts with (?P<s>[\d.]+) s of silence; trim it to under (?P<max>\d+) s.*", re.S),
     "开头有 {s} 秒静音，请剪到 {max} 秒以内"),
    (re.compile(r"unknown configuration kind .*"), "未知的配置类型"),
]  # fmt: skip


def problem(message: str) -> str:
    """A check's complaint (menu, knowledge base, prompts, recording) in Chinese."""
    if not _has_english(message):
        return message
    whole = _match(_PROBLEMS, message.strip())
    if whole is not None:
        return whole
    parts = message.split(": ")
    for cut in range(1, len(parts)):
        where = [place(p) for p in parts[:cut]]
        what = _match(_PROBLEMS, ": ".join(parts[cut:]).strip())
        if what is not None and all(w is not None for w in where):
            return "：".join([*(w for w in where if w), what])
    log.warning("check message without a Chinese wording: %r", message)
    return "内容未通过检查，请核对后重试"


def place(text: str) -> str | None:
    """Where a check found a problem ("entry 3", "options[2] (key 2 投诉)"), or None."""
    text = text.strip()
    if _NODE.match(text):
        steps = [
            f"第 {m['n']} 项"
            + (f"（按键 {m['key']} {m['label'] or ''}）".replace(" ）", "）") if m["key"] else "")
            for m in _NODE.finditer(text)
        ]
        return " › ".join(steps)
    found = _match(_PLACES, text)
    return found.replace("  ", " ").strip() if found is not None else None


def _key_of(key: str, label: str | None) -> str:
    return f"（按键 {key} {label}）" if label else f"（按键 {key}）"


def menu_problem(node: str, message: str) -> str:
    """One problem of the menu editor: where (in Chinese) and what."""
    where = place(node.split(".options")[0]) if node.startswith("submenus") else place(node)
    return f"{where or '菜单'}：{problem(message)}"


def _match(rules: list[tuple[re.Pattern[str], str]], text: str) -> str | None:
    for pattern, wording in rules:
        found = pattern.fullmatch(text)
        if found:
            values = {k: _value(k, v or "") for k, v in found.groupdict().items()}
            if "columns" in values:
                names = [c.strip() for c in values["columns"].split(",")]
                values["columns"] = "、".join(FIELD_NAMES.get(c, c) for c in names)
            return wording.format_map(values).replace("（第  行）", "").strip()
    return None


def _value(name: str, value: str) -> str:
    """A detail of a check's message: field names and places in words, prompt ids by
    their names; what the user typed stays as it was."""
    if name == "field":
        return FIELD_NAMES.get(value, value)
    if name == "other":
        return place(value) or value
    if name == "ids":
        return "、".join(prompt_name(i.strip()) for i in value.split(","))
    return value


def _has_english(text: str) -> bool:
    return re.search(r"[A-Za-z]{2,}", text) is not None


# ---- the figures' CSV export (manage.figures.FigureSet.rows), for the city's spreadsheets ----

FIGURE_SECTIONS = {
    "period": "统计期间", "summary": "概况", "calls_per_hour": "每小时来电",
    "calls_per_day": "每日来电", "by_type": "按类型", "by_topic": "按主题",
    "by_district": "按区域", "satisfaction": "来电评价", "kb_hits": "知识库命中",
    "unanswered": "未能答复的问题", "followed_by_human": "答复后仍转人工",
}  # fmt: skip
FIGURE_KEYS = {
    "start": "开始", "end": "结束", "calls": "来电量", "connect_rate_15s": "15 秒接通率",
    "handled_bot": "机器人答复", "handled_person": "转人工或工单", "abandoned": "未办结挂机",
    "direct_answer_rate": "直接答复率", "satisfaction_rate": "来电满意率",
    "follow_up_satisfaction_rate": "回访满意率", "tickets_created": "新建工单",
    "tickets_closed": "办结工单", "tickets_overdue": "超期工单", "on_time_rate": "按期办结率",
    "dispatch_late": "派单超时", "dispatch_on_time_rate": "按时派单率",
    "avg_seat_wait_s": "平均等待坐席（秒）", "avg_ticket_wait_s": "工单平均等待受理（秒）",
}  # fmt: skip
CALL_RATINGS = {"1": "满意", "2": "基本满意", "3": "不满意"}
FIGURES_HEADER = ["分类", "项目", "数值"]


def figure_row(section: str, key: str, type_names: Mapping[str, str]) -> tuple[str, str]:
    """A row's section and key in words; keys that are data (topics, districts, what
    callers said, knowledge-base ids, days) stay as they are."""
    if section == "calls_per_hour":
        shown = f"{key} 时"
    elif section == "by_type":
        shown = type_names.get(key, key)
    elif section == "satisfaction":
        shown = CALL_RATINGS.get(key, key)
    elif section in ("summary", "period"):
        shown = FIGURE_KEYS.get(key, key)
    else:
        shown = key
    return FIGURE_SECTIONS.get(section, section), shown
