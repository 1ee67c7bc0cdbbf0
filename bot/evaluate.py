"""``hotline bot eval``: accuracy of the request classifier and knowledge-base answers.

Cases are TSV lines ``text<TAB>expected`` (``#`` starts a comment), expected being
``kb:<id>``, ``complaint``, ``help``, ``report``, ``suggestion``, ``praise``, ``human``,
``emergency``, ``unknown`` or ``abusive``. ``--noise homophone`` replaces characters with
other characters of the same toneless pinyin at a seeded rate, as a recogniser would.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pypinyin import Style, lazy_pinyin
from pypinyin.pinyin_dict import pinyin_dict

from bot.brain import Brain

LABELS = (
    "complaint",
    "help",
    "report",
    "suggestion",
    "praise",
    "human",
    "emergency",
    "unknown",
    "abusive",
)


class EvalError(ValueError):
    """A cases file that cannot be used; the message names the line."""


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    expected: str
    line: int


def load_cases(path: str | Path, brain: Brain | None = None) -> list[Case]:
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"cases {path}: file not found")
    cases: list[Case] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = raw.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise EvalError(f"cases {path}: line {number}: expected 'text<TAB>expected'")
        expected = parts[1].strip()
        if not (expected.startswith("kb:") or expected in LABELS):
            raise EvalError(f"cases {path}: line {number}: unknown expected label {expected!r}")
        if brain is not None and expected.startswith("kb:") and brain.kb.get(expected[3:]) is None:
            raise EvalError(
                f"cases {path}: line {number}: {expected!r} is not in the knowledge base"
            )
        cases.append(Case(parts[0].strip(), expected, number))
    if not cases:
        raise EvalError(f"cases {path}: no cases")
    return cases


@lru_cache(maxsize=1)
def _homophones() -> dict[str, list[str]]:
    """Common (GB2312) characters grouped by toneless pinyin."""
    groups: dict[str, list[str]] = defaultdict(list)
    for code in pinyin_dict:
        ch = chr(code)
        try:
            ch.encode("gb2312")
        except UnicodeEncodeError:
            continue
        reading = lazy_pinyin(ch, style=Style.NORMAL)[0]
        if reading.isalpha():
            groups[reading].append(ch)
    return groups


def homophone_noise(text: str, rate: float, rng: random.Random) -> str:
    """Replace each Han character with a same-pinyin character with probability ``rate``."""
    groups = _homophones()
    out = []
    for ch in text:
        if "\u4e00" <= ch <= "\u9fff" and rng.random() < rate:
            reading = lazy_pinyin(ch, style=Style.NORMAL)[0]
            choices = [c for c in groups.get(reading, []) if c != ch]
            if choices:
                ch = rng.choice(choices)
        out.append(ch)
    return "".join(out)


def evaluate(
    brain: Brain, cases: list[Case], noise: str = "none", rate: float = 0.1, seed: int = 12345
) -> dict[str, Any]:
    rng = random.Random(seed)
    per_label: dict[str, list[bool]] = defaultdict(list)
    kb_total = kb_right = false_answers = correct = 0
    errors: list[dict[str, str]] = []
    timings: list[float] = []
    for case in cases:
        text = homophone_noise(case.text, rate, rng) if noise == "homophone" else case.text
        t0 = time.perf_counter()
        got = brain.classify(text).eval_label
        timings.append((time.perf_counter() - t0) * 1000)
        ok = got == case.expected
        correct += ok
        group = "kb" if case.expected.startswith("kb:") else case.expected
        per_label[group].append(ok)
        if case.expected.startswith("kb:"):
            kb_total += 1
            kb_right += ok
        if got.startswith("kb:") and not ok:
            false_answers += 1
        if not ok:
            errors.append(
                {"line": str(case.line), "text": text, "expected": case.expected, "got": got}
            )
    n = len(cases)
    return {
        "cases": n,
        "accuracy": round(correct / n, 4),
        "kb_top1": round(kb_right / kb_total, 4) if kb_total else None,
        "false_answers": false_answers,
        "false_answer_rate": round(false_answers / n, 4),
        "per_label": {k: round(sum(v) / len(v), 4) for k, v in sorted(per_label.items())},
        "noise": noise if noise == "none" else f"{noise}@{rate}",
        "median_ms": round(statistics.median(timings), 3),
        "errors": errors,
    }
