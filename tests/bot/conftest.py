from __future__ import annotations

import pytest

from bot.brain import Brain


@pytest.fixture(scope="session")
def brain() -> Brain:
    return Brain.load()
