"""Presentation helpers for the templates: local times, labels, marked transcripts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates

from hotline.settings import Settings
from tickets.accounts import ROLE_LABELS
from tickets.draft import RequestType, TranscriptLine, Urgency
from tickets.ticket import (
    CALLBACK_OUTCOME_LABELS,
    SATISFACTION_LABELS,
    STATUS_LABELS,
    TYPE_LABELS,
    URGENCY_LABELS,
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
        TYPE_LABELS={t.value: label for t, label in TYPE_LABELS.items()},
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
        timedelta_min=lambda minutes: timedelta(minutes=minutes),
    )
