"""The ticket draft: what a call hands to the ticket store (the bot -> tickets contract).

The bot fills it while it talks to the caller; the call session adds the evidence
(call id, transcript, recording) and hands it over. The store turns it into a work order.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class RequestType(str, Enum):  # noqa: UP042 (str() of members is relied on)
    CONSULTATION = "consultation"  # 咨询
    COMPLAINT = "complaint"  # 投诉
    HELP = "help"  # 求助
    REPORT = "report"  # 举报
    SUGGESTION = "suggestion"  # 建议
    PRAISE = "praise"  # 表扬
    HUMAN = "human"  # asked for a person before saying what about
    EMERGENCY = "emergency"  # danger to life: 110/119/120 advised
    ABUSIVE = "abusive"


class Urgency(str, Enum):  # noqa: UP042
    NORMAL = "normal"
    URGENT = "urgent"
    EMERGENCY = "emergency"


# The one table of request-type names: what the bot says, the ticket shows and the
# figures count by (four copies used to disagree: 不文明来电 / 无效来电 / 不文明).
REQUEST_TYPE_LABELS: dict[RequestType, str] = {
    RequestType.CONSULTATION: "咨询",
    RequestType.COMPLAINT: "投诉",
    RequestType.HELP: "求助",
    RequestType.REPORT: "举报",
    RequestType.SUGGESTION: "建议",
    RequestType.PRAISE: "表扬",
    RequestType.HUMAN: "转人工",
    RequestType.EMERGENCY: "紧急情况",
    RequestType.ABUSIVE: "无效来电",
}
UNCLASSIFIED_LABEL = "未分类"
URGENCY_LABELS = {Urgency.NORMAL: "一般", Urgency.URGENT: "紧急", Urgency.EMERGENCY: "特急"}


def request_type_label(value: str | RequestType) -> str:
    """The Chinese name of a request type (its value as stored, or the enum)."""
    try:
        return REQUEST_TYPE_LABELS[RequestType(value)]
    except ValueError:
        return UNCLASSIFIED_LABEL


class Caller(BaseModel):
    number: str = ""  # caller ID; personal data: mask in logs
    name: str = ""
    callback_number: str = ""
    anonymous: bool = False
    confidential: bool = False
    language: str = "zh-CN"


class Address(BaseModel):
    """Parts recognised from the city gazetteer (bot/gazetteer)."""

    district: str = ""
    street: str = ""
    community: str = ""
    building: str = ""
    detail: str = ""  # the words as spoken

    def text(self) -> str:
        parts = (self.district, self.street, self.community, self.building)
        return "".join(p for p in parts) or self.detail


class FiveElements(BaseModel):
    where: str = ""
    when: str = ""
    who_what: str = ""
    what_happened: str = ""
    caller_wants: str = ""
    address: Address = Field(default_factory=Address)

    def missing(self) -> list[str]:
        names = ("where", "when", "who_what", "what_happened", "caller_wants")
        return [name for name in names if not getattr(self, name)]


# NaN and infinities are no numbers to SQL: PostgreSQL refused the ticket, SQLite stored null.
FINITE = ConfigDict(allow_inf_nan=False)


class TranscriptWord(BaseModel):
    """One recognised word with the recogniser's confidence (for marking doubtful words)."""

    model_config = FINITE

    text: str
    confidence: float = 1.0


class TranscriptLine(BaseModel):
    model_config = FINITE

    speaker: str  # caller | bot
    text: str
    confidence: float = 1.0
    words: list[TranscriptWord] = Field(default_factory=list)  # optional word-level detail
    start_s: float = 0.0
    end_s: float = 0.0


class TicketDraft(BaseModel):
    type: RequestType
    topic: str = ""
    department: str = ""
    urgency: Urgency = Urgency.NORMAL
    elements: FiveElements = Field(default_factory=FiveElements)
    caller: Caller = Field(default_factory=Caller)
    caller_words: list[str] = Field(default_factory=list)  # verbatim utterances
    summary: str = ""
    handover_reason: str = ""
    kb_answers: list[str] = Field(default_factory=list)  # knowledge-base ids already answered
    # Evidence the call session adds.
    call_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    menu_path: list[str] = Field(default_factory=list)
    dtmf: str = ""
    transcript: list[TranscriptLine] = Field(default_factory=list)
    recording_path: str = ""
    callback_promised: bool = False


# What only the call itself witnessed: the network's caller ID, what was said and keyed,
# what the bot answered, the recording. Anyone else could forge a call with them, so only
# the call controller may file a draft that carries any (console.routers.api checks).
EVIDENCE_FIELDS = (
    "call_id",
    "started_at",
    "ended_at",
    "menu_path",
    "dtmf",
    "transcript",
    "recording_path",
    "caller_words",
    "kb_answers",
)


def evidence_fields(draft: TicketDraft) -> list[str]:
    """The evidence this draft carries: the fields above set off their defaults."""
    fields = TicketDraft.model_fields
    found = [
        name
        for name in EVIDENCE_FIELDS
        if getattr(draft, name) != fields[name].get_default(call_default_factory=True)
    ]
    if draft.caller.number:  # the caller ID; a number a person took down is callback_number
        found.append("caller.number")
    return found
