"""Presentation helpers for the templates: local times, labels, marked transcripts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates

from hotline.draft import (
    REQUEST_TYPE_LABELS,
    URGENCY_LABELS,
    RequestType,
    TranscriptLine,
    Urgency,
)
from hotline.settings import Settings
from tickets.accounts import ROLE_LABELS
from tickets.ticket import (
    CALLBACK_OUTCOME_LABELS,
    SATISFACTION_LABELS,
    STATUS_LABELS,
    Satisfaction,
    Status,
)

ACTION_LABELS = {
    "created": "受理登记",
    "edited": "修改",
    "assigned": "分配坐席",
    "released": "退回队列",
    "dispatch": "转办",
    "accept": "签收办理",
    "supervise": "督办",
    "reply": "登记反馈",
    "follow_up": "回访",
    "close": "办结",
    "note": "备注",
    "call_placed": "点击回拨",
    "duplicate_linked": "关联重复件",
    "callback_reached": "回电：已回电",
    "callback_unreached": "回电：未接通",
    "callback_wrong_number": "回电：号码错误",
}


# What a history entry's detail holds, in the words staff read (the stored keys are the
# code's). Keys not listed here are internal (the call id) and not shown.
DETAIL_LABELS = {
    "note": "说明", "department": "承办单位", "reply": "反馈", "result": "回访结果",
    "satisfaction": "满意度", "skill": "队列", "seat": "坐席", "duplicate_of": "疑似重复件",
    "duplicate": "重复件", "outcome": "结果", "changes": "修改",
}  # fmt: skip
FIELD_LABELS = {
    "type": "类型", "topic": "诉求主题", "department": "承办单位", "urgency": "紧急程度",
    "skill": "队列", "summary": "摘要", "caller.name": "姓名", "caller.number": "来电号码",
    "caller.callback_number": "回拨号码", "caller.confidential": "保密",
    "elements.where": "地点", "elements.when": "时间", "elements.who_what": "涉及对象",
    "elements.what_happened": "事情经过", "elements.caller_wants": "诉求",
}  # fmt: skip


def history_details(detail: dict[str, object], skills: dict[str, str]) -> list[str]:
    """A history entry's detail as Chinese phrases: 「承办单位：市水务局」,
    「修改 姓名：（空）→ 张先生」, 「满意度：满意」; internal keys are left out."""
    values = {
        "satisfaction": {s.value: label for s, label in SATISFACTION_LABELS.items()},
        "type": {t.value: label for t, label in REQUEST_TYPE_LABELS.items()},
        "urgency": {u.value: label for u, label in URGENCY_LABELS.items()},
        "skill": skills,
    }

    def shown(field: str, value: object) -> str:
        if value in ("", None):
            return "（空）"
        if isinstance(value, bool):
            return "是" if value else "否"
        return values.get(field, {}).get(str(value), str(value))

    phrases: list[str] = []
    for key, value in detail.items():
        if key not in DETAIL_LABELS or value in ("", None, {}, []):
            continue
        if key == "changes" and isinstance(value, dict):
            for field, change in value.items():
                before, after = change if isinstance(change, list) else ("", change)
                label = FIELD_LABELS.get(field, field.rsplit(".", 1)[-1])
                phrases.append(f"修改 {label}：{shown(field, before)} → {shown(field, after)}")
        else:
            phrases.append(f"{DETAIL_LABELS[key]}：{shown(key, value)}")
    return phrases


@dataclass(frozen=True)
class Word:
    text: str
    doubtful: bool


def marked_words(line: TranscriptLine, threshold: float) -> list[Word]:
    """Words with their doubt flag; a line without word detail is judged as a whole."""
    if line.words:
        return [Word(w.text, w.confidence < threshold) for w in line.words]
    return [Word(line.text, line.confidence < threshold)]


def install_filters(templates: Jinja2Templates, settings: Settings) -> None:
    zone = ZoneInfo(settings.tickets.timezone)
    env = templates.env

    def local(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return moment.astimezone(zone).strftime(fmt) if moment else ""

    def remaining(due: datetime) -> str:
        delta = due - datetime.now(UTC)
        if delta.total_seconds() < 0:
            return "已超期"
        days, hours = delta.days, delta.seconds // 3600
        return f"剩余 {days} 天 {hours} 小时" if days else f"剩余 {hours} 小时"

    def age(ms: int) -> str:
        seconds = max(0, int(datetime.now(UTC).timestamp() - ms / 1000))
        if seconds < 60:
            return f"{seconds} 秒"
        if seconds < 3600:
            return f"{seconds // 60} 分钟"
        return f"{seconds // 3600} 小时 {seconds % 3600 // 60} 分"

    def overdue_ms(ms: int) -> bool:
        """Waiting longer than the dispatch rule allows (Haikou: 30 minutes)."""
        limit = settings.tickets.dispatch_within_min
        return bool(limit) and datetime.now(UTC).timestamp() - ms / 1000 > limit * 60

    env.filters.update(local=local, remaining=remaining, age=age, overdue_ms=overdue_ms)
    env.globals.update(
        STATUS_LABELS={s.value: label for s, label in STATUS_LABELS.items()},
        TYPE_LABELS={t.value: label for t, label in REQUEST_TYPE_LABELS.items()},
        URGENCY_LABELS={u.value: label for u, label in URGENCY_LABELS.items()},
        SATISFACTION_LABELS={s.value: label for s, label in SATISFACTION_LABELS.items()},
        ROLE_LABELS={r.value: label for r, label in ROLE_LABELS.items()},
        ACTION_LABELS=ACTION_LABELS,
        REQUEST_TYPES=[t.value for t in RequestType],
        URGENCIES=[u.value for u in Urgency],
        STATUSES=[s.value for s in Status],
        SATISFACTIONS=[s.value for s in Satisfaction],
        CALLBACK_OUTCOMES={o.value: label for o, label in CALLBACK_OUTCOME_LABELS.items()},
        SKILLS=settings.tickets.skills,
        DEPARTMENTS=settings.tickets.departments,
        LOW_CONFIDENCE=settings.console.low_confidence,
        DISPATCH_WITHIN_MIN=settings.tickets.dispatch_within_min,
        marked_words=marked_words,
        history_details=lambda detail: history_details(detail, settings.tickets.skills),
        timedelta_min=lambda minutes: timedelta(minutes=minutes),
    )
