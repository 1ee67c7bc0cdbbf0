"""``hotline --help`` tells a newcomer where to start, and every place it names exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_help_names_the_demo_the_config_file_and_the_docs() -> None:
    done = subprocess.run([sys.executable, "-m", "hotline.cli", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    start = done.stdout.split("where to start:", 1)[1]
    for command in ("hotline demo", "hotline run", "hotline console"):
        assert command in start
    assert "no registration, no AMI" in start  # what a run on defaults does
    example = re.search(r"config/\S+\.yaml", start)
    assert example and (REPO / example.group(0)).is_file()
    topics = re.search(r"docs/ \(([^)]*)\)", start)
    assert topics is not None
    for topic in topics.group(1).split(", "):
        assert (REPO / "docs" / f"{topic}.md").is_file(), topic
