"""``hotline run`` (the call controller) and ``hotline prompts render``.

The composition root: it wires telephony (``ivr``), the managers' live configuration
(``manage``), tickets, the bot and the recogniser together, so it lives in ``ops``, the
outermost layer, and ``ivr`` needs to know nothing of ``manage``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the CLI starts without loading every part
    from hotline.settings import Settings


def register(commands: Any, bench: Any) -> None:
    run = commands.add_parser("run", help="answer calls: SIP endpoint, AMI, recogniser, bot")
    run.add_argument("--engine", choices=["auto", "vosk", "whisper"],
                     help="speech engine (default: asr.engine)")  # fmt: skip
    run.add_argument("--port", type=int, metavar="N",
                     help="UDP port for SIP (default: sip.bind_port, 5070)")  # fmt: skip
    run.set_defaults(handler=cmd_run)
    calls = bench.add_parser("calls", help="whole calls over SIP with sipp callers (JSON)")
    calls.add_argument("--concurrency", type=int, default=10, help="calls up at once")
    calls.add_argument("--calls", type=int, default=45, help="calls to place in all")
    calls.add_argument("--engine", choices=["auto", "vosk", "whisper"], default="whisper")
    calls.add_argument("--audio", type=Path, help="clips + transcripts.tsv "
                       "(default ../shared/audio/calls-dev/)")  # fmt: skip
    calls.add_argument("--kb", type=Path, help="knowledge base (default ../shared/eval/kb.yaml)")
    calls.add_argument("--seed", type=int, default=12345, help="seed of the Poisson arrivals")
    calls.add_argument(
        "--details",
        action="store_true",
        help="add per-call rows: clip, expected, outcome, what was heard",
    )
    calls.add_argument(
        "--answer-confirms",
        action="store_true",
        help="place the calls that ended on a confirm question for the right outcome again, "
        "the caller saying yes (local neural voice): confirm_replies, correct_after_yes",
    )
    calls.add_argument("--json", action="store_true", help="print JSON (the default output)")
    calls.set_defaults(handler=cmd_bench_calls)
    prompts = commands.add_parser("prompts", help="render the prompt cache ahead of calls")
    prompts.add_argument("texts", nargs="*", help="extra prompt texts to render")
    prompts.add_argument(
        "--asterisk-sounds", type=Path, metavar="DIR",
        help="where Asterisk reads the dialplan's hotline/ sounds, e.g. "
        "/var/lib/asterisk/sounds/zh/hotline (default: ivr.asterisk_sounds_dir, else "
        "ivr.prompts_dir)",
    )  # fmt: skip
    prompts.set_defaults(handler=cmd_prompts)


def cmd_bench_calls(args: argparse.Namespace) -> int:
    from hotline.cli import CommandError
    from hotline.settings import load_settings
    from ops.shared import dev_calls, sample_kb
    from testkit.bench import BenchError, run_calls

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if shutil.which("sipp") is None:
        raise CommandError("sipp is not installed (apt-get install sip-tester)")
    settings = load_settings()
    audio = args.audio or dev_calls()
    kb = args.kb or sample_kb()
    try:
        result = asyncio.run(run_calls(concurrency=args.concurrency, calls=args.calls,
                                       engine_name=args.engine, audio=audio, kb=kb,
                                       settings=settings, seed=args.seed,
                                       details=args.details,
                                       answer_confirms=args.answer_confirms))  # fmt: skip
    except BenchError as exc:
        raise CommandError(str(exc)) from exc
    print(json.dumps(result, ensure_ascii=False))
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    from hotline.checks import check_data_dir, require
    from hotline.cli import CommandError
    from hotline.settings import load_settings
    from ivr.asterisk_sounds import ASTERISK_SOUNDS, render_asterisk_sounds, sounds_dir
    from voice.prompts import PromptLibrary

    settings = load_settings()
    require(settings, check_data_dir)  # the cache lives there
    library = PromptLibrary.from_settings(settings.ivr, settings.data_dir, settings.models_dir)
    count = library.prerender(args.texts)
    print(f"{count} prompts ready in {library.cache_dir}")
    folder = args.asterisk_sounds or sounds_dir(settings)
    try:
        written = render_asterisk_sounds(library, folder)
    except OSError as exc:
        raise CommandError(f"cannot write Asterisk's sounds to {folder}: {exc}") from exc
    names = ", ".join(f"hotline/{s.name}" for s in ASTERISK_SOUNDS)
    print(f"Asterisk sounds ({names}) ready in {folder} ({len(written)} written)")
    return 0


def _optional(module: str, what: str) -> Any:
    from hotline.cli import CommandError

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CommandError(
            f"{what} ({module}) is not available in this installation: {exc}"
        ) from exc


def cmd_run(args: argparse.Namespace) -> int:
    from hotline.checks import require
    from hotline.logs import configure_logging
    from hotline.settings import load_settings
    from ivr.checks import RUN_CHECKS

    settings = load_settings()
    if args.port is not None:
        settings.sip = settings.sip.model_copy(update={"bind_port": args.port})
    configure_logging(settings.observability.log_format, settings.observability.log_level)
    # Before the slow start (speech models, prompts): a bad setting fails in seconds, and
    # no call is accepted by a controller that could not keep it safe.
    require(settings, *RUN_CHECKS.values())
    _optional("asr.engines", "the speech engines")
    _optional("bot.dialogue", "the dialogue policy")
    asyncio.run(_serve(settings, args.engine))
    return 0


class _Signals:
    """SIGTERM/SIGINT: the first starts a graceful shutdown, the second cuts the drain short."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.now = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: int) -> None:
        log = logging.getLogger("hotline")
        if self.stop.is_set():
            log.warning("%s again: handing live calls over now", signal.Signals(sig).name)
            self.now.set()
        else:
            log.info("%s: shutting down", signal.Signals(sig).name)
            self.stop.set()


async def _serve(settings: Settings, engine_name: str | None) -> None:
    from hotline.settings import config_path
    from tickets.redis_embedded import redis_url_for

    signals = _Signals()  # before the slow start: a stop while loading the model is clean too
    with contextlib.ExitStack() as resources:
        redis_url = resources.enter_context(redis_url_for(settings))
        logging.getLogger("hotline").info(
            "%s", describe_run(settings, config_path(), redis_url, engine_name)
        )
        await _answer_calls(settings, engine_name, redis_url, signals, resources)


def journal_redis_url(settings: Settings, tickets_redis: str) -> str:
    """The call journal's Redis: the tickets' one when both name the same server (an
    embedded one replaces it for both); empty: no journal."""
    journal_url: str = settings.ivr.redis_url
    if journal_url and journal_url == settings.tickets.redis_url:
        return tickets_redis
    return journal_url


def describe_run(settings: Settings, config: Path | None, redis_url: str,
                 engine_name: str | None) -> str:  # fmt: skip
    """One line saying what ``hotline run`` runs on, so a first run on defaults is not a
    mystery (no registration, no AMI: nothing calls it until Asterisk is told). Secrets
    in URLs are masked."""
    from hotline.logs import mask_text
    from tickets.db import default_database_url
    from voice.prompts import engines_from_settings

    sip, ivr = settings.sip, settings.ivr
    source = f"settings from {config}" if config else (
        "no hotline.yaml, running on defaults (see config/hotline.example.yaml)")  # fmt: skip
    registrar = (f"registering with {sip.registrar_host}:{sip.registrar_port}"
                 if sip.registrar_host else "no registration")  # fmt: skip
    ami = f"AMI {settings.ami.url}" if settings.ami.url else "no AMI (transfers by hang-up)"
    if redis_url != settings.tickets.redis_url:
        redis = f"Redis embedded at {redis_url} ({settings.tickets.redis_url} did not answer)"
    else:
        redis = f"Redis {redis_url}"
    journal = journal_redis_url(settings, redis_url)
    if journal != redis_url:
        redis += f", call journal {journal or 'off'}"
    database = settings.tickets.database_url or default_database_url(settings.data_dir)
    voices = [e for e in engines_from_settings(ivr, settings.models_dir) if e.available()]
    voice = f"{voices[0].name} ({voices[0].voice})" if voices else "none (install espeak-ng)"
    line = (f"{source}; SIP {sip.bind_host}:{sip.bind_port}, {registrar}; {ami}; {redis}; "
            f"database {database}; speech engine {engine_name or settings.asr.engine}; "
            f"voice {voice}")  # fmt: skip
    return mask_text(line)


async def _answer_calls(settings: Settings, engine_name: str | None, tickets_redis: str,
                        signals: _Signals, resources: contextlib.ExitStack) -> None:  # fmt: skip
    import socket

    import redis.asyncio as aioredis

    from bot.brain import BrainCache
    from hotline.metrics import METRICS, start_metrics_server
    from ivr.ami import AmiClient
    from ivr.controller import Controller
    from ivr.journal import beat_interval, heartbeat, recover_orphans_forever
    from ivr.wiring import (
        LiveBrain,
        ServiceSink,
        bot_paths,
        build_deps,
        load_speech,
        prerender,
        ticket_service,
    )
    from voice.prompts import PromptLibrary

    log = logging.getLogger("hotline")
    obs = settings.observability
    if obs.metrics_port:
        try:
            start_metrics_server(obs.metrics_host, obs.metrics_port)
        except OSError as exc:  # taken since the start-up check
            from hotline.checks import port_error

            raise port_error("observability.metrics_host/metrics_port (TCP)", obs.metrics_host,
                             obs.metrics_port, exc) from exc  # fmt: skip
    service = await asyncio.to_thread(ticket_service, settings, tickets_redis)
    resources.callback(service.store.dispose)
    watcher = None
    if settings.bot.managed_config:
        # Menu, KB and prompts as managers save them in the console (versioned in SQL,
        # announced on Redis): the next call gets a new version, a live call keeps its own.
        from manage.calls import record_call
        from manage.config import ConfigStore
        from manage.reload import ConfigWatcher

        # The Redis resolved above (embedded included), not the configured one: that
        # may not answer, and the watcher would retry it every 2 s forever.
        watcher = await asyncio.to_thread(
            ConfigWatcher.start_for,
            ConfigStore(service.store, settings),
            settings,
            redis_url=tickets_redis,
        )
        resources.callback(watcher.stop)
        cache = watcher.cache
    else:
        cache = await asyncio.to_thread(BrainCache, bot_paths(settings))
    engine = await asyncio.to_thread(load_speech, settings, engine_name)
    resources.callback(engine.close)
    prompts = PromptLibrary.from_settings(settings.ivr, settings.data_dir, settings.models_dir)
    count = await asyncio.to_thread(prerender, prompts, cache.current())
    voice = prompts.fixed_engine().name  # which voice callers hear (docs/voice.md)
    log.info("%d prompts ready in the voice %s; speech engine %s", count, voice, engine.name)
    if settings.ami.url or settings.ivr.asterisk_sounds_dir:  # an Asterisk to speak for
        await asyncio.to_thread(_asterisk_sounds, settings, prompts)
    journal_url = journal_redis_url(settings, tickets_redis)
    redis = aioredis.from_url(journal_url) if journal_url else None
    from tickets.spool import DraftSpool

    tickets = ServiceSink(service, DraftSpool(settings.data_dir / "spool"))
    ami = None
    if settings.ami.url:
        ami = AmiClient(settings.ami.url, settings.ami.queue_context, settings.ami.callback_context,
                        settings.ami.callback_caller_id, settings.ami.ping_interval_s,
                        settings.ami.reconnect_max_s, settings.ami.queues)  # fmt: skip
        ami.on_screen_pop = tickets.screen_pop
        await ami.start()
        METRICS.ami_connected.set_function(lambda: float(bool(ami and ami.connected)))
    deps = build_deps(settings, LiveBrain(cache, prompts), engine, prompts, tickets=tickets,
                      switchboard=ami, redis=redis, node=socket.gethostname())  # fmt: skip
    if watcher is not None:
        zone = settings.tickets.timezone
        deps.record_sink = lambda record: record_call(service.store, record, zone)
    controller = Controller(settings.sip, deps)
    background: list[asyncio.Task[Any]] = []
    try:
        if signals.stop.is_set():
            return
        try:
            await controller.start()
        except OSError as exc:
            from hotline.checks import SIP_PORT, SIP_PORT_HINT, port_error

            sip = settings.sip  # taken between the start-up check and now
            raise port_error(SIP_PORT, sip.bind_host, sip.bind_port, exc, SIP_PORT_HINT) from exc
        if redis is not None:
            await _report_downtime(redis, deps.node)
            stale_s = settings.ivr.orphan_stale_s
            beats = heartbeat(redis, lambda: list(controller.sessions), deps.node,
                              beat_interval(stale_s))  # fmt: skip
            background.append(asyncio.create_task(beats))
            background.append(asyncio.create_task(recover_orphans_forever(
                redis, tickets.intake,
                settings.ivr.orphan_scan_s, stale_s, live=lambda: set(controller.sessions),
            )))  # fmt: skip
            if ami is not None:
                from ivr.orphans import FallbackPops

                ami.on_fallback_connect = FallbackPops(
                    redis, tickets.intake, tickets.screen_pop, service.store.number_for_call,
                    live=lambda: set(controller.sessions),
                )  # fmt: skip
        background.append(asyncio.create_task(tickets.keep_safe()))
        log.info("answering on %s:%s", settings.sip.bind_host, settings.sip.bind_port)
        await signals.stop.wait()
        await controller.shutdown(settings.ivr.drain_s, signals.now)
        log.info("stopped after %d calls", len(controller.records))
    finally:
        for task in background:
            task.cancel()
        if ami is not None:
            await ami.stop()
        if redis is not None:
            await redis.aclose()


def _asterisk_sounds(settings: Settings, prompts: Any) -> None:
    """The dialplan's own sounds (night-callback, all-busy) where Asterisk reads them; a
    failure is logged, not fatal: the dialplan falls back to a ringing queue."""
    from ivr.asterisk_sounds import render_asterisk_sounds, sounds_dir
    from voice.prompts import PromptError

    folder = sounds_dir(settings)
    try:
        written = render_asterisk_sounds(prompts, folder)
    except (OSError, PromptError) as exc:
        logging.getLogger("hotline").warning(
            "Asterisk's sounds not written to %s (%s): at night a caller the bot could not "
            "finish with waits in a ringing queue instead of hearing the callback promise; "
            "run 'hotline prompts --asterisk-sounds DIR'", folder, exc)  # fmt: skip
        return
    if written:
        logging.getLogger("hotline").info("Asterisk sounds written to %s: %s", folder,
                                          ", ".join(p.name for p in written))  # fmt: skip


async def _report_downtime(redis: Any, node: str) -> None:
    from hotline.metrics import METRICS
    from ivr.journal import downtime_before_start

    gap = await downtime_before_start(redis, node)
    METRICS.controller_downtime.set(gap)
    if gap:
        logging.getLogger("hotline").warning(
            "this controller was not answering for %.0f s before this start: calls of that "
            "time went to Asterisk's fallback (people), without work orders", gap)  # fmt: skip
