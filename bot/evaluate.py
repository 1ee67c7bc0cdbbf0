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
from bot.text import Prepared
from bot.understanding import tsv_pairs
from hotline.errors import UserFacingError

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


class EvalError(UserFacingError, ValueError):
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
    for number, text, expected in tsv_pairs(path, f"cases {path}", "expected", EvalError):
        if not (expected.startswith("kb:") or expected in LABELS):
            raise EvalError(f"cases {path}: line {number}: unknown expected label {expected!r}")
        if brain is not None and expected.startswith("kb:") and brain.kb.get(expected[3:]) is None:
            raise EvalError(
                f"cases {path}: line {number}: {expected!r} is not in the knowledge base"
            )
        cases.append(Case(text, expected, number))
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
    """Run every case through the brain's classifier (all of its rules and bands)."""
    rng = random.Random(seed)
    texts = [homophone_noise(c.text, rate, rng) if noise == "homophone" else c.text for c in cases]
    timings: list[float] = []
    got: list[tuple[str, str]] = []
    for text in texts:
        t0 = time.perf_counter()
        intent = brain.classify(text)
        timings.append((time.perf_counter() - t0) * 1000)
        got.append((intent.eval_label, intent.band))
    result = score(cases, texts, got)
    result["noise"] = noise if noise == "none" else f"{noise}@{rate}"
    result["median_ms"] = round(statistics.median(timings), 3)
    result["p95_ms"] = round(sorted(timings)[int(0.95 * (len(timings) - 1))], 3)
    return result


def group_of(label: str) -> str:
    return "kb" if label.startswith("kb:") else label


def score(cases: list[Case], texts: list[str], got: list[tuple[str, str]]) -> dict[str, Any]:
    """Figures from (expected, (label, band)) pairs.

    ``false_answers``: a knowledge-base answer read out as certain (band "answer") that is
    wrong (the wrong entry, or nothing should have been answered). ``wrong_confirms``: a
    wrong entry offered as 「您是想问……吗？」 (the caller can say no). ``emergency_recall``:
    emergencies handed over or asked about (「现在有人有生命危险吗？」).
    """
    per_label: dict[str, list[bool]] = defaultdict(list)
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    kb_total = kb_right = false_answers = wrong_confirms = correct = 0
    errors: list[dict[str, str]] = []
    for case, text, (label, band) in zip(cases, texts, got, strict=True):
        ok = label == case.expected
        correct += ok
        per_label[group_of(case.expected)].append(ok)
        confusion[group_of(case.expected)][_confusion_column(case.expected, label)] += 1
        if case.expected.startswith("kb:"):
            kb_total += 1
            kb_right += ok
        if label.startswith("kb:") and not ok:
            if band == "confirm":
                wrong_confirms += 1
            else:
                false_answers += 1
        if not ok:
            errors.append({"line": str(case.line), "text": text, "expected": case.expected,
                           "got": label + (f" ({band})" if band else "")})  # fmt: skip
    n = len(cases)
    emergencies = per_label.get("emergency", [])
    return {
        "cases": n,
        "accuracy": round(correct / n, 4),
        "kb_top1": round(kb_right / kb_total, 4) if kb_total else None,
        "emergency_recall": round(sum(emergencies) / len(emergencies), 4) if emergencies else None,
        "false_answers": false_answers,
        "false_answer_rate": round(false_answers / n, 4),
        "wrong_confirms": wrong_confirms,
        "per_label": {k: round(sum(v) / len(v), 4) for k, v in sorted(per_label.items())},
        "confusion": {k: dict(sorted(v.items())) for k, v in sorted(confusion.items())},
        "errors": errors,
    }


def _confusion_column(expected: str, got: str) -> str:
    """kb rows: "kb" when right, "kb(wrong entry)" when another entry; else the group."""
    if expected.startswith("kb:") and got.startswith("kb:"):
        return "kb" if got == expected else "kb(wrong entry)"
    return group_of(got)


def cross_validate(
    brain: Brain,
    folds: int = 5,
    seed: int = 12345,
    learn_heard: bool = True,
    corpus: str | Path | None = None,
) -> dict[str, Any]:
    """K-fold cross-validation over the brain's training set (corpus + heard copies + KB
    phrasings): each fold is classified, with every rule and band, by a model (and bands)
    trained on the other folds only. A written line and its heard copies share a fold.
    The knowledge base's own phrasings stay in every training fold (they are the KB, not
    callers' words) and are not scored. The figures are for the written lines; ``heard``
    holds the same figures for the heard copies (what a call's recogniser hands over).
    ``learn_heard=False`` leaves the heard copies out of training (still scored): what
    they buy."""
    from sklearn.model_selection import StratifiedGroupKFold

    from bot.understanding import KB_PHRASING_WEIGHT, load_corpus, load_heard, training_set

    examples, links = training_set(brain.kb, load_corpus(corpus) + load_heard(corpus))
    kb_rows = [e for e in examples if e.weight == KB_PHRASING_WEIGHT]
    callers = sorted((e for e in examples if e.weight != KB_PHRASING_WEIGHT),
                     key=lambda e: (e.label, e.text, e.said))  # fmt: skip
    labels = [e.label for e in callers]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    written: list[tuple[Case, tuple[str, str]]] = []
    heard: list[tuple[Case, tuple[str, str]]] = []
    for train_idx, test_idx in splitter.split(labels, labels, [e.group for e in callers]):
        train_rows = [callers[i] for i in train_idx if learn_heard or not callers[i].said]
        classifier = _fold_classifier(brain, train_rows + kb_rows, links)
        test = [callers[i] for i in test_idx]
        predictions = classifier.model.predict_many([e.text for e in test])
        for i, example, prediction in zip(test_idx, test, predictions, strict=True):
            intent = classifier.decide(Prepared.of(example.text), prediction)
            scored = (Case(example.text, example.label, int(i)), (intent.eval_label, intent.band))
            (heard if example.said else written).append(scored)
    result = _scored(written)
    if heard:
        result["heard"] = _scored(heard)
    result["folds"] = folds
    result["learn_heard"] = learn_heard
    return result


def _scored(rows: list[tuple[Case, tuple[str, str]]]) -> dict[str, Any]:
    """:func:`score` of cross-validated rows, the first 50 errors kept."""
    cases = [case for case, _ in rows]
    result = score(cases, [c.text for c in cases], [got for _, got in rows])
    result["errors"] = result["errors"][:50]
    return result


def _fold_classifier(brain: Brain, train_rows: list[Any], links: dict[str, str]) -> Any:
    """The brain's classifier over a model and bands trained on ``train_rows`` only."""
    from bot.classifier import Classifier
    from bot.understanding import Understanding, _fit, fit_bands

    feats, model = _fit(train_rows)
    bands, temperature = fit_bands(train_rows, folds=3)
    return Classifier(brain.lexicon, brain.kb, Understanding(feats, model, bands, temperature,
                                                            links))  # fmt: skip


def evaluate_departments(brain: Brain, path: str | Path) -> dict[str, Any]:
    """Where first sentences of work orders would be dispatched. ``path``: TSV
    ``text<TAB>department`` (a header line ``text<TAB>department`` is allowed).

    ``right``/``wrong``/``unassigned`` count only calls that became work orders
    (``unassigned``: left to the operator to dispatch); ``no_ticket`` counts first
    sentences the bot took for something else (a question, an emergency)."""
    from bot.events import CallStarted, Utterance  # here: the evaluation drives a dialogue

    rows = _department_rows(path)
    counts = {"right": 0, "wrong": 0, "unassigned": 0, "no_ticket": 0}
    errors: list[dict[str, str]] = []
    for text, expected in rows:
        dialogue = brain.new_dialogue()
        dialogue.handle(CallStarted("", seats_available=True))
        dialogue.handle(Utterance(text))
        ticket = dialogue.ticket
        got = _department_name(ticket.department) if ticket is not None else ""
        outcome = (
            "no_ticket" if ticket is None
            else "right" if got == _department_name(expected)
            else "unassigned" if not got or "政务服务热线" in got
            else "wrong"
        )  # fmt: skip
        counts[outcome] += 1
        if outcome != "right":
            errors.append({"text": text, "expected": expected, "got": got or outcome})
    tickets = len(rows) - counts["no_ticket"]
    return {
        "cases": len(rows),
        **counts,
        "right_of_tickets": round(counts["right"] / max(tickets, 1), 3),
        "wrong_of_tickets": round(counts["wrong"] / max(tickets, 1), 3),
        "errors": errors,
    }


def _department_name(name: str) -> str:
    """青川市教育局 and 市教育局 are the same department: compare without the city."""
    at = name.find("市")
    return name[at:] if 0 < at <= 4 else name


def _department_rows(path: str | Path) -> list[tuple[str, str]]:
    path = Path(path)
    rows = tsv_pairs(path, f"departments {path}", "department", EvalError, header=True)
    return [(text, department) for _, text, department in rows]
