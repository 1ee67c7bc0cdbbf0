"""``hotline bench tickets`` runs end to end and loses nothing (a small run; the figures
themselves are the benchmark's business, not a test's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from hotline.cli import main


def test_bench_tickets_prints_the_four_figures(
    tmp_path: Path,
    redis_server: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_TICKETS__REDIS_URL", redis_server)
    monkeypatch.setenv("HOTLINE_TICKETS__EMBEDDED_REDIS", "never")
    before = set(redis.Redis.from_url(redis_server).scan_iter("bench-*"))
    assert main(["bench", "tickets", "--json", "--count", "200", "--pops", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"created_per_s", "pop_latency_ms_p50", "pop_latency_ms_p95", "lost"}
    assert result["lost"] == 0
    assert result["created_per_s"] > 0 and result["pop_latency_ms_p95"] > 0
    assert set(redis.Redis.from_url(redis_server).scan_iter("bench-*")) == before  # cleaned
    assert main(["bench", "tickets", "--count", "0"]) == 2


def test_access_log_hides_phone_numbers_searched_for() -> None:
    import logging

    from console.cli import _MaskPhoneInAccessLog

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/search?phone=13907551234&text=x", "1.1", 200),
        None,
    )
    assert _MaskPhoneInAccessLog().filter(record)
    assert "13907551234" not in record.getMessage() and "phone=***&text=x" in record.getMessage()
