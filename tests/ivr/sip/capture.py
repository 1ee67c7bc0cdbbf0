"""Record the SIP datagrams the real Asterisk 20 sends to the controller (run by hand).

    PYTHONPATH=. python tests/ivr/sip/capture.py            # rewrites tests/ivr/sip/*.sip

Starts ``../shared/asterisk`` with ``telephony_config/`` (tests.asterisk.local: loopback,
free ports, the stand-in carrier on 127.0.0.2), runs the controller's own ``SipEndpoint``
as ``hotline-bot`` on 127.0.0.1:5070 with a tap on its socket, and places calls to 12345
from the carrier with sipp. Every datagram Asterisk sends the bot is written, byte for
byte, to ``asterisk-<what>.sip``; ``capture.json`` keeps the addresses the fast tests
(test_sip_fixtures.py) replay them from. The bot's randomness that Asterisk echoes back
(REGISTER branch, tag, instance id) is pinned to the values the tests pin.

Two Asterisk runs: the shipped configuration (REGISTER, qualify OPTIONS, INVITE, ACK,
BYE both ways, CANCEL), then one with ``dtmf_mode=info`` and ``timers=always`` with
90 s sessions on the bot's endpoint, so Asterisk relays the carrier's key as SIP INFO
and refreshes the session with a re-INVITE after 45 s (about a minute in all).
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotline.settings import SipSettings
from ivr.sip import IncomingCall, SipEndpoint, SipMessage
from tests.ivr.sip.pins import INSTANCE, REGISTER_BRANCHES, REGISTER_TAG

# The real Asterisk fixture (tests/asterisk/local.py, from branch issue15-b), imported by
# name so that this file lints the same before and after that branch is merged.
local: Any = importlib.import_module("tests.asterisk.local")
BOT_USER, BOT_PASSWORD, CARRIER_HOST = local.BOT_USER, local.BOT_PASSWORD, local.CARRIER_HOST
free_port = local.free_port
HERE = Path(__file__).resolve().parent
BOT_PORT = 5070
BOT_HANGS_UP = "13800000003"

_CALL = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="carrier {name}">
  <send retrans="500"><![CDATA[
INVITE sip:12345@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]>;tag=[pid]c[call_number]
To: <sip:12345@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{caller}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=carrier 1 1 IN IP4 [local_ip]
s=carrier
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
]]></send>
  <recv response="100" optional="true"/>
  <recv response="183" optional="true"/>
  {body}
</scenario>
"""

_ANSWERED = """<recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
  {middle}
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>"""

_INFO = """<pause milliseconds="500"/>
  <send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 2 INFO
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal=5
Duration=160
]]></send>
  <recv response="200"/>"""

_CANCELLED = """<recv response="180"/>
  <pause milliseconds="300"/>
  <send><![CDATA[
CANCEL sip:12345@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: <sip:{caller}@[local_ip]>;tag=[pid]c[call_number]
To: <sip:12345@[remote_ip]>
[last_Call-ID:]
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
  <recv response="487"/>
  <send><![CDATA[
ACK sip:12345@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: <sip:{caller}@[local_ip]>;tag=[pid]c[call_number]
[last_To:]
[last_Call-ID:]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>"""


def scenario(name: str, caller: str, middle: str = "", cancel: bool = False) -> str:
    body = _CANCELLED.format(caller=caller) if cancel else _ANSWERED.format(middle=middle)
    return _CALL.format(name=name, caller=caller, body=body)


class Tap(SipEndpoint):
    """The controller's endpoint, keeping every datagram it receives and sends."""

    def __init__(self, settings: SipSettings) -> None:
        super().__init__(settings, self.answered)
        self.log: list[tuple[str, bytes]] = []
        self.calls_seen: list[IncomingCall] = []
        registrar = self._registrar
        registrar.tagLibrary["register"] = REGISTER_TAG
        registrar.urnUUID = INSTANCE
        branches = itertools.cycle(REGISTER_BRANCHES)
        registrar.gen_branch = lambda length=32: next(branches)  # type: ignore[method-assign]

    def answered(self, call: IncomingCall) -> None:
        self.calls_seen.append(call)
        if call.caller == BOT_HANGS_UP:
            asyncio.get_running_loop().call_later(1.0, call.hangup)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.log.append(("in", data))
        super().datagram_received(data, addr)

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.log.append(("out", data))
        super()._send(data, addr)


def _with_body(request: bytes, body: bytes) -> bytes:
    """``request`` with another body, its Content-Length (Asterisk's padding kept) fixed."""
    head = request.split(b"\r\n\r\n", 1)[0]
    head = re.sub(rb"(?m)^Content-Length: *\d+", b"Content-Length:   %d" % len(body), head)
    return head + b"\r\n\r\n" + body


def derive() -> dict[str, str]:
    """Requests Asterisk is not configured to send, edited from the captured ones: offers
    the bot must refuse with 488, a method it does not implement, and malformed datagrams
    (refused before or by the parser, counted, never answered)."""
    invite = (HERE / "asterisk-invite.sip").read_bytes()
    options = (HERE / "asterisk-options.sip").read_bytes()
    sdp = invite.split(b"\r\n\r\n", 1)[1]
    reinvite = (HERE / "asterisk-b-reinvite.sip").read_bytes()
    reinvite_sdp = reinvite.split(b"\r\n\r\n", 1)[1]
    head = invite.split(b"\r\n\r\n", 1)[0]
    variants = {
        # G.729 only (a trunk that forgot alaw/ulaw): nothing the bot speaks.
        "derived-invite-g729": _with_body(
            invite,
            re.sub(
                rb"m=audio (\d+) RTP/AVP [^\r]*",
                rb"m=audio \1 RTP/AVP 18",
                re.sub(rb"a=(rtpmap|fmtp):(0|8|101) [^\r]*\r\n", b"", sdp),
            ),
        ),
        "derived-invite-port0": _with_body(invite, re.sub(rb"m=audio \d+", b"m=audio 0", sdp)),
        "derived-invite-multicast": _with_body(
            invite, sdp.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 224.0.0.1")
        ),
        "derived-invite-bad-sdp": _with_body(
            invite, re.sub(rb"m=audio \d+", b"m=audio sixteen", sdp)
        ),
        # Asterisk's session refresh, its offer turned to mu-law only: the call is A-law.
        "derived-reinvite-pcmu": _with_body(
            reinvite,
            re.sub(
                rb"m=audio (\d+) RTP/AVP [^\r]*",
                rb"m=audio \1 RTP/AVP 0",
                reinvite_sdp.replace(b"a=rtpmap:8 PCMA/8000", b"a=rtpmap:0 PCMU/8000"),
            ),
        ),
        "derived-message": options.replace(b"OPTIONS", b"MESSAGE"),
        "malformed-not-sip": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "malformed-sip-3": invite.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1),
        "malformed-no-crlf-start": invite.split(b"\r\n", 1)[0],
        "malformed-oversized": head
        + b"\r\nX-Pad: "
        + b"a" * 2000
        + b"\r\n"
        + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"b" * 1000) for i in range(7))
        + b"\r\n"
        + sdp,
        "malformed-too-many-headers": head + b"\r\n" + b"X-Junk: 1\r\n" * 120 + b"\r\n" + sdp,
        "malformed-long-header": head.replace(
            b"Max-Forwards: 70", b"X-Long: " + b"z" * 2100 + b"\r\nMax-Forwards: 70"
        )
        + b"\r\n\r\n"
        + sdp,
        "malformed-binary": b"\x80\x08\x00\x01" + bytes(range(256)) * 2,
        "malformed-bad-cseq": re.sub(rb"CSeq: \d+", b"CSeq: many", options),
        "malformed-no-call-id": re.sub(rb"Call-ID: [^\r]*\r\n", b"", options),
        # No Via to answer to: counted, never answered (a flood must not get replies).
        "malformed-empty-via": re.sub(rb"Via: [^\r]*", b"Via: ", options),
    }
    files = {}
    for name, data in variants.items():
        (HERE / f"{name}.sip").write_bytes(data)
        files[name] = f"{name}.sip"
    return files


def name_of(data: bytes) -> str:
    """``invite``, ``401-register``, ...: the method, or the status and the CSeq's method."""
    msg = SipMessage(data)
    cseq_method = msg.header("CSeq").split()[-1].lower()
    if data.startswith(b"SIP/2.0 "):
        return f"{int(msg.status)}-{cseq_method}"
    return cseq_method


async def place(asterisk: Any, work: Path, name: str, xml: str) -> None:
    path = work / f"{name}.xml"
    path.write_text(xml)
    cmd = ["sipp", f"{asterisk.host}:{asterisk.sip_port}", "-sf", str(path), "-m", "1",
           "-i", CARRIER_HOST, "-p", str(free_port(host=CARRIER_HOST)),
           "-mp", str(free_port(host=CARRIER_HOST)), "-nostdin", "-timeout", "90s",
           "-timeout_error", "-trace_err",
           "-error_file", str(work / f"{name}-errors.log")]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=work, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL)  # fmt: skip
    if await proc.wait() != 0:
        errors = (work / f"{name}-errors.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"carrier call {name} failed: {errors}")


async def session(asterisk: Any, work: Path, calls: list[tuple[str, str, int]],
                  want: set[str]) -> tuple[Tap, list[tuple[str, bytes]]]:  # fmt: skip
    settings = SipSettings.model_validate({
        "bind_host": "127.0.0.1", "bind_port": BOT_PORT, "registrar_host": asterisk.host,
        "registrar_port": asterisk.sip_port, "username": BOT_USER, "password": BOT_PASSWORD,
        "rtp_port_low": 21000, "rtp_port_high": 21100,
    })  # fmt: skip
    tap = Tap(settings)
    await tap.start()
    try:
        await asyncio.wait_for(tap.registered.wait(), 10)
        for name, xml, delay_ms in calls:
            tap.settings.answer_delay_ms = delay_ms
            await place(asterisk, work, name, xml)
            await asyncio.sleep(0.5)
        for _ in range(100):  # qualify comes every 5 s
            if want <= {name_of(d) for way, d in tap.log if way == "in"}:
                break
            await asyncio.sleep(0.1)
    finally:
        await tap.stop()
    return tap, tap.log


def with_bot_changes(extra: str) -> Callable[..., Path]:
    """``local.write_overrides`` that also adds ``extra`` lines to the bot's endpoint."""
    original = local.write_overrides

    def write(folder: Path, *args: Any, **kwargs: Any) -> Path:
        out = original(folder, *args, **kwargs)
        pjsip = folder / "pjsip.conf"
        text = re.sub(r"^rtp_timeout=4.*$", extra, pjsip.read_text(), count=1, flags=re.M)
        pjsip.write_text(text)
        return out

    return write


def save(log: list[tuple[str, bytes]], prefix: str, wanted: dict[str, str]) -> dict[str, str]:
    """The first datagram received of each wanted kind, as ``prefix-<file>.sip``."""
    saved: dict[str, str] = {}
    for way, data in log:
        if way != "in":
            continue
        kind = name_of(data)
        if kind in wanted and f"{prefix}-{wanted[kind]}" not in saved:
            file = f"{prefix}-{wanted[kind]}.sip"
            (HERE / file).write_bytes(data)
            saved[file.removesuffix(".sip")] = file
    return saved


async def main() -> int:
    if local.where_unavailable():
        print(local.where_unavailable(), file=sys.stderr)
        return 2
    meta: dict[str, object] = {"bot": ["127.0.0.1", BOT_PORT]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        asterisk = local.start_local(work / "a")
        try:
            calls = [
                ("hangup", scenario("hangup", "13800000001"), 0),
                ("cancel", scenario("cancel", "13800000002", cancel=True), 2000),
                ("bot-hangup", scenario("bot-hangup", "13800000003",
                                        middle='<pause milliseconds="2500"/>'), 0),
            ]  # fmt: skip
            want = {"401-register", "200-register", "options", "invite", "ack", "bye",
                    "cancel", "200-bye"}  # fmt: skip
            _, log = await session(asterisk, work, calls, want)
        finally:
            asterisk.stop()
        meta["asterisk"] = [asterisk.host, asterisk.sip_port]
        # The REGISTER exchange is kept whole: the tests rebuild the bot's two requests.
        saved = save(log, "asterisk", {
            "401-register": "401-register", "200-register": "200-register",
            "options": "options", "invite": "invite", "ack": "ack", "bye": "bye",
            "cancel": "cancel", "200-bye": "200-bye",
        })  # fmt: skip
        sent = [d for way, d in log if way == "out" and d.startswith(b"REGISTER ")]
        (HERE / "bot-register.sip").write_bytes(sent[0])
        (HERE / "bot-register-auth.sip").write_bytes(sent[1])
        # The ACK after the CANCEL's 487 (the second ACK Asterisk sent: first is the 200's).
        acks = [d for way, d in log if way == "in" and d.startswith(b"ACK ")]
        cancelled = next(d for way, d in log if way == "in" and d.startswith(b"CANCEL "))
        cancel_id = SipMessage(cancelled).header("Call-ID")
        ack_487 = next(a for a in acks if SipMessage(a).header("Call-ID") == cancel_id)
        (HERE / "asterisk-ack-487.sip").write_bytes(ack_487)
        saved["asterisk-ack-487"] = "asterisk-ack-487.sip"
        # The call the carrier cancelled: its INVITE (Asterisk's offer as it rang the bot).
        invites = [d for way, d in log if way == "in" and d.startswith(b"INVITE ")]
        ringing = next(i for i in invites if SipMessage(i).header("Call-ID") == cancel_id)
        (HERE / "asterisk-invite-cancelled.sip").write_bytes(ringing)
        saved["asterisk-invite-cancelled"] = "asterisk-invite-cancelled.sip"

        local.write_overrides = with_bot_changes(
            "rtp_timeout=0\ndtmf_mode=info\ntimers=always\ntimers_sess_expires=90\ntimers_min_se=90"
        )
        asterisk = local.start_local(work / "b")
        try:
            info_call = scenario("info", "13800000004",
                                 middle=_INFO + '\n  <pause milliseconds="50000"/>')  # fmt: skip
            _, log_b = await session(asterisk, work, [("info", info_call, 0)],
                                     {"info", "invite"})  # fmt: skip
        finally:
            asterisk.stop()
        meta["asterisk_b"] = [asterisk.host, asterisk.sip_port]
        invites_b = [d for way, d in log_b if way == "in" and d.startswith(b"INVITE ")]
        if len(invites_b) > 1:
            (HERE / "asterisk-b-invite.sip").write_bytes(invites_b[0])
            (HERE / "asterisk-b-reinvite.sip").write_bytes(invites_b[1])
            saved["asterisk-b-invite"] = "asterisk-b-invite.sip"
            saved["asterisk-b-reinvite"] = "asterisk-b-reinvite.sip"
        saved.update(save(log_b, "asterisk-b", {"info": "info", "ack": "ack", "bye": "bye"}))
    saved.update(derive())
    meta["files"] = saved
    (HERE / "capture.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--derive"]:  # only rewrite the derived files from the captured ones
        print(json.dumps(derive(), indent=1))
        sys.exit(0)
    sys.exit(asyncio.run(main()))
