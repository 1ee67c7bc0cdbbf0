"""`hotline demo` on this machine: three calls through sipp, the real bot and recogniser."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ops.demo import SCENES, pick_clips

REPO = Path(__file__).resolve().parents[2]
# The demo's callers speak these recordings; without them it falls back to espeak-ng's
# robotic Mandarin, which the recognisers do not understand, so the calls cannot pass.
RECORDED_CALLERS = REPO.parent / "shared" / "audio" / "calls-dev" / "transcripts.tsv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_places_three_calls_and_files_the_complaint(tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp not installed (apt-get install sip-tester)")
    if not RECORDED_CALLERS.is_file():
        pytest.skip("../shared/audio/calls-dev (recorded callers) is not beside the "
                    "repository; espeak-ng's Mandarin is not recognised")  # fmt: skip
    env = {**os.environ, "HOTLINE_CONFIG": str(tmp_path / "none.yaml")}
    (tmp_path / "none.yaml").write_text("{}\n")
    done = subprocess.run(
        [sys.executable, "-m", "hotline.cli", "demo", "--no-wait", "--json",
         "--data-dir", str(tmp_path / "demo"), "--port", str(_free_port())],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=400)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    consultation, complaint, night = result["calls"]
    assert all(call["ok"] for call in result["calls"])
    assert complaint["ticket"] and complaint["outcome"] == "ticket"
    # Each caller's words were recognised and the bot answered them.
    for call in result["calls"]:
        speakers = [line["speaker"] for line in call["transcript"]]
        assert "caller" in speakers and speakers.count("bot") >= 2
    assert any("公积金" in line["text"] for line in consultation["transcript"]
               if line["speaker"] == "bot")  # fmt: skip
    assert any("夜间" in line["text"] for line in night["transcript"])
    # At night the caller tells the matter after the bot's night reply: a callback ticket.
    assert night["outcome"] == "ticket" and night["ticket"] and night["callback"]
    assert [line["speaker"] for line in night["transcript"]].count("caller") >= 2
    assert "login demo-operator / hotline-demo" in done.stdout
    assert result["console"].startswith("http://127.0.0.1:")
    # Phone numbers never reach the printed transcript headers in full.
    assert "13908980001" not in done.stdout


def test_without_recordings_the_demo_says_its_callers_are_synthetic(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (scripts/setup installs it)")
    told = io.StringIO()
    clips, source = pick_clips(tmp_path / "no-recordings", tmp_path, told)
    assert len(clips) == len(SCENES) and "espeak-ng" in source
    assert "no recorded callers" in told.getvalue() and "--audio" in told.getvalue()
    recorded = REPO.parent / "shared" / "audio" / "calls-dev"
    if RECORDED_CALLERS.is_file():  # with the recordings it says nothing
        told = io.StringIO()
        pick_clips(recorded, tmp_path, told)
        assert told.getvalue() == ""
