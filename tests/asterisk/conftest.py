"""The real Asterisk for this folder: one per test module (start-up takes ~1 s, but the
controllers registered to it are what take time, so a module shares both)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.asterisk.local import Asterisk, start_local, users_own, where_unavailable


@pytest.fixture(scope="module")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Asterisk]:
    why = where_unavailable()
    if why:
        pytest.skip(why)
    if not (found := _users_own_or_none()):
        # A short folder: Asterisk's control socket path must stay under 108 bytes.
        found = start_local(tmp_path_factory.mktemp("ast"))
    try:
        yield found
    finally:
        found.stop()


def _users_own_or_none() -> Asterisk | None:
    import os

    if os.environ.get("HOTLINE_AMI_URL") and os.environ.get("HOTLINE_ASTERISK_SIP"):
        return users_own()
    return None
