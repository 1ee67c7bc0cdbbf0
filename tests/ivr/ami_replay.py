"""Asterisk 20 AMI events for the replayed AMI server (the server is ops.ami_replay)."""

from __future__ import annotations

from ops.ami_replay import ReplayAsterisk

QUEUE_MEMBER_STATUS = """Event: QueueMemberStatus
Privilege: agent,all
Queue: hotline-general
MemberName: seat-101
Interface: PJSIP/seat-101
StateInterface: PJSIP/seat-101
Membership: static
Penalty: 0
CallsTaken: 0
LastCall: 0
LastPause: 0
LoginTime: 1700000000
InCall: 0
Status: {status}
Paused: {paused}
PausedReason:
Ringinuse: 0
Wrapuptime: 0

"""
AGENT_CONNECT = """Event: AgentConnect
Privilege: agent,all
Channel: PJSIP/trunk-00000007
ChannelState: 6
ChannelStateDesc: Up
CallerIDNum: 13800138000
CallerIDName: <unknown>
ConnectedLineNum: <unknown>
ConnectedLineName: <unknown>
Language: zh
AccountCode:
Context: hotline-queues
Exten: hotline-general
Priority: 4
Uniqueid: 1700000200.14
Linkedid: 1700000200.14
ChanVariable: HOTLINE_TICKET=2024000042
DestChannel: PJSIP/seat-101-00000009
DestChannelState: 6
DestChannelStateDesc: Up
DestCallerIDNum: 101
DestCallerIDName: seat-101
DestConnectedLineNum: 13800138000
DestConnectedLineName: <unknown>
DestLanguage: zh
DestAccountCode:
DestContext: seats
DestExten: hotline-general
DestPriority: 1
DestUniqueid: 1700000210.16
DestLinkedid: 1700000200.14
Queue: hotline-general
Interface: PJSIP/seat-101
MemberName: seat-101
HoldTime: 3
RingTime: 2

"""


__all__ = ["AGENT_CONNECT", "QUEUE_MEMBER_STATUS", "ReplayAsterisk"]
