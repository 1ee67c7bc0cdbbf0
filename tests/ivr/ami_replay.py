"""The replayed AMI server (testkit.ami_replay) with Asterisk 20's recorded replies, and
events from the same recording, made by a real Asterisk 20.20.1 in tests/asterisk
(testkit/data/asterisk20-session.txt)."""

from __future__ import annotations

import re

from testkit.ami_replay import ASTERISK20_SESSION, ReplayAsterisk, load_replies

_RECORDED = load_replies(ASTERISK20_SESSION)


def replayed_asterisk(password: str = "s3cret") -> ReplayAsterisk:
    """A stand-in Asterisk answering as the recorded Asterisk 20 did (not started yet)."""
    return ReplayAsterisk(ASTERISK20_SESSION, password=password)


# A seat's state changed: format(status=..., paused=...) (Asterisk device states, 0/1).
QUEUE_MEMBER_STATUS = re.sub(
    r"^Paused: \d+$", "Paused: {paused}",
    re.sub(r"^Status: \d+$", "Status: {status}", _RECORDED["event queuememberstatus"],
           flags=re.MULTILINE),
    flags=re.MULTILINE,
)  # fmt: skip
# seat-101 answered a caller of hotline-general carrying ticket 2024000042.
AGENT_CONNECT = _RECORDED["event agentconnect"]
# The caller's channel in AGENT_CONNECT.
AGENT_CONNECT_CHANNEL = re.findall(r"^Channel: (\S+)$", AGENT_CONNECT, re.MULTILINE)[0]


__all__ = ["AGENT_CONNECT", "AGENT_CONNECT_CHANNEL", "QUEUE_MEMBER_STATUS", "replayed_asterisk"]
