"""Logging for operations: JSON lines (or text) with personal data masked, secrets dropped.

Every record passes :class:`MaskingFilter` on the handler, whatever logger it came from
(ours, uvicorn's, redis-py's): phone numbers in the message, in extra fields and in
tracebacks are masked (``138****8000``), fields named like a phone or a caller are
masked whatever they hold, and fields named like a secret are replaced by ``***``.
A mistake in one ``log.info`` call therefore cannot leak a citizen's number.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

# Mainland mobiles (optionally +86/86), landlines with a 3-4 digit area code, and the
# spaced or dashed ways people and carriers write both. The look-arounds keep ticket
# numbers (20261122-0042), epoch times and RTP counters out.
_MOBILE = r"(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}"
_LANDLINE = r"(?:\+?86[- ]?)?0\d{2,3}[- ]?\d{7,8}"
PHONE_RE = re.compile(rf"(?<![\d.])(?:{_MOBILE}|{_LANDLINE})(?![\d])")
# Credentials inside URLs (ami://user:secret@host, redis://:pw@host) and key=value text.
# Bounded repeats: an unbounded scheme made masking quadratic in a long run of letters
# (a 60 KB junk SIP datagram in a log line took 20 s and deafened the controller).
_URL_SECRET_RE = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]{0,31}://[^:/@\s]{0,256}:)[^@\s]{1,512}(?P<at>@)", re.I
)
_KV_SECRET_RE = re.compile(
    r"(?P<key>\b(?:password|passwd|secret|token|api[_-]?key|authorization)\b[\"']?\s*[=:]\s*"
    r"[\"']?)(?P<value>[^\s,;\"'&]+)",
    re.I,
)
_SECRET_FIELD = re.compile(r"pass|secret|token|api_?key|authorization|cookie|credential", re.I)
_PHONE_FIELD = re.compile(r"caller|phone|mobile|number|msisdn|\btel|callback", re.I)
_NAME_FIELD = re.compile(r"(?:^|_)(?:name|contact)$", re.I)
# What a LogRecord carries by itself; everything else came in through ``extra=``.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_NOT_PERSONAL = frozenset({"call_id", "ticket", "ticket_number", "number_of_calls"})


def mask_number(number: str) -> str:
    """Keep enough to tell calls apart (prefix, last four), never the whole number."""
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7:
        return "****"
    return digits[:3] + "****" + digits[-4:]


def mask_name(name: str) -> str:
    """张三丰 -> 张**: the family name helps an operator, the rest is personal."""
    return name[:1] + "*" * (len(name) - 1) if name else name


def mask_text(text: str) -> str:
    """Phone numbers and inline credentials masked in free text."""
    text = PHONE_RE.sub(lambda m: mask_number(m.group(0)), text)
    text = _URL_SECRET_RE.sub(r"\g<head>***\g<at>", text)
    return _KV_SECRET_RE.sub(r"\g<key>***", text)


def mask_value(key: str, value: Any) -> Any:
    """One structured field: masked by its name first, then by its content."""
    if _SECRET_FIELD.search(key):
        return "***"
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(key, v) for v in value]
    if not isinstance(value, str):
        return value
    if _NAME_FIELD.search(key):
        return mask_name(value)
    if key not in _NOT_PERSONAL and _PHONE_FIELD.search(key):
        return mask_number(value) if value else value
    return mask_text(value)


class MaskingFilter(logging.Filter):
    """Rewrites the record in place; attach it to handlers so every logger is covered."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: keep its parts, masked
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = mask_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
            record.exc_info = None  # the masked text is what formatters print
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        for key in list(record.__dict__):
            if key not in _RECORD_ATTRS:
                record.__dict__[key] = mask_value(key, record.__dict__[key])
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, then any extra fields."""
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
        json_ensure_ascii=False,
    )


def configure_logging(
    fmt: str = "text", level: str | int = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """One handler on the root logger (replacing others), masking every record."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # uvicorn's loggers carry their own handlers when it configured them: route to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(logging.NOTSET)  # a level uvicorn set would hide records from us
        lg.disabled = False
    return handler
