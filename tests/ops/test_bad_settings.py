"""Issue 20: every bad setting gets one clear line, never a traceback.

Each case is what an administrator deploying the controller can get wrong; it goes
through the real ``hotline`` command in a subprocess with a real settings file, and the
command must end with one line on stderr (``hotline: <setting> <value> <what> <fix>``),
no Python traceback, and exit status 2 (bad input) or 3 (a service does not answer).
``hotline run`` must fail in its start-up checks, before the speech models load: every
run here is given far less time than a model load takes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.callers import free_udp_port
from tickets.redis_embedded import reachable

REPO = Path(__file__).resolve().parents[2]
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
FAIL_FAST_S = 60  # a speech model load and prompt rendering take longer on this machine


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nobody_at() -> str:
    """A loopback address where nothing listens (connection refused at once)."""
    return f"127.0.0.1:{free_tcp_port()}"


@dataclass
class Deployment:
    """One administrator's settings: a YAML file, environment variables, a data folder."""

    tmp: Path
    settings: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    config_text: bytes | None = None  # raw file contents instead of ``settings``
    wrap: list[str] = field(default_factory=list)  # e.g. a mount namespace

    def run(self, *args: str, timeout_s: float = FAIL_FAST_S) -> subprocess.CompletedProcess[str]:
        config = self.tmp / "hotline.yaml"
        config.write_bytes(self.config_text or json.dumps(self.settings).encode())  # JSON is YAML
        env = {**os.environ, **self.env, "HOTLINE_CONFIG": str(config)}
        command = [*self.wrap, sys.executable, "-m", "hotline.cli", *args]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout_s)  # fmt: skip


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Settings that pass every start-up check: the cases break one thing each."""
    redis_ok = reachable(LOCAL_REDIS)
    settings = {
        "data_dir": str(tmp_path / "var"),
        "sip": {"bind_host": "127.0.0.1", "bind_port": free_udp_port(), "registrar_host": ""},
        "ami": {"url": ""},
        "ivr": {"redis_url": LOCAL_REDIS, "prompts_dir": str(tmp_path / "prompts"),
                "tts_engine": "espeak"},
        "tickets": {"redis_url": LOCAL_REDIS, "embedded_redis": "never" if redis_ok else "auto",
                    "key_prefix": f"t{uuid.uuid4().hex[:10]}",
                    "database_url": f"sqlite:///{tmp_path / 'tickets.db'}"},
        "observability": {"metrics_host": "127.0.0.1", "metrics_port": free_tcp_port()},
    }  # fmt: skip
    yield Deployment(tmp_path, settings)


def one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's error line; fails on a traceback or on more than one error line."""
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("hotline: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == errors[0], done.stderr[-3000:]
    return errors[0]


# ---- the cases: (what the administrator did, how to break the deployment) ----


def yaml_list(d: Deployment) -> None:
    d.config_text = b"- data_dir: var\n- sip: {}\n"


def yaml_scalar(d: Deployment) -> None:
    d.config_text = b"just some words\n"


def binary_garbage(d: Deployment) -> None:
    d.config_text = bytes(range(256)) * 8


def sip_env_broken_json(d: Deployment) -> None:
    d.env["HOTLINE_SIP"] = '{bind_port: 5070, "password": "hunter2"'


def sip_port_out_of_range(d: Deployment) -> None:
    d.settings["sip"].update(bind_port=70000, password=123456789)  # a number: still a secret


def data_dir_is_a_file(d: Deployment) -> None:
    (d.tmp / "afile").write_text("not a folder")
    d.settings["data_dir"] = str(d.tmp / "afile")


def data_dir_read_only(d: Deployment) -> None:
    """A read-only mount in a private mount namespace (no root needed, nothing leaks)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a read-only file system")
    mounted = d.tmp / "ro"
    mounted.mkdir()
    d.settings["data_dir"] = str(mounted / "var")
    d.wrap = ["unshare", "--mount", "--map-root-user", "sh", "-c",
              f"mount -t tmpfs -o ro,size=1m tmpfs {mounted} && exec \"$@\"", "sh"]  # fmt: skip
    probe = subprocess.run([*d.wrap, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount in a user namespace here: {probe.stderr!r}")


def kb_missing(d: Deployment) -> None:
    d.settings["bot"] = {"kb": str(d.tmp / "missing-kb.yaml")}


def database_unknown_dialect(d: Deployment) -> None:
    d.settings["tickets"]["database_url"] = "oracle2000://admin:s3cret@db.example/tickets"


def database_refuses(d: Deployment) -> None:
    url = f"postgresql://hotline:s3cret@{nobody_at()}/tickets"
    d.settings["tickets"]["database_url"] = url


def database_from_a_newer_version(d: Deployment) -> None:
    """A newer hotline migrated this database; this one cannot know its schema."""
    import sqlite3

    path = d.tmp / "tickets.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
    d.settings["tickets"]["database_url"] = f"sqlite:///{path}"


def redis_url_malformed(d: Deployment) -> None:
    d.settings["tickets"]["redis_url"] = "localhost:6379"
    d.settings["ivr"]["redis_url"] = "localhost:6379"


def ami_url_malformed(d: Deployment) -> None:
    d.settings["ami"]["url"] = "http://admin:s3cret@pbx.example:5038"


def redis_down_no_embedded(d: Deployment) -> None:
    url = f"redis://:s3cret@{nobody_at()}/0"
    d.settings["tickets"].update(redis_url=url, embedded_redis="never")
    d.settings["ivr"]["redis_url"] = url


def journal_redis_down(d: Deployment) -> None:
    d.settings["ivr"]["redis_url"] = f"redis://{nobody_at()}/0"


@dataclass(frozen=True)
class Case:
    break_it: Callable[[Deployment], None]
    command: tuple[str, ...]
    exit_status: int
    says: tuple[str, ...]  # the line names the setting and what to do


DOWN = "does not answer"
MIGRATE = ("tickets", "migrate")
CASES = [
    Case(yaml_list, ("run",), 2, ("hotline.yaml", "list", "mapping of sections")),
    Case(yaml_list, ("check",), 2, ("hotline.yaml", "list", "mapping of sections")),
    Case(yaml_scalar, ("run",), 2, ("hotline.yaml", "single value", "mapping of sections")),
    Case(binary_garbage, ("run",), 2, ("hotline.yaml", "not UTF-8")),
    Case(sip_env_broken_json, ("run",), 2, ("HOTLINE_SIP", "not valid JSON", "HOTLINE_SIP__")),
    Case(sip_port_out_of_range, ("run",), 2, ("sip.bind_port", "70000", "sip.password", "***")),
    Case(data_dir_is_a_file, ("run",), 2, ("data_dir", "afile", "not a folder")),
    Case(data_dir_read_only, ("run",), 2, ("data_dir", "not writable", "Read-only")),
    Case(kb_missing, ("run",), 2, ("bot.kb", "missing-kb.yaml", "not found")),
    Case(database_unknown_dialect, ("run",), 2, ("tickets.database_url", "oracle2000", "sqlite:///")),
    Case(database_unknown_dialect, MIGRATE, 2, ("tickets.database_url", "oracle2000")),
    Case(database_refuses, ("run",), 3, ("tickets.database_url", DOWN)),
    Case(database_refuses, MIGRATE, 3, ("tickets.database_url", DOWN)),
    Case(database_from_a_newer_version, MIGRATE, 2, ("9999_from_the_future", "does not know")),
    Case(redis_url_malformed, ("run",), 2, ("tickets.redis_url", "localhost:6379", "redis://")),
    Case(ami_url_malformed, ("run",), 2, ("ami.url", "http://admin:***@pbx", "ami://user:")),
    Case(redis_down_no_embedded, ("tickets", "reconcile"), 3, ("tickets.redis_url", DOWN)),
    Case(redis_down_no_embedded, ("run",), 3, ("tickets.redis_url", "embedded_redis: auto")),
    Case(journal_redis_down, ("run",), 3, ("ivr.redis_url", "call journal")),
]  # fmt: skip


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c.break_it.__name__}-{'-'.join(c.command)}" for c in CASES]
)
def test_bad_setting_gets_one_clear_line(case: Case, deployment: Deployment) -> None:
    case.break_it(deployment)
    done = deployment.run(*case.command)
    line = one_clear_line(done)
    assert done.returncode == case.exit_status, done.stderr[-3000:]
    for words in case.says:
        assert words in line, line
    for secret in ("s3cret", "hunter2", "123456789"):  # masked wherever a line shows a value
        assert secret not in done.stderr, done.stderr


def test_metrics_port_in_use_is_named(deployment: Deployment) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        deployment.settings["observability"]["metrics_port"] = port
        done = deployment.run("run")
    line = one_clear_line(done)
    assert done.returncode == 2
    assert f"metrics_port (TCP) 127.0.0.1:{port}" in line and "already in use" in line, line


def test_sip_port_in_use_is_named(deployment: Deployment) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        deployment.settings["sip"]["bind_port"] = port
        done = deployment.run("run")
    line = one_clear_line(done)
    assert done.returncode == 2
    assert f"sip.bind_host/sip.bind_port (UDP) 127.0.0.1:{port}" in line, line


def test_check_prints_every_check_and_passes_on_good_settings(deployment: Deployment) -> None:
    done = deployment.run("check")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()[1:]}
    assert set(rows) == {"settings", "data folder", "database", "seat queue (Redis)",
                         "call journal (Redis)", "SIP port", "metrics port", "AMI",
                         "bot data"}, done.stdout  # fmt: skip
    assert not [row for row in rows.values() if " bad " in row or " down " in row]


def test_check_reports_all_failures_with_the_status_of_the_worst(deployment: Deployment) -> None:
    ami_url_malformed(deployment)
    redis_down_no_embedded(deployment)
    done = deployment.run("check")
    assert "Traceback" not in done.stderr
    assert done.returncode == 2  # a wrong setting first: fixing it may be all that is needed
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()[1:]}
    assert " down " in rows["seat queue (Redis)"] and " bad " in rows["AMI"], done.stdout
    assert "s3cret" not in done.stdout


def test_check_exits_3_when_only_a_service_is_down(deployment: Deployment) -> None:
    redis_down_no_embedded(deployment)
    done = deployment.run("check")
    assert done.returncode == 3, done.stdout + done.stderr


def test_run_without_journal_says_loudly_it_is_degraded(deployment: Deployment) -> None:
    """An empty ivr.redis_url is the administrator's choice: allowed, but never silent."""
    deployment.settings["ivr"]["redis_url"] = ""
    done = deployment.run("check")
    assert done.returncode == 0
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("call journal")]
    assert " warn " in row and "NO call journal" in row, done.stdout


def test_debug_flag_shows_the_traceback(deployment: Deployment) -> None:
    ami_url_malformed(deployment)
    done = deployment.run("--debug", "run")
    assert done.returncode == 2
    assert "Traceback" in done.stderr and "AmiError" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("hotline: ami.url")


def test_console_port_in_use_is_named(deployment: Deployment) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = deployment.run("console", "--port", str(port))
    line = one_clear_line(done)
    assert done.returncode == 2
    assert f"console.host/console.port (TCP) 127.0.0.1:{port}" in line, line


def test_console_refuses_when_the_database_does_not_answer(deployment: Deployment) -> None:
    database_refuses(deployment)
    done = deployment.run("console", "--port", str(free_tcp_port()))
    line = one_clear_line(done)
    assert done.returncode == 3 and "tickets.database_url" in line, line


def test_run_logs_the_missing_journal_as_a_warning(deployment: Deployment) -> None:
    """``run`` says it too, in its log, before anything else: here a later check stops
    it so that no speech model loads."""
    deployment.settings["ivr"]["redis_url"] = ""
    ami_url_malformed(deployment)
    done = deployment.run("run")
    assert done.returncode == 2
    warned = [line for line in done.stderr.splitlines() if "NO call journal" in line]
    assert len(warned) == 1 and "WARNING" in warned[0], done.stderr
    assert one_clear_line(done).startswith("hotline: ami.url")


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ({"sip": {"bindport": 5080}}, "sip.bindport"),  # a typo used to leave the default
        ({"sip": {"rtp_port_low": 30000, "rtp_port_high": 20000}}, "must be below"),
    ],
)
def test_unknown_keys_and_inverted_port_ranges_are_refused(
    tmp_path: Path, section: dict[str, Any], says: str
) -> None:
    config = tmp_path / "hotline.yaml"
    config.write_text(yaml.safe_dump(section))
    done = subprocess.run([sys.executable, "-m", "hotline.cli", "check"], cwd=REPO,
                          env={**os.environ, "HOTLINE_CONFIG": str(config)},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert says in done.stderr, done.stderr
