"""A real Asterisk 20 for the tests: ``../shared/asterisk/asterisk-local`` run from
``telephony_config/`` plus an overrides folder written here, or the user's own Asterisk.

The project's files stay as shipped; the overrides change only what a test machine needs:
SIP, AMI and RTP on loopback and free ports, and a stand-in carrier (the trunk) on
127.0.0.2 so that its calls are told apart by address from the seats and the bot, which
register from 127.0.0.1.

On a user's machine, ``HOTLINE_AMI_URL`` (ami://user:secret@host:port) and
``HOTLINE_ASTERISK_SIP`` (host:port) point the same tests at an Asterisk configured with
``telephony_config/``; its trunk must accept calls from ``HOTLINE_ASTERISK_CARRIER``
(default 127.0.0.2) and its ``[trunk]`` contact must be that address on port
``HOTLINE_ASTERISK_CARRIER_PORT``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[2]
SHARED_ASTERISK = REPO.parent / "shared" / "asterisk"
SCRIPT = SHARED_ASTERISK / "asterisk-local"
TELEPHONY_CONFIG = REPO / "telephony_config"
# The stand-in carrier's address (the trunk's identify matches it).
CARRIER_HOST = os.environ.get("HOTLINE_ASTERISK_CARRIER", "127.0.0.2")
AMI_USER, AMI_SECRET = "hotline", "change-me-ami"  # manager.conf as shipped
BOT_USER, BOT_PASSWORD = "hotline-bot", "change-me-bot"  # pjsip.conf as shipped


class AsteriskError(Exception):
    """Asterisk would not start or did not do what a test waited for."""


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def where_unavailable() -> str:
    """Why no Asterisk can be had here ('' when one can)."""
    if os.environ.get("HOTLINE_AMI_URL") and os.environ.get("HOTLINE_ASTERISK_SIP"):
        return ""
    if not SCRIPT.is_file():
        return (f"no Asterisk: {SHARED_ASTERISK} is absent (or set HOTLINE_AMI_URL and "
                "HOTLINE_ASTERISK_SIP=host:port to use your own)")  # fmt: skip
    return ""


@dataclass
class Asterisk:
    """One Asterisk the tests talk to: over SIP (``host:sip_port``) and AMI (``ami_url``)."""

    host: str
    sip_port: int
    ami_url: str
    carrier_port: int  # where Asterisk sends calls for the trunk (the stand-in carrier)
    run_dir: Path | None = None  # None: the user's own Asterisk (no CLI, no log file)
    proc: subprocess.Popen[bytes] | None = None
    log_marks: dict[str, int] = field(default_factory=dict)

    @property
    def ami_port(self) -> int:
        return int(urlparse(self.ami_url).port or 5038)

    @property
    def local(self) -> bool:
        return self.run_dir is not None

    @property
    def full_log(self) -> Path:
        assert self.run_dir is not None
        return self.run_dir / "var" / "log" / "full"

    def cli(self, command: str, timeout_s: float = 10.0) -> str:
        if self.run_dir is None:
            raise AsteriskError("no CLI on the user's own Asterisk")
        done = subprocess.run([str(SCRIPT), "cli", str(self.run_dir), command],
                              capture_output=True, text=True, timeout=timeout_s)  # fmt: skip
        return done.stdout + done.stderr

    def log_text(self) -> str:
        if self.run_dir is None or not self.full_log.exists():
            return ""
        return self.full_log.read_text(errors="replace")

    def mark(self) -> int:
        """The log's length now: ``log_since(mark)`` reads what came after."""
        return len(self.log_text())

    def log_since(self, mark: int) -> str:
        return self.log_text()[mark:]

    def wait_log(self, pattern: str, since: int = 0, timeout_s: float = 30.0) -> re.Match[str]:
        """The first log line after ``since`` matching ``pattern`` (a regex)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = re.search(pattern, self.log_since(since))
            if found:
                return found
            if time.monotonic() > deadline:
                tail = "\n".join(self.log_since(since).splitlines()[-25:])
                raise AsteriskError(f"Asterisk never logged /{pattern}/ in {timeout_s:.0f} s;"
                                    f" its log's tail:\n{tail}")  # fmt: skip
            time.sleep(0.2)

    def wait_contact(self, aor: str, present: bool = True, timeout_s: float = 15.0) -> None:
        """Until ``aor`` has (or no longer has) a registered contact."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            listed = f"Contact:  {aor}/" in self.cli(f"pjsip show aor {aor}")
            if listed == present:
                return
            time.sleep(0.2)
        raise AsteriskError(f"{aor} {'never registered' if present else 'still registered'}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _replace(text: str, pattern: str, new: str, what: str) -> str:
    changed, count = re.subn(pattern, new, text, flags=re.MULTILINE)
    if not count:
        raise AsteriskError(f"telephony_config has no {what} to point at the test's address")
    return changed


def write_overrides(folder: Path, sip_port: int, ami_port: int, carrier_port: int,
                    rtp: tuple[int, int]) -> Path:  # fmt: skip
    """Copies of the files that change on a test machine: loopback, free ports, the
    stand-in carrier. Everything else is telephony_config as shipped."""
    folder.mkdir(parents=True, exist_ok=True)
    pjsip = (TELEPHONY_CONFIG / "pjsip.conf").read_text(encoding="utf-8")
    pjsip = _replace(pjsip, r"^bind=.*$", f"bind=127.0.0.1:{sip_port}", "transport bind")
    pjsip = _replace(pjsip, r"^contact=sip:.*$", f"contact=sip:{CARRIER_HOST}:{carrier_port}",
                     "trunk contact")  # fmt: skip
    pjsip = _replace(pjsip, r"^match=.*$", f"match={CARRIER_HOST}", "trunk identify")
    (folder / "pjsip.conf").write_text(pjsip, encoding="utf-8")
    manager = (TELEPHONY_CONFIG / "manager.conf").read_text(encoding="utf-8")
    manager = _replace(manager, r"^port=.*$", f"port={ami_port}", "AMI port")
    (folder / "manager.conf").write_text(manager, encoding="utf-8")
    (folder / "rtp.conf").write_text(f"[general]\nrtpstart={rtp[0]}\nrtpend={rtp[1]}\n")
    return folder


def start_local(run_dir: Path, extra: Path | None = None, boot_s: float = 30.0) -> Asterisk:
    """Prepare and start ``../shared/asterisk`` under ``run_dir``; stop it with ``stop()``.

    ``extra``: a folder of further ``*.conf`` files a test wants on top (later wins)."""
    sip_port, ami_port = free_port(), free_port(socket.SOCK_STREAM)
    carrier_port = free_port(host=CARRIER_HOST)
    low = 11000 + (sip_port % 200) * 40  # an even RTP range of its own, clear of 10000-10999
    overrides = write_overrides(run_dir / "overrides", sip_port, ami_port, carrier_port,
                                (low, low + 38))  # fmt: skip
    folders = [str(TELEPHONY_CONFIG), str(overrides)] + ([str(extra)] if extra else [])
    subprocess.run([str(SCRIPT), "prepare", str(run_dir / "run"), *folders],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    with (run_dir / "asterisk.out").open("wb") as out:
        proc = subprocess.Popen([str(SCRIPT), "run", str(run_dir / "run")], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    found = Asterisk("127.0.0.1", sip_port, f"ami://{AMI_USER}:{AMI_SECRET}@127.0.0.1:{ami_port}",
                     carrier_port, run_dir / "run", proc)  # fmt: skip
    waited = subprocess.run([str(SCRIPT), "wait", str(run_dir / "run"), str(int(boot_s))],
                            capture_output=True, text=True)  # fmt: skip
    if waited.returncode != 0 or proc.poll() is not None:
        found.stop()
        raise AsteriskError(
            f"Asterisk did not boot: {waited.stderr.strip()}\n"
            f"{(run_dir / 'asterisk.out').read_text(errors='replace')[-2000:]}"
        )
    return found


def users_own() -> Asterisk:
    """The Asterisk named by HOTLINE_AMI_URL and HOTLINE_ASTERISK_SIP (not started here)."""
    host, _, port = os.environ["HOTLINE_ASTERISK_SIP"].rpartition(":")
    carrier = int(os.environ.get("HOTLINE_ASTERISK_CARRIER_PORT", "5090"))
    return Asterisk(host or "127.0.0.1", int(port), os.environ["HOTLINE_AMI_URL"], carrier)
