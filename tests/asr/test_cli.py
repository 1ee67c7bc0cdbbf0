"""The asr commands as a user runs them: real files in, text or JSON out, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from hotline.cli import main

pytestmark = pytest.mark.slow


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hotline.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_transcribe_prints_the_text_of_each_file(shared_dir, capsys):
    clip = shared_dir / "audio" / "calls-dev" / "004.wav"
    assert main(["asr", "transcribe", "--engine", "whisper", "--telephone", "alaw", str(clip)]) == 0
    out = capsys.readouterr().out
    name, text = out.strip().split("\t")
    assert name == str(clip) and "社保卡" in text


def test_truncated_wav_is_one_clear_line_not_a_traceback(tmp_path, shared_dir):
    broken = tmp_path / "broken.wav"
    broken.write_bytes((shared_dir / "audio" / "calls-dev" / "001.wav").read_bytes()[:3000])
    result = run("asr", "transcribe", "--engine", "whisper", str(broken))
    assert result.returncode == 2
    assert "truncated" in result.stderr and "Traceback" not in result.stderr


def test_bench_prints_the_figures_as_json(tmp_path, shared_dir, capsys):
    source = shared_dir / "audio" / "calls-dev"
    lines = (source / "transcripts.tsv").read_text(encoding="utf-8").splitlines()[:3]
    for line in lines[1:]:
        shutil.copy(source / line.split("\t")[0], tmp_path)
    (tmp_path / "transcripts.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = main(
        [
            "asr",
            "bench",
            str(tmp_path),
            "--engine",
            "whisper",
            "--runs",
            "1",
            "--stream-seconds",
            "3",
            "--json",
        ]
    )
    assert code == 0
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "engine",
        "clips",
        "cer_16k",
        "cer_8k_alaw",
        "cer_8k_ulaw",
        "rtf",
        "final_latency_ms_p50",
        "final_latency_ms_p95",
        "streams_realtime",
        "rss_mb_model",
        "rss_mb_per_stream",
    ):
        assert key in figures, key
    assert figures["engine"] == "whisper" and figures["clips"] == 2
    assert 0 <= figures["cer_8k_alaw"] < 0.5 and figures["rtf"] > 0


def test_bench_needs_a_transcripts_file(tmp_path):
    result = run("asr", "bench", str(tmp_path), "--engine", "whisper")
    assert result.returncode == 2 and "transcripts.tsv" in result.stderr
