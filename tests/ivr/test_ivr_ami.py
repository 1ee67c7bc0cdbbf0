"""The AMI client against replayed Asterisk 20 AMI sessions (a local TCP server speaking the
recorded wire format), and against a live Asterisk when HOTLINE_AMI_URL is set."""

from __future__ import annotations

import asyncio
import os

import pytest

from hotline.settings import AmiSettings
from ivr.ami import AmiClient, AmiError, parse_url
from tests.ivr.ami_replay import AGENT_CONNECT, QUEUE_MEMBER_STATUS, replayed_asterisk

QUEUES = AmiSettings().queues  # skill -> queues.conf name, as `hotline run` passes them


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_transfer_screen_pop_and_night_mode() -> None:
    async def body() -> None:
        ast = replayed_asterisk()
        port = await ast.start()
        client = AmiClient(
            f"ami://hotline:s3cret@127.0.0.1:{port}", ping_interval_s=0.5, queues=QUEUES
        )
        pops: list[tuple[str, str, str]] = []
        client.on_screen_pop = lambda *a: pops.append(a)
        try:
            assert await client.start()
            assert client.seats_available("general")  # seat-101 logged in (Status 1)
            assert await client.transfer("PJSIP/trunk-00000007", "general", "2024000042")
            sent = [a for a in ast.actions if a["Action"] in ("Setvar", "Redirect")]
            assert sent[0] == {**sent[0], "Channel": "PJSIP/trunk-00000007",
                               "Variable": "HOTLINE_TICKET", "Value": "2024000042"}  # fmt: skip
            assert sent[1]["Context"] == "hotline-queues" and sent[1]["Exten"] == "hotline-general"
            ast.push(AGENT_CONNECT)
            for _ in range(50):
                if pops:
                    break
                await asyncio.sleep(0.02)
            assert pops == [("2024000042", "PJSIP/seat-101", "hotline-general")]
            # The seat logs off (device unavailable): night mode.
            ast.push(QUEUE_MEMBER_STATUS.format(status=5, paused=0))
            await asyncio.sleep(0.2)
            assert not client.seats_available("general")
            ast.push(QUEUE_MEMBER_STATUS.format(status=1, paused=1))
            await asyncio.sleep(0.2)
            assert not client.seats_available("general")  # paused is not present either
            action_id = await client.originate("PJSIP/seat-101", "13800138000", "2024000042")
            originate = [a for a in ast.actions if a["Action"] == "Originate"][-1]
            assert originate["ActionID"] == action_id
            assert originate["Variable"] == "HOTLINE_TICKET=2024000042"
            assert originate["Context"] == "hotline-callback"
        finally:
            await client.stop()
            await ast.stop()

    run(body())


def test_reconnects_and_resyncs_state() -> None:
    async def body() -> None:
        ast = replayed_asterisk()
        port = await ast.start()
        client = AmiClient(
            f"ami://hotline:s3cret@127.0.0.1:{port}", ping_interval_s=0.3, queues=QUEUES
        )
        try:
            assert await client.start()
            ast.push(QUEUE_MEMBER_STATUS.format(status=5, paused=0))
            await asyncio.sleep(0.2)
            assert not client.seats_available("general")
            ast.drop()  # Asterisk restarts
            for _ in range(100):
                if client.logins >= 2 and client.connected:
                    break
                await asyncio.sleep(0.05)
            assert client.logins == 2
            # QueueStatus after the new login restored seat-101 as present.
            assert client.seats_available("general")
            assert [a["Action"] for a in ast.actions].count("QueueStatus") == 2
        finally:
            await client.stop()
            await ast.stop()

    run(body())


def test_half_open_connection_detected_by_ping() -> None:
    async def body() -> None:
        ast = replayed_asterisk()
        port = await ast.start()
        client = AmiClient(
            f"ami://hotline:s3cret@127.0.0.1:{port}", ping_interval_s=0.2, queues=QUEUES
        )
        try:
            assert await client.start()
            ast.silent_ping = True
            for _ in range(200):
                if not client.connected:
                    break
                await asyncio.sleep(0.05)
            assert not client.connected
        finally:
            await client.stop()
            await ast.stop()

    run(body())


def test_wrong_secret_and_bad_url() -> None:
    async def body() -> None:
        ast = replayed_asterisk()
        port = await ast.start()
        client = AmiClient(f"ami://hotline:wrong@127.0.0.1:{port}", queues=QUEUES)
        try:
            assert not await client.start(wait_s=1.0)
            assert not await client.transfer("PJSIP/x", "general", "1")
        finally:
            await client.stop()
            await ast.stop()

    run(body())
    with pytest.raises(AmiError):
        parse_url("http://asterisk")


@pytest.mark.asterisk
@pytest.mark.skipif(not os.environ.get("HOTLINE_AMI_URL"), reason="HOTLINE_AMI_URL not set")
def test_live_asterisk_login_and_queue_status() -> None:
    async def body() -> None:
        client = AmiClient(os.environ["HOTLINE_AMI_URL"], queues=QUEUES)
        try:
            assert await client.start(wait_s=10)
            assert "hotline-general" in client.queues
        finally:
            await client.stop()

    run(body())
