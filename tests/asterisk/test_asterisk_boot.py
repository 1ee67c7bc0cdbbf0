"""telephony_config/ as shipped loads into a real Asterisk 20 and answers AMI."""

from __future__ import annotations

import asyncio

import pytest

from ivr.ami import AmiClient
from tests.asterisk.local import Asterisk

pytestmark = pytest.mark.asterisk


def test_shipped_config_loads_every_object(asterisk: Asterisk) -> None:
    if not asterisk.local:
        pytest.skip("reads the CLI of the Asterisk started here")
    endpoints = asterisk.cli("pjsip show endpoints")
    for name in ("hotline-bot", "seat-101", "seat-102", "trunk"):
        assert f"Endpoint:  {name} " in endpoints, endpoints
    queues = asterisk.cli("queue show")
    for name in ("hotline-general", "hotline-social-insurance", "hotline-real-estate",
                 "hotline-business-environment"):  # fmt: skip
        assert name in queues, queues
    assert "hotline-incoming" in asterisk.cli("dialplan show 12345@hotline-incoming")


def test_ami_login_reads_the_queues(asterisk: Asterisk) -> None:
    async def login() -> AmiClient:
        client = AmiClient(asterisk.ami_url, ping_interval_s=1.0)
        try:
            assert await client.start(wait_s=10), "AMI login refused"
            return client
        finally:
            await client.stop()

    client = asyncio.run(login())
    assert client.logins == 1
    assert "hotline-general" in client.queues
    seats = client.queues["hotline-general"].seats
    assert set(seats) == {"PJSIP/seat-101", "PJSIP/seat-102"}
    if asterisk.local:  # fresh: no seat phone registered yet, so night mode (no one present)
        assert not client.seats_available("general")
