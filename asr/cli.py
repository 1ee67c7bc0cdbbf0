"""``hotline asr ...`` and ``hotline models ...`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from asr.base import SpeechEngine


def register(commands: Any, bench: Any) -> None:
    asr = commands.add_parser("asr", help="speech recognition tools")
    actions = asr.add_subparsers(dest="asr_command", metavar="ACTION", required=True)

    transcribe = actions.add_parser("transcribe", help="transcribe WAV files (any rate, 16-bit)")
    transcribe.add_argument("files", nargs="+", type=Path)
    transcribe.add_argument("--engine", choices=["auto", "vosk", "whisper"])
    transcribe.add_argument(
        "--telephone", choices=["alaw", "ulaw"], help="pass through a G.711 round trip first"
    )
    transcribe.add_argument("--hint", action="append", default=[], help="phrase hint (repeatable)")
    transcribe.add_argument(
        "--hints-file",
        type=Path,
        metavar="FILE",
        help="phrase hints, one a line (the bot's: hotline bot hints --kb KB > FILE)",
    )
    transcribe.add_argument(
        "--json", action="store_true", help="one JSON object per utterance, n-best included"
    )
    transcribe.set_defaults(handler=_transcribe)

    asr_bench = actions.add_parser("bench", help="accuracy, speed and memory on DIR (prints JSON)")
    _bench_arguments(asr_bench)

    synth = actions.add_parser(
        "synth", help="make a test folder of espeak-ng speech (e.g. Korean for Vosk)"
    )
    synth.add_argument("folder", type=Path)
    synth.add_argument("--voice", default="ko")
    synth.add_argument(
        "--texts", type=Path, help="one sentence per line (default: built-in Korean)"
    )
    synth.set_defaults(handler=_synth)

    models = commands.add_parser("models", help="speech models: download and verify")
    model_actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    pull = model_actions.add_parser(
        "pull", help="download a Vosk model and verify every file by SHA-256"
    )
    pull.add_argument("name", choices=["vosk-model-small-cn-0.22", "vosk-model-cn-0.22"])
    pull.add_argument("--sums", type=Path, help="SHA-256 list to verify against (sha256sum format)")
    pull.add_argument("--url", help="download from this mirror instead of alphacephei.com")
    pull.set_defaults(handler=_pull)
    verify = model_actions.add_parser(
        "verify", help="check installed models against their checksums"
    )
    verify.set_defaults(handler=_verify)


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="WAV files + transcripts.tsv")
    parser.add_argument("--engine", choices=["auto", "vosk", "whisper"], default="auto")
    parser.add_argument("--model-dir", type=Path, help="model folder for the engine")
    parser.add_argument("--runs", type=int, default=3, help="repeats of the A-law pass (median)")
    parser.add_argument("--no-latency", action="store_true", help="skip the real-time latency pass")
    parser.add_argument(
        "--stream-seconds", type=float, default=20.0, help="length of the concurrency pass"
    )
    parser.add_argument("--json", action="store_true", help="print JSON (the default output)")
    parser.set_defaults(handler=_bench)


def _engine_loader(engine: str | None, model_dir: Path | None = None) -> Any:
    from asr.engines import load_engine
    from hotline.settings import load_settings

    settings = load_settings()
    asr_settings = settings.asr
    if engine:
        asr_settings = asr_settings.model_copy(update={"engine": engine})
    if model_dir is not None:
        section = asr_settings.engine if asr_settings.engine != "auto" else "vosk"
        sub = getattr(asr_settings, section).model_copy(update={"model_dir": model_dir})
        asr_settings = asr_settings.model_copy(update={section: sub})

    def load() -> SpeechEngine:
        return load_engine(asr_settings, settings.models_dir)

    return load


def _transcribe(args: argparse.Namespace) -> int:
    from asr.bench import stream_finals, telephone_path
    from hotline.audio import read_wav

    engine = _engine_loader(args.engine)()
    hints = list(args.hint)
    if args.hints_file:
        lines = args.hints_file.read_text(encoding="utf-8").splitlines()
        hints += [line.strip() for line in lines if line.strip()]
    for path in args.files:
        pcm, _ = read_wav(path, target_rate=16000)
        if args.telephone:
            pcm = telephone_path(pcm, args.telephone)
        finals = stream_finals(engine, pcm, hints)
        if args.json:
            for f in finals:
                print(
                    json.dumps(
                        {
                            "file": str(path),
                            "text": f.text,
                            "confidence": round(f.confidence, 3),
                            "start_s": round(f.start_s, 2),
                            "end_s": round(f.end_s, 2),
                            "alternatives": [
                                {"text": a.text, "score": a.score} for a in f.alternatives
                            ],
                        },
                        ensure_ascii=False,
                    )
                )
        else:
            print(f"{path}\t{''.join(f.text for f in finals)}")
    engine.close()
    return 0


def _bench(args: argparse.Namespace) -> int:
    from asr.bench import run_bench

    result = run_bench(
        _engine_loader(args.engine, args.model_dir),
        args.folder,
        runs=args.runs,
        latency=not args.no_latency,
        stream_seconds=args.stream_seconds,
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from asr.synth import KOREAN_SENTENCES, synthesize_folder

    sentences = (
        args.texts.read_text(encoding="utf-8").splitlines() if args.texts else KOREAN_SENTENCES
    )
    count = synthesize_folder(args.folder, [s for s in sentences if s.strip()], args.voice)
    print(f"wrote {count} clips and transcripts.tsv to {args.folder}", file=sys.stderr)
    return 0


def _pull(args: argparse.Namespace) -> int:
    from asr.models import pull_vosk_model
    from hotline.settings import load_settings

    target = pull_vosk_model(args.name, load_settings().models_dir, sums=args.sums, url=args.url)
    print(f"{args.name}: downloaded and verified in {target}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from asr.models import VOSK_MODELS, install_whisper_base, verify_vosk_model
    from hotline.settings import load_settings

    models_dir = load_settings().models_dir
    print(f"faster-whisper-base: verified in {install_whisper_base(models_dir)}")
    for name in VOSK_MODELS:
        if (models_dir / name).is_dir():
            print(f"{name}: verified in {verify_vosk_model(models_dir, name)}")
    return 0
