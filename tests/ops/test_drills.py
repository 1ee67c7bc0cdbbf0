"""Fault drills over real SIP: sipp callers, the real controller, bot and Whisper, a real
redis-server (AOF) and SQLite store; one speech engine loaded for all (ops/drills.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.settings import Settings
from ops.drills import DrillKit, dialplan_fallback, run_drill
from ops.flood import garbage_rtp

REPO = Path(__file__).resolve().parents[2]
AUDIO = REPO.parent / "shared" / "audio" / "calls-dev"
KB = REPO.parent / "shared" / "eval" / "kb.yaml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (sip-tester)"),
    pytest.mark.skipif(
        not (AUDIO / "transcripts.tsv").is_file(),
        reason="../shared/audio/calls-dev (recorded callers) not available",
    ),
]


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillKit]:
    work = tmp_path_factory.mktemp("drills")
    settings = Settings.model_validate({"data_dir": str(work / "var")})
    loaded = DrillKit.load(settings, work, AUDIO, KB if KB.is_file() else None)
    yield loaded
    loaded.close()


def drill(name: str, kit: DrillKit) -> dict[str, Any]:
    result = asyncio.run(asyncio.wait_for(run_drill(name, kit), 180))
    print(json.dumps(result, ensure_ascii=False))  # shown with -s / on failure
    return result


def assert_nothing_lost(result: dict[str, Any]) -> None:
    assert result["failed"] == 0, result
    assert result["lost"] == 0 and result["tickets_found"] == result["tickets_expected"], result
    assert not result["crashed"], result


def test_controller_killed_mid_call_leaves_a_ticket_and_a_dead_leg(kit: DrillKit) -> None:
    result = drill("controller-kill", kit)
    assert_nothing_lost(result)
    assert result["tickets_found"] == 1 and result["recovered_ticket"]
    # The partial transcript survived: what the caller said before the kill.
    assert result["caller_words_kept"] and any(w for w in result["caller_words_kept"])
    assert result["journal_left_active"] == 0  # claimed once, never filed twice
    leg = result["caller_leg"]
    assert leg["sipp_exit"] != 0 and not leg["bye_answered"]  # nobody answers the BYE
    assert "BYE" in leg["sipp_error"] or "timeout" in leg["sipp_error"]
    # Asterisk would queue the caller for a person (HOTLINE_DONE never set).
    assert result["dialplan_fallback"] == "Goto(hotline-queues,hotline-general,1)"


def assert_fault_targets(result: dict[str, Any]) -> None:
    """The targets every fault drill must meet: nothing lost or filed twice, each work
    order on the seat queue, OPTIONS answered through the fault, later calls two-way."""
    assert not result["crashed"], result
    assert result["lost"] == 0 and result["duplicated"] == 0, result
    assert result["filed"] == result["tickets_expected"] >= 1, result
    assert result["queued"] == result["filed"], result
    assert result["options_during_fault"]["answered_ratio"] >= 0.99, result
    assert result["calls_after"] >= 1 and result["two_way_after"] == result["calls_after"], result


def test_redis_restart_heals_the_seat_queue_by_itself(kit: DrillKit) -> None:
    result = drill("redis-restart", kit)
    assert_fault_targets(result)
    assert result["failed"] == 0 and result["tickets_expected"] == 3
    assert result["outage_s"] >= 9
    # A ticket made during the outage is in SQL; the controller put it back in the queue
    # when Redis returned (nobody ran reconcile).
    assert result["requeued_by_controller"] >= 1
    assert result["tickets_not_in_queue"] == []
    assert result["journal_failures"] >= 1
    # Calls that ended while Redis was away closed their journal once it was back.
    assert result["journal_left_active"] == 0


def test_sip_bomb_does_not_deafen_the_controller(kit: DrillKit) -> None:
    result = drill("sip-bomb", kit)
    assert_fault_targets(result)
    assert result["failed"] == 0
    assert result["bomb_datagrams_sent"] >= 100
    refused = result["refused"]
    assert refused["oversized"] >= 40 and refused["too-many-headers"] >= 10
    assert refused["header-too-long"] >= 20 and refused["not-sip"] >= 10
    # Answered while 60 KB datagrams arrive every 50 ms, in well under 50 ms.
    assert result["options_during_fault"]["p95_ms"] <= 50, result


def test_unacknowledged_invites_free_their_slots_and_invent_nothing(
    kit: DrillKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ivr.sip

    # Timer H is 64 x T1: 32 s in production (`hotline drill invite-noack` measures that,
    # docs/telephony.md); 6.4 s here, so the suite does not wait half a minute for it.
    monkeypatch.setattr(ivr.sip, "T1", 0.1)
    timer_h_s = 64 * ivr.sip.T1
    result = drill("invite-noack", kit)
    invites = result["invites"]
    assert invites["sent"] == 1000
    # Every INVITE got a final answer: a slot (200) or a refusal (503), nothing unanswered.
    assert sum(n for code, n in invites.items() if code != "sent") == 1000, invites
    assert invites.get("200", 0) >= 1, result  # slots were taken
    # Timer H after the first answers, counted from the burst's first INVITE.
    assert result["slots_free_after_s"] <= timer_h_s + 3, result
    assert result["active_journals_left"] == 0, result
    assert result["spurious_tickets"] == 0, result
    assert not result["crashed"], result
    assert result["two_way_after"] == result["calls_after"], result


def test_bad_sdp_gets_488_and_a_killed_media_process_is_replaced(kit: DrillKit) -> None:
    result = drill("sdp-bad", kit)
    assert not result["crashed"] and result["lost"] == 0 and result["duplicated"] == 0
    assert set(result["invites"].values()) == {488}, result["invites"]
    assert result["media_process_killed"] and result["media_restarts"] >= 1
    # The call that was live when the media process died ended as its words asked.
    live = result["live_call"]
    assert live["outcome"] == live["expected"] and result["failed"] == 0
    assert result["options_during_fault"]["answered_ratio"] >= 0.99
    assert result["two_way_after"] == result["calls_after"] == 2


def test_sql_down_spools_and_files_every_work_order_once(kit: DrillKit) -> None:
    result = drill("sql-down", kit)
    if "skipped" in result:
        if os.environ.get("CI"):
            pytest.fail(result["skipped"])
        pytest.skip(result["skipped"])
    assert_fault_targets(result)
    assert result["failed"] == 0 and result["tickets_expected"] == 3
    assert result["outage_s"] >= 29
    assert result["spooled_during_outage"] >= 1  # the fault really hit the filing
    assert result["spool_left"] == 0 and result["held_in_memory"] == 0


def test_full_data_disk_refuses_recordings_before_work_orders(kit: DrillKit) -> None:
    result = drill("disk-full-sql", kit)
    if "skipped" in result:
        pytest.skip(result["skipped"])
    assert_fault_targets(result)
    assert result["failed"] == 0 and result["tickets_expected"] == 2
    assert result["recordings_refused"] >= 1
    # Completely full: SQLite and the spool refused it, memory held it until space came.
    assert result["held_when_full"] == 1 and result["held_counted"] >= 1
    assert result["held_left"] == 0


def test_ami_drop_reconnects_and_resyncs_seats(kit: DrillKit) -> None:
    result = drill("ami-drop", kit)
    assert_nothing_lost(result)
    assert result["logins"] == 2 and result["queue_status_requests"] == 2
    # The seat logged off while AMI was down: only the resync can know it.
    assert result["seats_before"] and not result["seats_after_resync"]
    outage = result["outage_call"]
    assert outage["outcome"] == "transfer" and outage["ticket"]
    assert outage["hangup_by"] == "bot" and not outage["marked_done"]  # dialplan -> people


def test_sip_flood_and_garbage_rtp_leave_the_call_alone(kit: DrillKit) -> None:
    result = drill("sip-flood", kit)
    assert_nothing_lost(result)
    assert result["sip_garbage_sent"] == 10_000
    assert result["answered_during_flood"]
    assert result["malformed_counted"] >= 1000  # CRLF keep-alives and stray replies are not
    assert result["rtp_foreign_dropped"] >= 1000
    assert result["keys_heard"] == ""  # forged telephone-events pressed no key
    assert result["outcome"] == result["expected"]
    # Paced: the media clock kept ticking through the flood (20 ms ticks over its ~3 s)
    # and at most 5 % of them left more than 5 ms late (a shared 2-core machine).
    assert result["media_ticks_during_flood"] >= 120
    assert result["late_ticks_during_flood"] <= 0.05 * result["media_ticks_during_flood"]


def test_disk_full_for_recordings(kit: DrillKit) -> None:
    result = drill("disk-full", kit)
    if "skipped" in result:
        pytest.skip(result["skipped"])
    assert_nothing_lost(result)
    assert result["tickets_expected"] >= 1
    assert result["recording_failures"] >= 1
    assert "ENOSPC" in result["error_logged"] and "ticket are unaffected" in result["error_logged"]
    assert result["wavs_left"] == []
    assert result["call_records_saved"] == 2


def test_garbage_rtp_includes_forged_keys() -> None:
    """The flood carries what could do harm: valid RTP with audio and telephone-events."""
    import random

    from ivr.rtp import parse_rtp

    rng = random.Random(1)
    types = {p.payload_type for p in (parse_rtp(garbage_rtp(rng)) for _ in range(400)) if p}
    assert {0, 8, 101} <= types


def test_dialplan_fallback_is_read_from_the_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "extensions.conf"
    conf.write_text('same => n,GotoIf($["${HOTLINE_DONE}" = "1"]?done)\n'
                    " same => n,Goto(hotline-queues,people,1)\n")  # fmt: skip
    assert dialplan_fallback(conf) == "Goto(hotline-queues,people,1)"


def test_drill_command_rejects_unknown_drill() -> None:
    done = subprocess.run([sys.executable, "-m", "hotline.cli", "drill", "meteor"], cwd=REPO,
                          env={**os.environ}, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_drill_command_offers_every_drill() -> None:
    done = subprocess.run([sys.executable, "-m", "hotline.cli", "drill", "--help"], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    from ops.drills import DRILLS

    offered = done.stdout.split("positional arguments:")[1].split("{", 1)[1].split("}")[0]
    assert set(offered.split(",")) == {*DRILLS, "all"}
