"""``hotline demo``, ``hotline bench soak``, ``hotline drill``, ``hotline check`` and
``hotline lint-asterisk``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import sys
from pathlib import Path
from typing import Any


def register(commands: Any, bench: Any) -> None:
    demo = commands.add_parser(
        "demo", help="everything embedded on this machine: three calls at once, then the console"
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var/demo"),
        help="where the demo keeps Redis, SQLite, recordings (var/demo)",
    )
    demo.add_argument(
        "--audio",
        type=Path,
        help="recorded callers: WAV clips and a transcripts.tsv (default: the local neural "
        "voice speaks them, else ../shared/audio/calls-dev, else espeak-ng)",
    )
    demo.add_argument("--engine", choices=["auto", "vosk", "whisper"], default="whisper")
    demo.add_argument("--port", type=int, default=8345, help="console port (8345)")
    demo.add_argument(
        "--no-wait", action="store_true", help="stop after the calls instead of serving the console"
    )
    demo.add_argument("--json", action="store_true", help="also print the result as JSON")
    demo.set_defaults(handler=cmd_demo)

    soak = bench.add_parser("soak", help="sipp calls for a given time; nothing may be lost")
    soak.add_argument("--minutes", type=float, default=10.0)
    soak.add_argument("--concurrency", type=int, default=20)
    soak.add_argument("--audio", type=Path, help="clips + transcripts.tsv "
                      "(default ../shared/audio/calls-dev/)")  # fmt: skip
    soak.add_argument(
        "--kb", type=Path, help="knowledge base (default ../shared/eval/kb.yaml, else bot.kb)"
    )
    soak.add_argument("--engine", choices=["auto", "vosk", "whisper"], default="whisper")
    soak.add_argument(
        "--embedded-redis",
        action="store_true",
        help="a private redis-server even when the configured one answers",
    )
    soak.add_argument("--json", action="store_true", help="print JSON (the default output)")
    soak.set_defaults(handler=cmd_soak)

    drill = commands.add_parser("drill", help="inject a fault while sipp callers talk to the "
                                "controller; print what survived")  # fmt: skip
    drill.add_argument("name", choices=["controller-kill", "redis-restart", "ami-drop",
                                        "sip-flood", "disk-full", "sip-bomb", "sdp-bad",
                                        "sql-down", "disk-full-sql", "invite-noack",
                                        "all"])  # fmt: skip
    drill.add_argument("--audio", type=Path, help="clips + transcripts.tsv "
                       "(default ../shared/audio/calls-dev/)")  # fmt: skip
    drill.add_argument(
        "--kb", type=Path, help="knowledge base (default ../shared/eval/kb.yaml, else bot.kb)"
    )
    drill.add_argument("--engine", choices=["auto", "vosk", "whisper"], default="whisper")
    drill.add_argument("--json", action="store_true", help="print JSON (the default output)")
    drill.set_defaults(handler=cmd_drill)

    check = commands.add_parser(
        "check",
        help="the start-up checks of 'hotline run', alone: a table; exit 0, 2 or 3",
        description="Check the settings as 'hotline run' does before its first call: data"
        " folder, database, Redis (seat queue, call journal), SIP and metrics ports, AMI URL,"
        " bot data. Exit 2 when a setting is wrong, else 3 when a service does not answer,"
        " else 0 (warnings included).",
    )
    check.set_defaults(handler=cmd_check)

    lint = commands.add_parser(
        "lint-asterisk", help="check the Asterisk configuration against the hotline's"
    )
    lint.add_argument("directory", nargs="?", type=Path, default=Path("telephony_config"))
    lint.add_argument("--manager", type=Path, help="another manager.conf (docker: deploy/asterisk)")
    lint.set_defaults(handler=cmd_lint)


def cmd_demo(args: argparse.Namespace) -> int:
    from hotline.cli import CommandError
    from hotline.logs import configure_logging
    from hotline.settings import load_settings
    from ops.demo import DemoError, run_demo

    configure_logging("text", "WARNING")
    # A service manager's or `kill`'s SIGTERM stops the demo as Ctrl-C does: calls ended,
    # console and the embedded redis-server stopped (not left running).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Each line as it happens, also when piped (a pipe makes stdout block-buffered).
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        result = asyncio.run(run_demo(load_settings(), data_dir=args.data_dir, audio=args.audio,
                                      engine=args.engine, console_port=args.port,
                                      wait=not args.no_wait, out=sys.stdout))  # fmt: skip
    except DemoError as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    return 0 if all(c["ok"] for c in result["calls"]) else 1


def _sipp_callers(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The clips sipp callers speak and the knowledge base they ask about (soak, drills):
    ``--audio``/``--kb``, else ../shared's dev clips and sample KB (else the bot's own)."""
    from hotline.cli import CommandError
    from ops.shared import dev_calls, sample_kb

    if shutil.which("sipp") is None:
        raise CommandError("sipp is not installed (apt-get install sip-tester)")
    audio = args.audio or dev_calls()
    if not (audio / "transcripts.tsv").is_file():
        raise CommandError(f"{audio} has no transcripts.tsv (filename<TAB>text<TAB>expected)")
    kb = args.kb
    if kb is None and sample_kb().is_file():
        kb = sample_kb()
    return audio, kb


def cmd_soak(args: argparse.Namespace) -> int:
    from hotline.cli import CommandError
    from hotline.settings import load_settings
    from ops.soak import soak
    from testkit.bench import BenchError

    logging.basicConfig(level=logging.ERROR)
    if args.minutes <= 0 or args.concurrency < 1:
        raise CommandError("--minutes must be positive and --concurrency at least 1")
    audio, kb = _sipp_callers(args)
    try:
        result = asyncio.run(
            soak(
                load_settings(),
                minutes=args.minutes,
                concurrency=args.concurrency,
                audio=audio,
                kb=kb,
                engine=args.engine,
                embedded_redis=args.embedded_redis,
            )
        )
    except BenchError as exc:
        raise CommandError(str(exc)) from exc
    print(json.dumps(result))
    return 0 if result["lost"] == 0 else 1


def cmd_check(args: argparse.Namespace) -> int:
    """Every start-up check, failures included; exit 2 when a setting is wrong, else 3
    when a service does not answer, else 0 (warnings are printed, not failures)."""
    from hotline.checks import exit_status, run_checks, table
    from hotline.settings import load_settings
    from ivr.checks import RUN_CHECKS

    findings = run_checks(
        load_settings(), RUN_CHECKS
    )  # settings that do not load: one line, exit 2
    print(table(findings))
    return exit_status(findings)


def cmd_lint(args: argparse.Namespace) -> int:
    from hotline.cli import CommandError
    from hotline.settings import load_settings
    from ops.asterisk_lint import lint

    if not args.directory.is_dir():
        raise CommandError(f"{args.directory} is not a folder of Asterisk .conf files")
    problems = lint(args.directory, manager=args.manager, settings=load_settings())
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) in {args.directory}")
    return 1 if problems else 0


def cmd_drill(args: argparse.Namespace) -> int:
    import tempfile

    from hotline.cli import CommandError
    from hotline.settings import load_settings
    from ops.drills import DRILLS, DrillError, DrillKit, dumps, run_drill
    from testkit.bench import BenchError

    # Warnings reach the drills' own log capture (their evidence), not the terminal.
    logging.basicConfig(level=logging.WARNING, handlers=[logging.NullHandler()])
    audio, kb = _sipp_callers(args)
    names = list(DRILLS) if args.name == "all" else [args.name]

    async def drills() -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="hotline-drill-") as tmp:
            kit = await asyncio.to_thread(DrillKit.load, load_settings(), Path(tmp), audio, kb,
                                          args.engine)  # fmt: skip
            try:
                return [await run_drill(name, kit) for name in names]
            finally:
                kit.close()

    try:
        results = asyncio.run(drills())
    except (DrillError, BenchError) as exc:
        raise CommandError(str(exc)) from exc
    for result in results:
        print(dumps(result))
    harm = ("lost", "duplicated", "failed", "crashed")
    bad = [r for r in results if any(r.get(key) for key in harm)]
    return 1 if bad else 0
