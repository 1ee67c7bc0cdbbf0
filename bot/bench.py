"""``hotline bot bench``: decision latency (utterance in, actions out).

Medians over the held-out utterances, each in a fresh call, for the 40-entry sample
knowledge base and for a generated 5,000-entry one (the sample entries plus synthetic
entries built from jieba's dictionary, seeded).
"""

from __future__ import annotations

import random
import statistics
import time
from importlib import resources
from pathlib import Path
from typing import Any

import jieba

from bot.brain import Brain
from bot.dialogue import Dialogue
from bot.events import CallStarted, Utterance
from bot.kb import Entry, KnowledgeBase

_VERBS = (
    "怎么办理",
    "在哪里申请",
    "需要什么材料",
    "多久能办好",
    "收费标准是多少",
    "找哪个部门",
    "有什么补贴",
    "怎么查询",
)
_DEFAULT_UTTERANCES = (
    "租房能不能取公积金",
    "我的社保卡找不到了",
    "孩子刚出生怎么上户口",
    "我要投诉楼下饭店油烟太大",
    "小区门口的路灯坏了",
    "有人在河里电鱼",
    "转人工",
    "我家着火了",
    "请问火星上能种菜吗",
    "暖气什么时候开始",
)


def synthetic_kb(base: KnowledgeBase, size: int, seed: int = 7) -> KnowledgeBase:
    rng = random.Random(seed)
    words: list[str] = []
    with jieba.get_dict_file() as f:  # jieba's own dictionary: word, frequency, part of speech
        for raw in f:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            parts = line.split()
            if len(parts) >= 3 and parts[2] in ("n", "nz", "vn") and 2 <= len(parts[0]) <= 4:
                words.append(parts[0])
    entries = list(base.entries)
    i = 0
    while len(entries) < size:
        a, b = rng.choice(words), rng.choice(words)
        verb = rng.choice(_VERBS)
        entries.append(Entry(
            f"syn-{i}",
            f"{a}管理",
            f"市{a}管理局",
            f"{a}{b}{verb}",
            (f"{b}的{a}{rng.choice(_VERBS)}",),
            f"关于{a}{b}的事项，请携带身份证到{a}服务窗口办理。",
        ))  # fmt: skip
        i += 1
    return KnowledgeBase(tuple(entries), f"synthetic-{size}")


def _utterances(path: str | Path | None) -> list[str]:
    if path is None:
        default = Path(str(resources.files("bot").joinpath("data/bench-utterances.txt")))
        if not default.is_file():
            return list(_DEFAULT_UTTERANCES)
        path = default
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.split("\t")[0] for ln in lines if ln.strip() and not ln.startswith("#")]


def decision_latency(brain: Brain, utterances: list[str], rounds: int = 5) -> dict[str, float]:
    times: list[float] = []
    for _ in range(rounds):
        for text in utterances:
            dialogue = Dialogue(brain)
            dialogue.start(CallStarted("10000", seats_available=True))
            t0 = time.perf_counter()
            dialogue.handle(Utterance(text, 0.9))
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "decisions": len(times),
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3),
        "max_ms": round(times[-1], 3),
    }


def run_bench(
    utterances_path: str | Path | None = None, large: int = 5000, rounds: int = 5
) -> dict[str, Any]:
    utterances = _utterances(utterances_path)
    brain = Brain.load()
    small = decision_latency(brain, utterances, rounds)
    t0 = time.perf_counter()
    big_brain = Brain(
        synthetic_kb(brain.kb, large), brain.lexicon, brain.gazetteer, brain.menu, brain.prompts
    )
    index_s = time.perf_counter() - t0
    big = decision_latency(big_brain, utterances, rounds)
    return {
        "kb_small": {"entries": len(brain.kb), **small},
        "kb_large": {"entries": len(big_brain.kb), "index_s": round(index_s, 2), **big},
        "targets_ms": {"kb_small_median": 5.0, "kb_large_median": 20.0},
    }
