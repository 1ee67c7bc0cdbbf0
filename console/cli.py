"""``hotline console`` (serve the operator console) and ``hotline bench tickets``."""

from __future__ import annotations

import argparse
import json
import logging
import re
from typing import Any

from hotline.cli import CommandError
from hotline.settings import load_settings
from tickets.redis_embedded import redis_url_for


def register(commands: Any, bench: Any) -> None:
    serve = commands.add_parser("console", help="serve the operator console and REST API")
    serve.add_argument("--host", help="default: console.host (127.0.0.1)")
    serve.add_argument("--port", type=int, help="default: console.port (8345)")
    serve.set_defaults(handler=_serve)

    tickets = bench.add_parser("tickets", help="ticket creation rate and screen-pop latency")
    tickets.add_argument("--json", action="store_true", help="print JSON only")
    tickets.add_argument("--count", type=int, default=3000, help="tickets for the creation rate")
    tickets.add_argument("--pops", type=int, default=300, help="screen pops timed")
    tickets.add_argument(
        "--producers",
        type=int,
        default=1,
        help="processes creating tickets at once (controller nodes)",
    )
    tickets.add_argument(
        "--threads",
        type=int,
        default=4,
        help="calls per producer handing over tickets at the same time",
    )
    tickets.add_argument("--database-url", help="default: a fresh SQLite file")
    tickets.set_defaults(handler=_bench)


class _MaskPhoneInAccessLog(logging.Filter):
    """Searches by phone put the number in the URL: keep it out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            args[2] = re.sub(r"(phone=)[^&\s]*", r"\1***", str(args[2]))
            record.args = tuple(args)
        return True


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from console.app import create_app
    from hotline.checks import check_console_port, check_data_dir, require
    from hotline.logs import configure_logging
    from tickets.checks import check_database, check_seat_queue

    settings = load_settings()
    # The address actually bound decides whether cookies default to Secure (see
    # console.security.secure_cookies), so --host goes into the settings the app reads.
    listen = settings.console.model_copy(
        update={
            "host": args.host or settings.console.host,
            "port": args.port or settings.console.port,
        }
    )
    settings = settings.model_copy(update={"console": listen})
    configure_logging(settings.observability.log_format, settings.observability.log_level)
    logging.getLogger("uvicorn.access").addFilter(_MaskPhoneInAccessLog())
    checks = (check_data_dir, check_database, check_seat_queue, check_console_port)
    require(settings, *checks)
    with redis_url_for(settings) as url:
        app = create_app(settings, redis_url=url)
        uvicorn.run(
            app,
            host=listen.host,
            port=listen.port,
            log_config=None,
            log_level=settings.observability.log_level.lower(),
            timeout_graceful_shutdown=3,
            # The app applies X-Forwarded-* itself, from console.trusted_proxies only;
            # uvicorn's own handling would also believe 127.0.0.1 whatever the setting.
            proxy_headers=False,
        )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from console.bench import run_bench

    if min(args.count, args.pops, args.producers, args.threads) < 1:
        raise CommandError("--count, --pops, --producers and --threads must be at least 1")
    settings = load_settings()
    with redis_url_for(settings) as url:
        result = run_bench(
            settings,
            url,
            count=args.count,
            pops=args.pops,
            database_url=args.database_url,
            producers=args.producers,
            threads=args.threads,
        )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0
