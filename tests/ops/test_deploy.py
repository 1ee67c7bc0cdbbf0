"""docker-compose.yml, the Dockerfile and the Asterisk configuration hang together."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ops.asterisk_lint import lint

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"


def compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates_without_an_engine() -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip(
            "neither `docker compose` nor docker-compose is installed "
            "(apt-get install docker-compose)"
        )
    args = [*cli, "--env-file", "deploy/env.example", "config", "-q"]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    broken = COMPOSE.read_text().replace("      interval: 10s", "      intervall: 10s", 1)
    bad = REPO / ".compose-broken-test.yml"
    bad.write_text(broken)
    try:
        done = subprocess.run([*cli, "-f", bad.name, "--env-file", "deploy/env.example",
                               "config", "-q"], cwd=REPO, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
    finally:
        bad.unlink()
    assert done.returncode != 0 and "intervall" in done.stderr + done.stdout


def test_compose_has_the_services_health_checks_and_volumes() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"asterisk", "redis", "postgres", "controller", "console", "migrate"} <= set(services)
    for name in ("asterisk", "redis", "postgres", "controller", "console"):
        assert "healthcheck" in services[name], name
    assert "--appendonly" in services["redis"]["command"]
    assert (
        services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1]
        == "yes"
    )
    assert {"models", "prompts", "recordings"} <= set(spec["volumes"])
    mounts = [v.split(":")[0] for v in services["asterisk"]["volumes"]]
    for source in (m for m in mounts if m.startswith("./")):
        assert (REPO / source).is_file(), f"{source} mounted into Asterisk does not exist"
    conf = {Path(m).name for m in mounts if m.startswith("./telephony_config/")}
    assert {"pjsip.conf", "extensions.conf", "queues.conf"} <= conf
    # Published ports of Asterisk's RTP equal deploy/asterisk/rtp.conf's range.
    rtp = (REPO / "deploy/asterisk/rtp.conf").read_text()
    start, end = (re.search(rf"{k}=(\d+)", rtp).group(1) for k in ("rtpstart", "rtpend"))  # type: ignore[union-attr]
    assert f"{start}-{end}:{start}-{end}/udp" in services["asterisk"]["ports"]


def test_docker_manager_conf_differs_only_in_where_ami_listens() -> None:
    def settings(path: Path) -> list[str]:
        return [line.strip() for line in path.read_text().splitlines()
                if line.strip() and not line.startswith(";")
                and not line.startswith(("bindaddr", "permit"))]  # fmt: skip

    assert settings(REPO / "deploy/asterisk/manager.conf") == settings(
        REPO / "telephony_config/manager.conf"
    )


def test_dockerfile_copies_every_package() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    include = re.search(r"include = \[(.*?)\]", pyproject).group(1)  # type: ignore[union-attr]
    packages = re.findall(r'"(\w+)\*"', include)
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package


def _copy_config(tmp_path: Path) -> Path:
    target = tmp_path / "conf"
    shutil.copytree(REPO / "telephony_config", target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "extensions.conf",
            'GotoIf($["${HOTLINE_DONE}" = "1"]?done)',
            'GotoIf($["${HOTLINE_DONE}" = "1"]?finished)',
            "GotoIf branch finished goes nowhere",
        ),
        (
            "extensions.conf",
            "Goto(hotline-queues,hotline-general,1)",
            "Goto(hotline-queue,hotline-general,1)",
            "Goto(hotline-queue,hotline-general,1) goes nowhere",
        ),
        (
            "queues.conf",
            "[hotline-real-estate]",
            "[real-estate]",
            "no queue [hotline-real-estate] (skill real_estate, ami.queues)",
        ),
        ("queues.conf", "[hotline-general]", "[general]", "no queue [hotline-general]"),
        (
            "extensions.conf",
            "PJSIP_DIAL_CONTACTS(hotline-bot)",
            "PJSIP_DIAL_CONTACTS(hotline-bots)",
            "PJSIP_DIAL_CONTACTS(hotline-bots) is not a PJSIP endpoint",
        ),
        (
            "pjsip.conf",
            "aors=hotline-bot\n",
            "aors=hotline-robot\n",
            "aors=hotline-robot is not a defined aor",
        ),
        (
            "pjsip.conf",
            "context=hotline-from-bot",
            "context=from-bot",
            "context=from-bot is not in extensions.conf",
        ),
        (
            "manager.conf",
            "channelvars=HOTLINE_TICKET",
            "channelvars=OTHER",
            "channelvars lacks HOTLINE_TICKET",
        ),
        (
            "queues.conf",
            "member => PJSIP/seat-101,1,seat-101",
            "member => PJSIP/seat-109,1,seat-109",
            "member PJSIP/seat-109 is not an endpoint",
        ),
        (
            "extensions.conf",
            "[hotline-bot-headers]\nexten => s,1,",
            "[hotline-bot-headers]\nexten => t,1,",
            "pre-dial handler hotline-bot-headers^s^1",
        ),
        # Asterisk 20 logs "Unknown keyword" for these and ignores them (seen on 20.20.1).
        (
            "queues.conf",
            "ringinuse=no\nmember => PJSIP/seat-101,0",
            "eventwhencalled=yes\nmember => PJSIP/seat-101,0",
            "[hotline-general] eventwhencalled: obsolete, removed in Asterisk 12",
        ),
        ("queues.conf", "wrapuptime=10", "wrapuptme=10", "wrapuptme: unknown keyword"),
        # pjsip: an unknown option makes Asterisk refuse the whole object.
        ("pjsip.conf", "rtp_timeout=4", "rtp_timout=4", "[hotline-bot] rtp_timout: unknown"),
        ("pjsip.conf", "max_contacts=4", "qualify=yes", "qualify: obsolete, chan_sip's"),
        ("manager.conf", "writetimeout=5000", "write_timeout=5000", "write_timeout: unknown"),
        # A seat phone that dies without unregistering, or restarts.
        ("pjsip.conf", "qualify_frequency=10", "", "seat aor [seat-101] has no qualify_frequency"),
        (
            "pjsip.conf",
            "remove_existing=yes\nqualify_frequency=10",
            "qualify_frequency=10",
            "seat aor [seat-102] lacks remove_existing=yes",
        ),
        ("pjsip.conf", "max_contacts=1\n", "", "seat aor [seat-101] has max_contacts=0"),
        # Asterisk 20.20.1: "Identify 'trunk' failed when adding resolution results".
        (
            "pjsip.conf",
            "match=192.0.2.1",
            "match=carrier.example.net",
            "match=carrier.example.net is a placeholder that never resolves",
        ),
    ],
)
def test_linter_finds_what_would_break_calls(
    tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    conf = _copy_config(tmp_path)
    before = set(lint(conf))
    _edit(conf / file, old, new)
    after = set(lint(conf))
    new_problems = after - before
    assert any(expected in p for p in new_problems), new_problems


def test_linter_rejects_unparseable_files(tmp_path: Path) -> None:
    conf = _copy_config(tmp_path)
    (conf / "queues.conf").write_text("[general]\nstrategy rrmemory\n")
    assert lint(conf) == ["queues.conf:2: not a section or key=value: strategy rrmemory"]


def test_repository_asterisk_configuration_is_consistent() -> None:
    assert lint(REPO / "telephony_config") == []


def test_every_skill_needs_an_asterisk_queue() -> None:
    """A skill the bot transfers to without an ami.queues entry would reach no queue."""
    from hotline.settings import Settings

    settings = Settings.model_construct()
    settings.ami = settings.ami.model_copy(
        update={
            "queues": {k: v for k, v in settings.ami.queues.items() if k != "business_environment"}
        }
    )
    assert lint(REPO / "telephony_config", settings=settings) == [
        "settings ami.queues: no Asterisk queue for skill business_environment, which the bot "
        "or a ticket skill transfers to"
    ]
