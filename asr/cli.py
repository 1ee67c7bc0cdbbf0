"""``hotline asr ...`` and ``hotline models ...`` commands."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any, bench: Any) -> None:
    asr = commands.add_parser("asr", help="speech recognition tools")
    asr_sub = asr.add_subparsers(dest="asr_command", metavar="ACTION", required=True)
    transcribe = asr_sub.add_parser("transcribe", help="transcribe WAV files")
    transcribe.add_argument("files", nargs="+")
    transcribe.add_argument("--engine", default=None, choices=["auto", "vosk", "whisper"])
    transcribe.set_defaults(handler=_transcribe)


def _transcribe(args: argparse.Namespace) -> int:
    raise NotImplementedError
