"""``hotline run`` (the call controller) and ``hotline prompts render``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
from typing import Any


def register(commands: Any, bench: Any) -> None:
    run = commands.add_parser("run", help="answer calls: SIP endpoint, AMI, recogniser, bot")
    run.set_defaults(handler=cmd_run)
    prompts = commands.add_parser("prompts", help="render the prompt cache ahead of calls")
    prompts.add_argument("texts", nargs="*", help="extra prompt texts to render")
    prompts.set_defaults(handler=cmd_prompts)


def cmd_prompts(args: argparse.Namespace) -> int:
    from hotline.settings import load_settings
    from ivr.prompts import PromptLibrary

    settings = load_settings()
    library = PromptLibrary.from_settings(settings.ivr, settings.data_dir)
    count = library.prerender(args.texts)
    print(f"{count} prompts ready in {library.cache_dir}")
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
    from hotline.settings import load_settings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings()
    engines = _optional("asr.engines", "the speech engines")
    dialogue = _optional("bot.dialogue", "the dialogue policy")
    asyncio.run(_serve(settings, engines, dialogue))
    return 0


async def _serve(settings: Any, engines: Any, dialogue: Any) -> None:
    import socket

    import redis.asyncio as aioredis

    from ivr.ami import AmiClient
    from ivr.controller import Controller
    from ivr.journal import heartbeat, recover_orphans
    from ivr.prompts import PromptLibrary
    from ivr.session import SessionDeps

    engine = engines.load_engine(settings.asr)
    prompts = PromptLibrary.from_settings(settings.ivr, settings.data_dir)
    await asyncio.to_thread(prompts.prerender, [])
    redis = aioredis.from_url(settings.ivr.redis_url) if settings.ivr.redis_url else None
    ami = None
    if settings.ami.url:
        ami = AmiClient(settings.ami.url, settings.ami.queue_context, settings.ami.callback_context,
                        settings.ami.callback_caller_id, settings.ami.ping_interval_s,
                        settings.ami.reconnect_max_s)  # fmt: skip
        await ami.start()
    tickets = _ticket_sink(settings)
    deps = SessionDeps(
        prompts=prompts, new_recognizer=engine.recognizer,
        new_dialogue=lambda call: dialogue.new_dialogue(settings),
        tickets=tickets, switchboard=ami, redis=redis, data_dir=settings.data_dir,
        node=socket.gethostname(), silence_timeout_s=settings.ivr.silence_timeout_s,
        max_call_s=settings.ivr.max_call_s, survey=settings.ivr.satisfaction_survey,
        record_audio=settings.ivr.recordings,
    )  # fmt: skip
    controller = Controller(settings.sip, deps)
    await controller.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    background = []
    if redis is not None:
        background.append(
            asyncio.create_task(heartbeat(redis, lambda: list(controller.sessions), deps.node))
        )
        if tickets is not None:
            await recover_orphans(redis, lambda d: tickets.intake(d, "general"))
    logging.getLogger("hotline").info(
        "answering on %s:%s", settings.sip.bind_host, settings.sip.bind_port
    )
    await stop.wait()
    for task in background:
        task.cancel()
    await controller.stop()
    if ami is not None:
        await ami.stop()


def _ticket_sink(settings: Any) -> Any:
    """The ticket service (tickets/) adapted to the session's async intake."""
    try:
        from tickets.service import TicketService
    except ImportError:
        return None

    service = TicketService.from_settings(settings)

    class Sink:
        async def intake(self, draft: Any, skill: str) -> str:
            ticket = await asyncio.to_thread(service.intake, draft, skill=skill)
            return str(getattr(ticket, "number", ticket))

    return Sink()
