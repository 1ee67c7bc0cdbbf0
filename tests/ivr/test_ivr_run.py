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
import redis

from hotline.draft import RequestType
from hotline.settings import Settings
from ops.run import describe_run
from testkit.callers import Caller, free_udp_port, run_sipp
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


def write_config(tmp_path: Path, sip_port: int, redis_url: str) -> Path:
    """Settings for a controller on loopback: no registrar, no AMI, SQLite in tmp."""
    low = 30000 + (sip_port % 500) * 20
    config = tmp_path / "hotline.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "data_dir": str(tmp_path / "var"),
        "sip": {"bind_host": "127.0.0.1", "bind_port": sip_port, "registrar_host": "",
                "rtp_port_low": low, "rtp_port_high": low + 19,
                # sipp's key presses come from another port than its audio.
                "strict_rtp": False},
        "ami": {"url": ""},
        "ivr": {"redis_url": redis_url, "prompts_dir": str(tmp_path / "prompts"),
                "tts_engine": "espeak", "satisfaction_survey": False, "drain_s": 2},
        "tickets": {"redis_url": redis_url, "embedded_redis": "auto",
                    "database_url": f"sqlite:///{tmp_path / 'tickets.db'}"},
        # No /metrics listener: its fixed port may be another controller's on this machine.
        "observability": {"metrics_port": 0},
    }))  # fmt: skip
    return config


def start_controller(config: Path, log_path: Path, *, own_group: bool = False,
                     args: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:  # fmt: skip
    """``hotline run`` in a subprocess, output to ``log_path``; returns once it answers.
    ``own_group``: in a process group of its own, so a test can signal the whole group as
    a terminal's Ctrl-C does."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "run", "--engine", "whisper", *args],
            cwd=REPO, env={**os.environ, "HOTLINE_CONFIG": str(config)}, stdout=log,
            stderr=log, process_group=0 if own_group else None,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_S
        while "answering on" not in log_path.read_text(errors="replace"):
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "hotline run did not start"
            time.sleep(0.2)
    except BaseException:
        end(process)
        raise
    return process


def end(process: subprocess.Popen[bytes]) -> None:
    """After a failed test: SIGTERM first, so the controller stops its embedded Redis
    (a process group of its own, which SIGKILL of the controller would leave behind)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def controller_process(tmp_path: Path):  # type: ignore[no-untyped-def]
    sip_port = free_udp_port()
    redis_url = f"redis://127.0.0.1:{free_udp_port()}/0"  # nobody there: embedded Redis
    config = write_config(tmp_path, sip_port, redis_url)
    log_path = tmp_path / "run.log"
    process = start_controller(config, log_path)
    try:
        yield process, sip_port, tmp_path, log_path
    finally:
        end(process)


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


def test_run_says_what_it_runs_on_shares_the_embedded_redis_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path,
) -> None:
    configured_redis = f"redis://127.0.0.1:{free_udp_port()}/0"  # nobody there: embedded
    config = write_config(tmp_path, 5070, configured_redis)  # the port comes from --port
    sip_port = free_udp_port()
    log_path = tmp_path / "run.log"
    process = start_controller(config, log_path, own_group=True,
                               args=("--port", str(sip_port)))  # fmt: skip
    try:
        log = log_path.read_text()
        # One line at start says what it runs on.
        start_line = next(line for line in log.splitlines() if "settings from" in line)
        assert str(config) in start_line
        assert f"SIP 127.0.0.1:{sip_port}, no registration" in start_line
        assert "no AMI" in start_line and "speech engine whisper" in start_line
        embedded = start_line.split("Redis embedded at ", 1)[1].split()[0]
        assert f"({configured_redis} did not answer)" in start_line
        assert f"database sqlite:///{tmp_path / 'tickets.db'}" in start_line
        # The configuration watcher listens on the embedded Redis, not the one that is not
        # there (which it used to retry every 2 s for as long as the controller ran).
        client = redis.Redis.from_url(embedded)
        try:
            deadline = time.monotonic() + 10
            while dict(client.pubsub_numsub("hotline:config")).get(b"hotline:config", 0) < 1:
                assert time.monotonic() < deadline, "no watcher subscribed on the embedded Redis"
                time.sleep(0.2)
        finally:
            client.close()
        assert "configuration channel unavailable" not in log_path.read_text()

        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 0, log_path.read_text()[-3000:]
    finally:
        end(process)
    log = log_path.read_text()
    assert "SIGINT: shutting down" in log and "stopped after 0 calls" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    assert "starting a new one" not in log, log[-3000:]
    # The embedded Redis outlived the drain: it is not the terminal's to stop.
    assert "configuration channel unavailable" not in log, log[-3000:]
    assert not reachable(embedded)  # the private Redis went with the process


def test_a_busy_sip_port_is_told_at_once_with_how_to_choose_another(tmp_path: Path) -> None:
    config = write_config(tmp_path, 5070, f"redis://127.0.0.1:{free_udp_port()}/0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "hotline.cli", "run", "--port", str(port)], cwd=REPO,
            env={**os.environ, "HOTLINE_CONFIG": str(config)}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"sip.bind_host/sip.bind_port (UDP) 127.0.0.1:{port}" in done.stderr
    assert "--port" in done.stderr and "already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60  # before loading any model


def test_a_busy_metrics_port_is_told_at_once_with_the_setting_to_change(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_udp_port(), f"redis://127.0.0.1:{free_udp_port()}/0")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "hotline.cli", "run"], cwd=REPO, capture_output=True,
            env={**os.environ, "HOTLINE_CONFIG": str(config),
                 "HOTLINE_OBSERVABILITY__METRICS_PORT": str(port)},
            text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"observability.metrics_host/metrics_port (TCP) 127.0.0.1:{port}" in done.stderr
    assert "already in use" in done.stderr and "Traceback" not in done.stderr


def test_the_start_line_on_defaults_names_them_and_masks_secrets() -> None:
    defaults = Settings()  # type: ignore[call-arg]
    line = describe_run(defaults, None, defaults.tickets.redis_url, None)
    assert "no hotline.yaml, running on defaults" in line
    assert "SIP 127.0.0.1:5070, no registration" in line and "no AMI" in line
    assert "Redis redis://127.0.0.1:6379/0;" in line and "speech engine auto" in line

    secret = "s3cr3t-pw"
    production = Settings.model_validate({
        "sip": {"registrar_host": "pbx.example", "password": secret},
        "ami": {"url": f"ami://hotline:{secret}@pbx.example:5038"},
        "ivr": {"redis_url": f"redis://:{secret}@journal.example:6379/0"},
        "tickets": {"redis_url": f"redis://:{secret}@queue.example:6379/0",
                    "database_url": f"postgresql+psycopg://hotline:{secret}@db.example/hotline"},
    })  # fmt: skip
    line = describe_run(production, Path("/etc/hotline.yaml"),
                        production.tickets.redis_url, "vosk")  # fmt: skip
    assert secret not in line
    assert "settings from /etc/hotline.yaml" in line and "registering with pbx.example:5060" in line
    assert "AMI ami://hotline:***@pbx.example:5038" in line
    assert "call journal redis://:***@journal.example:6379/0" in line
    assert "database postgresql+psycopg://hotline:***@db.example/hotline" in line
