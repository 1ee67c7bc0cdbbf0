"""``hotline run`` as a real process: settings from HOTLINE_CONFIG, SIP on a free loopback
port, no registrar or AMI, an embedded Redis, SQLite in tmp; sipp calls it; SIGTERM stops it
gracefully (no new calls, live calls handed over, call records written, exit 0)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ivr.callers import Caller, free_udp_port, run_sipp
from tickets.draft import RequestType
from tickets.redis_embedded import reachable
from tickets.store import TicketStore

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 180  # model load + prompt rendering on a loaded 2-core machine


def options_reply(port: int) -> str:
    """Send one SIP OPTIONS to the controller; the status line of its answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        local = sock.getsockname()[1]
        sock.sendto("\r\n".join([
            f"OPTIONS sip:12345@127.0.0.1:{port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-smoke{time.time_ns()}",
            "Max-Forwards: 70", f"From: <sip:probe@127.0.0.1:{local}>;tag=probe",
            f"To: <sip:12345@127.0.0.1:{port}>", f"Call-ID: probe-{time.time_ns()}@127.0.0.1",
            "CSeq: 1 OPTIONS", "Content-Length: 0", "", "",
        ]).encode(), ("127.0.0.1", port))  # fmt: skip
        return sock.recv(4096).decode().split("\r\n", 1)[0]


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def controller_process(tmp_path: Path):  # type: ignore[no-untyped-def]
    sip_port = free_udp_port()
    low = 30000 + (sip_port % 500) * 20
    redis_url = f"redis://127.0.0.1:{free_udp_port()}/0"  # nobody there: embedded Redis
    config = tmp_path / "hotline.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "data_dir": str(tmp_path / "var"),
        "sip": {"bind_host": "127.0.0.1", "bind_port": sip_port, "registrar_host": "",
                "rtp_port_low": low, "rtp_port_high": low + 19},
        "ami": {"url": ""},
        "ivr": {"redis_url": redis_url, "prompts_dir": str(tmp_path / "prompts"),
                "tts_engine": "espeak", "satisfaction_survey": False, "drain_s": 2},
        "tickets": {"redis_url": redis_url, "embedded_redis": "auto",
                    "database_url": f"sqlite:///{tmp_path / 'tickets.db'}"},
        # Not the default 9346: another controller on this machine may hold it.
        "observability": {"metrics_port": free_tcp_port()},
    }))  # fmt: skip
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "run", "--engine", "whisper"], cwd=REPO,
            env={**os.environ, "HOTLINE_CONFIG": str(config)}, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_S
        while "answering on" not in log_path.read_text(errors="replace"):
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "hotline run did not start"
            time.sleep(0.2)
        yield process, sip_port, tmp_path, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_run_answers_and_stops_gracefully_on_sigterm(controller_process) -> None:  # type: ignore[no-untyped-def]
    process, port, tmp_path, log_path = controller_process
    assert options_reply(port).startswith("SIP/2.0 200")
    log = log_path.read_text()
    embedded = log.split("using embedded Redis at ", 1)[1].split()[0]
    assert reachable(embedded)

    # Call 1: asks for a person (DTMF 0); without AMI the bot hangs up for the dialplan.
    scenario = Caller(free_udp_port()).wait(1500).key("0").expect_bye(20000).scenario()
    first = run_sipp(scenario, ("127.0.0.1", port), tmp_path, media_port=free_udp_port(),
                     timeout_s=60)  # fmt: skip
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr

    # Call 2 is still up when SIGTERM comes: it gets drain_s (2 s), then our BYE.
    results = []
    second = threading.Thread(target=lambda: results.append(run_sipp(
        Caller(free_udp_port()).wait(1000).expect_bye(30000).scenario(),
        ("127.0.0.1", port), tmp_path / "second", media_port=free_udp_port(), timeout_s=60,
    )))  # fmt: skip
    (tmp_path / "second").mkdir()
    second.start()
    deadline = time.monotonic() + 20
    while log_path.read_text().count(" answered in ") < 2:
        assert time.monotonic() < deadline, "second call not answered"
        time.sleep(0.1)
    time.sleep(1.0)
    stopping = time.monotonic()
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert options_reply(port).startswith("SIP/2.0 503")  # draining: no new calls
    assert process.wait(timeout=15) == 0, log_path.read_text()[-3000:]
    stopped_in = time.monotonic() - stopping
    assert 1.5 < stopped_in < 8, stopped_in  # waited for the live call, then handed it over
    second.join(30)
    assert results and results[0].returncode == 0, results and results[0].stdout[-2000:]

    records = [json.loads(p.read_text()) for p in (tmp_path / "var" / "calls").rglob("*.json")]
    outcomes = sorted(r["outcome"] for r in records)
    assert outcomes == ["handover", "transfer"], records
    assert all(r["ended_at"] and r["transcript"] for r in records)
    store = TicketStore.from_url(f"sqlite:///{tmp_path / 'tickets.db'}")
    try:
        (ticket,) = store.search(limit=10)
        assert ticket.type == RequestType.HUMAN and ticket.dtmf == "0"
    finally:
        store.dispose()
    assert "stopped after 2 calls" in log_path.read_text()
    assert not reachable(embedded)  # the private Redis went with the process
