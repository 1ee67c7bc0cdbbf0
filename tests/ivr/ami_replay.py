"""Asterisk 20 AMI events for the replayed AMI server (the server is ops.ami_replay), as
recorded from a real Asterisk 20.20.1 by tests/asterisk (ops/data/asterisk20-session.txt)."""

from __future__ import annotations

import re

from ops.ami_replay import ReplayAsterisk, load_replies

_RECORDED = load_replies()

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


__all__ = ["AGENT_CONNECT", "AGENT_CONNECT_CHANNEL", "QUEUE_MEMBER_STATUS", "ReplayAsterisk"]
