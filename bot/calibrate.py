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


def fit(
    brain: Brain, cases_path: str | Path, steps: int = 50000, l2: float = 0.002
) -> dict[str, Any]:
    x, y = features(brain, cases_path)
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    for _ in range(steps):  # plain gradient descent: four weights do not need a library
        p = 1.0 / (1.0 + np.exp(-xb @ w))
        w -= xb.T @ (p - y) / len(y) + l2 * np.r_[w[:-1], 0.0]
    p = 1.0 / (1.0 + np.exp(-xb @ w))
    return {
        "cases": len(y),
        "weights": {
            "query_coverage": round(float(w[0]), 2),
            "phrasing_coverage": round(float(w[1]), 2),
            "margin": round(float(w[2]), 2),
            "bias": round(float(w[3]), 2),
        },
        "log_loss": round(
            float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9))), 4
        ),
    }
