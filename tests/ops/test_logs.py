"""Logs never carry a citizen's full number or a secret, whichever way it gets in."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from hotline.logs import configure_logging, mask_number, mask_text


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    configure_logging("json", "DEBUG", stream=out)
    yield logging.getLogger("hotline.test"), out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("call from 13907551234 answered", "13907551234"),
        ("来电 +86 139-0755-1234 已接通", "139-0755-1234"),
        ("sip:8613907551234@10.0.0.2", "13907551234"),
        ("回电号码 0898-66881234", "66881234"),
        ("landline 02164381234 busy", "64381234"),
        ("mobile 139 0755 1234.", "0755 1234"),
    ],
)
def test_phone_numbers_in_text_are_masked(text: str, hidden: str) -> None:
    masked = mask_text(text)
    assert hidden not in masked
    assert "****" in masked


@pytest.mark.parametrize(
    "text",
    [
        "ticket 20261122-0042 queued",
        "took 1731234567.123 s",
        "rtp seq 65535 ts 4294967295",
        "call-id 7f3a9c1e-14d2-4e55-9b1a-2c1d0e0f1234@10.0.0.5",
    ],
)
def test_ticket_numbers_times_and_ids_are_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_mask_number_keeps_prefix_and_last_four() -> None:
    assert mask_number("13907551234") == "139****1234"
    assert mask_number("+86 139 0755 1234") == "861****1234"
    assert mask_number("110") == "****"


def test_json_lines_mask_message_args_and_extra_fields(json_log) -> None:
    log, out = json_log
    log.info(
        "call %s from %s",
        "c-1",
        "13907551234",
        extra={
            "caller": "13907551234",
            "callback_number": "0898-66881234",
            "caller_name": "王小明",
            "call_id": "c-1",
            "queue": "general",
        },
    )
    record = lines(out)[0]
    text = json.dumps(record, ensure_ascii=False)
    assert "13907551234" not in text and "66881234" not in text and "小明" not in text
    assert record["message"] == "call c-1 from 139****1234"
    assert record["caller"] == "139****1234"
    assert record["caller_name"] == "王**"
    assert record["call_id"] == "c-1" and record["queue"] == "general"
    assert record["level"] == "INFO" and record["logger"] == "hotline.test" and record["time"]


def test_secrets_never_reach_the_log(json_log) -> None:
    log, out = json_log
    log.warning(
        "AMI login ami://hotline:s3cr3t-ami@10.0.0.2:5038 failed; password=hunter2x",
        extra={
            "sip_password": "bot-pass-1",
            "token": "tok-abc",
            "nested": {"api_key": "k-123", "phone": "13907551234"},
        },
    )
    text = out.getvalue()
    for secret in ("s3cr3t-ami", "hunter2x", "bot-pass-1", "tok-abc", "k-123", "13907551234"):
        assert secret not in text
    record = lines(out)[0]
    assert record["sip_password"] == "***"
    assert record["nested"] == {"api_key": "***", "phone": "139****1234"}
    assert "ami://hotline:***@10.0.0.2:5038" in str(record["message"])


def test_tracebacks_are_masked(json_log) -> None:
    log, out = json_log
    try:
        raise ValueError("no seat for caller 13907551234")
    except ValueError:
        log.exception("intake failed")
    record = lines(out)[0]
    assert "ValueError" in str(record["exc_info"])
    assert "13907551234" not in out.getvalue()


def test_other_libraries_records_are_masked_too(json_log) -> None:
    _, out = json_log
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1",
        "GET",
        "/api/v1/tickets?phone=13907551234",
        "1.1",
        200,
    )
    assert "13907551234" not in out.getvalue()
    assert "139****1234" in out.getvalue()


def test_text_format_masks_as_well() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    try:
        configure_logging("text", "INFO", stream=out)
        logging.getLogger("ivr").info("caller %s", "13907551234")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert "139****1234" in out.getvalue() and "13907551234" not in out.getvalue()
