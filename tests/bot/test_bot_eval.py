from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.bench import decision_latency, synthetic_kb
from bot.brain import Brain
from bot.evaluate import EvalError, evaluate, load_cases
from hotline.cli import main

HERE = Path(__file__).parent


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_command_on_dev_set(shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb, cases = shared_dir / "eval" / "kb.yaml", shared_dir / "eval" / "utterances-dev.tsv"
    result = _run(capsys, "bot", "eval", "--kb", str(kb), "--cases", str(cases), "--json")
    assert {"cases", "accuracy", "kb_top1", "false_answers", "per_label"} <= set(result)
    assert result["cases"] == 45
    assert result["accuracy"] >= 0.9  # type: ignore[operator]
    assert result["false_answers"] <= 1  # type: ignore[operator]
    per_label = result["per_label"]
    assert isinstance(per_label, dict)
    for label in ("complaint", "help", "report", "human", "emergency", "unknown", "abusive"):
        assert per_label[label] == 1.0, label
    noisy = _run(capsys, "bot", "eval", "--kb", str(kb), "--cases", str(cases), "--json",
                 "--noise", "homophone")  # fmt: skip
    assert noisy["accuracy"] >= 0.85 and noisy["noise"] == "homophone@0.1"  # type: ignore[operator]


def test_eval_on_held_out_set_for_the_sample_kb(brain: Brain) -> None:
    result = evaluate(brain, load_cases(HERE / "data" / "utterances-qingchuan.tsv", brain))
    assert result["cases"] == 70
    assert result["accuracy"] >= 0.93
    assert result["false_answers"] <= 1
    noisy = evaluate(
        brain, load_cases(HERE / "data" / "utterances-qingchuan.tsv", brain), "homophone"
    )
    assert noisy["accuracy"] >= 0.88


def test_cases_file_errors(
    tmp_path: Path, brain: Brain, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cases.tsv"
    path.write_text("没有制表符的行\n", encoding="utf-8")
    with pytest.raises(EvalError, match="line 1: expected 'text<TAB>expected'"):
        load_cases(path)
    path.write_text("问题\tkb:no-such-entry\n", encoding="utf-8")
    with pytest.raises(EvalError, match="not in the knowledge base"):
        load_cases(path, brain)
    path.write_text("问题\tgossip\n", encoding="utf-8")
    assert main(["bot", "eval", "--cases", str(path)]) == 2
    assert "unknown expected label 'gossip'" in capsys.readouterr().err
    assert main(["bot", "eval", "--kb", str(tmp_path / "none.yaml"), "--cases", str(path)]) == 2
    assert "file not found" in capsys.readouterr().err


def test_calibrate_command(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(
        capsys, "bot", "calibrate", "--cases", str(HERE / "data" / "calibration-qingchuan.tsv")
    )
    weights = out["weights"]
    assert isinstance(weights, dict) and weights["query_coverage"] > 0 and weights["margin"] > 0


def test_bench_helpers_scale(brain: Brain) -> None:
    big = synthetic_kb(brain.kb, 300)
    assert len(big) == 300 and big.get("si-card-lost") is not None
    result = decision_latency(brain, ["社保卡丢了", "转人工"], rounds=1)
    assert result["decisions"] == 2 and result["median_ms"] > 0


def test_chat_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lines = iter(["我要投诉阳光花园旁边的工地半夜施工吵得睡不着", "希望晚上停工", "匿名", "对"])
    monkeypatch.setattr("builtins.input", lambda _prompt="": next(lines))
    assert main(["bot", "chat", "--night"]) == 0
    out = capsys.readouterr().out
    assert (
        "夜间智能服务" in out
        and "我复述一下" in out
        and "[生成工单: complaint 噪声扰民，早班回电]" in out
    )
