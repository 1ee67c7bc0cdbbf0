from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# One prompt cache for the whole run (ivr.prompt_cache_dir), for every controller a test
# starts, in this process or as `hotline run`: with the local neural voice installed (CI
# installs it) each would otherwise render the bot's ~150 prompts again, ~20 s on 2 cores.
PROMPT_CACHE = Path(tempfile.mkdtemp(prefix="hotline-test-prompts-"))
os.environ.setdefault("HOTLINE_IVR__PROMPT_CACHE_DIR", str(PROMPT_CACHE))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(PROMPT_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared (the team's read-only data) is not beside the repository")
    return SHARED


CHROMIUM = os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium driven by Playwright; required in CI."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: apt-get install chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: HOTLINE_SCREENSHOTS=docs regenerates the ones in docs/."""
    target = os.environ.get("HOTLINE_SCREENSHOTS")
    return (REPO / target) if target else tmp_path
