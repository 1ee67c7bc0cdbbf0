from __future__ import annotations

from pathlib import Path

import pytest

from bot.kb import KnowledgeBaseError, load_kb


def test_sample_and_shared_kb_load(shared_dir: Path) -> None:
    kb = load_kb(shared_dir / "eval" / "kb.yaml")
    assert len(kb) >= 40
    entry = kb.get("gjj-rent")
    assert entry is not None and entry.department == "市住房公积金管理中心"
    assert entry.also == ("租房提取公积金需要什么材料",)


def test_csv_with_same_columns(tmp_path: Path) -> None:
    path = tmp_path / "kb.csv"
    path.write_text(
        "id,topic,department,question,also,answer\n"
        "a-1,供水,水务集团,停水了怎么办,没水了|为什么停水,请告诉我们地址。\n",
        encoding="utf-8",
    )
    kb = load_kb(path)
    assert kb.get("a-1") is not None and kb.get("a-1").also == ("没水了", "为什么停水")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- {id: x, topic: t, department: d, question: q}\n",
            "(id 'x'): field 'answer' is missing",
        ),
        (
            "- {id: x, topic: t, department: d, question: q, answer: a, foo: 1}\n",
            "unknown field 'foo'",
        ),
        (
            "- {id: 'bad id', topic: t, department: d, question: q, answer: a}\n",
            "field 'id' must be",
        ),
        ("- {id: x, topic: t, department: d, question: q, answer: a, also: [1]}\n", "field 'also'"),
        (
            "- {id: x, topic: t, department: d, question: q, answer: a}\n"
            "- {id: x, topic: t, department: d, question: q2, answer: a}\n",
            "entry 2 (id 'x'): field 'id' duplicates entry 1",
        ),
        ("a: [1\n", "not valid YAML"),
        ("[]\n", "no entries"),
    ],
)
def test_yaml_errors_name_entry_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "kb.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match=None) as info:
        load_kb(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_csv_missing_column_and_row_number(tmp_path: Path) -> None:
    path = tmp_path / "kb.csv"
    path.write_text("id,topic,question,answer\nx,t,q,a\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match="lacks column"):
        load_kb(path)
    path.write_text("id,topic,department,question,also,answer\nx,t,d,q,,\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match=r"row 2 \(id 'x'\): field 'answer'"):
        load_kb(path)
