"""``scripts/prove-readme`` runs the README's own two commands on a fresh Debian 12 (CI):
it must find them in README.md, as written there, and its quick test file must exist."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _readme_blocks() -> list[str]:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## The two commands", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [block.split("```", 1)[0].strip() for block in section.split("```sh\n")[1:]]


def test_it_runs_the_readmes_set_up_and_test_commands_word_for_word() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run([bash, "scripts/prove-readme", "--commands"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    setup, test = done.stdout.splitlines()
    setup_block, test_block = _readme_blocks()[:2]
    assert setup == setup_block == "scripts/setup"
    assert test.startswith(test_block + " ") and "pytest" in test_block
    quick_test = test.removeprefix(test_block).strip()
    assert (REPO / quick_test).is_file()
    assert "scripts/prove-readme" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
