"""Fit the retrieval confidence (``bot.retrieval.CALIBRATION``) on your own phrasings.

Logistic regression on (query coverage, phrasing coverage, margin) -> "top entry is the
expected one", from a TSV of ``kb:<id>`` and ``unknown`` cases. Run it on phrasings
written for calibration, never on the evaluation set, and copy the weights into
``bot/retrieval.py`` if they change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bot.brain import Brain
from bot.evaluate import load_cases
from bot.text import Prepared


def features(brain: Brain, cases_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for case in load_cases(cases_path, brain):
        if not (case.expected.startswith("kb:") or case.expected == "unknown"):
            continue
        matches = brain.retriever.search(Prepared.of(case.text), k=5)
        if not matches:
            rows.append([0.0, 0.0, 0.0])
            labels.append(0.0)
            continue
        sums = [m.query_coverage + m.phrasing_coverage for m in matches]
        top = matches[0]
        rows.append(
            [top.query_coverage, top.phrasing_coverage, sums[0] - max(sums[1:], default=0.0)]
        )
        labels.append(1.0 if case.expected == f"kb:{top.entry.id}" else 0.0)
    return np.array(rows), np.array(labels)


def semantic_features(brain: Brain, cases_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One row per candidate of the meaning re-ranker; label 1 for the expected entry."""
    retriever = brain.retriever
    rows: list[tuple[float, ...]] = []
    labels: list[float] = []
    for case in load_cases(cases_path, brain):
        if not (case.expected.startswith("kb:") or case.expected == "unknown"):
            continue
        for entry_index, x, _ in retriever.semantic_candidates(Prepared.of(case.text)):
            rows.append(x)
            labels.append(1.0 if case.expected == f"kb:{brain.kb.entries[entry_index].id}" else 0.0)
    return np.array(rows), np.array(labels)


def _logistic(x: np.ndarray, y: np.ndarray, steps: int, l2: float) -> tuple[np.ndarray, float]:
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    for _ in range(steps):  # plain gradient descent: a handful of weights needs no library
        p = 1.0 / (1.0 + np.exp(-xb @ w))
        w -= xb.T @ (p - y) / len(y) + l2 * np.r_[w[:-1], 0.0]
    p = 1.0 / (1.0 + np.exp(-xb @ w))
    loss = float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))
    return w, loss


def fit_semantic(
    brain: Brain, cases_path: str | Path, steps: int = 20000, l2: float = 0.002
) -> dict[str, Any]:
    """Weights of ``bot.retrieval.SEMANTIC_CALIBRATION`` (needs the sentence encoder)."""
    if brain.retriever.semantic is None:
        return {"cases": 0, "weights": None, "note": "sentence encoder not available"}
    x, y = semantic_features(brain, cases_path)
    w, loss = _logistic(x, y, steps, l2)
    names = ("query_coverage", "phrasing_coverage", "lexical_margin", "similarity",
             "similarity_margin", "bias")  # fmt: skip
    return {
        "candidates": len(y),
        "weights": {n: round(float(v), 2) for n, v in zip(names, w, strict=True)},
        "log_loss": round(loss, 4),
    }


def fit(
    brain: Brain, cases_path: str | Path, steps: int = 50000, l2: float = 0.002
) -> dict[str, Any]:
    x, y = features(brain, cases_path)
    w, loss = _logistic(x, y, steps, l2)
    return {
        "cases": len(y),
        "weights": {
            "query_coverage": round(float(w[0]), 2),
            "phrasing_coverage": round(float(w[1]), 2),
            "margin": round(float(w[2]), 2),
            "bias": round(float(w[3]), 2),
        },
        "log_loss": round(loss, 4),
        "semantic": fit_semantic(brain, cases_path),
    }
