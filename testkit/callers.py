"""sipp callers (a real SIP peer standing in for Asterisk) for tests and ``hotline bench calls``.

Scenarios are built from steps so each test says what the caller does: speak a clip
(raw G.711 streamed by sipp's rtp_stream), press keys (sipp's RFC 2833 pcaps), wait,
hang up or CANCEL.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hotline.audio import alaw_encode, read_wav, ulaw_encode

DTMF_PCAPS = Path("/usr/share/sip-tester")
CODECS = {"PCMA": 8, "PCMU": 0}

_HEAD = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="hotline caller">
"""
_INVITE = """  <send retrans="500"><![CDATA[
INVITE sip:12345@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:12345@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:asterisk@[local_ip]:[local_port]>
Max-Forwards: 70
X-Hotline-Channel: PJSIP/trunk-0000[call_number]
Content-Type: application/sdp
Content-Length: [len]

v=0
o=asterisk 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=Asterisk
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio {media_port} RTP/AVP {pt} 101
a=rtpmap:{pt} {codec}/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
]]></send>
"""
_ANSWERED = """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:hotline@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:12345@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
"""
_BYE = """  <send retrans="500"><![CDATA[
BYE sip:hotline@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:12345@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200" crlf="true"/>
"""
_OK_TO_LAST_REQUEST = """SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
"""
_CANCEL = """  <recv response="100" optional="true"/>
  <recv response="180"/>
  <pause milliseconds="{ms}"/>
  <send><![CDATA[
CANCEL sip:12345@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-1]
From: "caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:12345@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
  <recv response="487"/>
  <send><![CDATA[
ACK sip:12345@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-2]
From: "caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:12345@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
"""
_OPTIONS = """  <send><![CDATA[
OPTIONS sip:hotline@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:asterisk@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:hotline@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
"""


def bye_answered(timeout_ms: int, *, on_timeout: str = "", then: str = "") -> str:
    """sipp steps: wait up to ``timeout_ms`` for the other side's BYE and answer it 200 OK.

    ``on_timeout``: the label to go to when no BYE comes (else sipp fails the call);
    ``then``: the label to go to after the 200 OK. The callers here and the phones around
    the real Asterisk (tests/asterisk/peers.py) take their BYE this one way.
    """
    jump = f' ontimeout="{on_timeout}"' if on_timeout else ""
    after = f' next="{then}"' if then else ""
    return (
        f'  <recv request="BYE" timeout="{timeout_ms}"{jump}/>\n'
        f"  <send{after}><![CDATA[\n{_OK_TO_LAST_REQUEST}]]></send>\n"
    )


def raw_g711(wav: Path, out_dir: Path, codec: str = "PCMA", line_s: float = 0.0) -> Path:
    """A WAV clip as a headerless G.711 file, what sipp's rtp_stream plays.

    ``line_s`` of silence follow the clip: a trunk keeps sending RTP after the caller
    stops talking, while sipp's stream ends with the file.
    """
    pcm, _ = read_wav(wav, target_rate=8000)
    pcm += b"\x00\x00" * int(8000 * line_s)
    out = out_dir / f"{wav.stem}.{codec.lower()}"
    out.write_bytes(alaw_encode(pcm) if codec == "PCMA" else ulaw_encode(pcm))
    return out


@dataclass
class Caller:
    """A call as sipp will place it; add steps, then ``scenario()``."""

    media_port: int
    codec: str = "PCMA"
    caller: str = "13800138000"
    steps: list[str] = field(default_factory=list)

    def _fmt(self, text: str, **kw: object) -> str:
        return text.format(caller=self.caller, pt=CODECS[self.codec], codec=self.codec,
                           media_port=self.media_port, **kw)  # fmt: skip

    def speak(self, raw_file: Path) -> Caller:
        pt = CODECS[self.codec]
        stream = f"{raw_file},1,{pt},{self.codec}/8000"
        self.steps.append(f'  <nop><action><exec rtp_stream="{stream}"/></action></nop>\n')
        return self

    def key(self, digit: str) -> Caller:
        name = {"*": "star", "#": "pound"}.get(digit, digit)
        pcap = DTMF_PCAPS / f"dtmf_2833_{name}.pcap"
        self.steps.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n')
        return self

    def wait(self, ms: int) -> Caller:
        self.steps.append(f'  <pause milliseconds="{ms}"/>\n')
        return self

    def hang_up(self) -> Caller:
        self.steps.append(self._fmt(_BYE))
        return self

    def expect_bye(self, timeout_ms: int = 30000) -> Caller:
        self.steps.append(bye_answered(timeout_ms))
        return self

    def hang_up_unless_bye(self, after_ms: int) -> Caller:
        """Wait up to ``after_ms`` for the bot's BYE (transfer, goodbye); else hang up."""
        self.steps.append(
            bye_answered(after_ms, on_timeout="caller_bye", then="done")
            + '  <label id="caller_bye"/>\n'
            + self._fmt(_BYE)
            + '  <label id="done"/>\n'
        )
        return self

    def scenario(self) -> str:
        return (
            _HEAD
            + self._fmt(_INVITE)
            + self._fmt(_ANSWERED)
            + "".join(self.steps)
            + "</scenario>\n"
        )

    def cancel_scenario(self, after_ms: int) -> str:
        return _HEAD + self._fmt(_INVITE) + self._fmt(_CANCEL, ms=after_ms) + "</scenario>\n"


def options_scenario() -> str:
    return _HEAD + _OPTIONS + "</scenario>\n"


def sipp_command(
    scenario: str, target: tuple[str, int], workdir: Path, *, calls: int = 1,
    concurrency: int = 1, rate: float = 10.0, timeout_s: float = 60.0, local_port: int = 0,
    media_port: int = 0, name: str = "",
) -> list[str]:  # fmt: skip
    """The sipp command line for ``scenario`` (written to ``workdir``)."""
    tag = name or str(abs(hash(scenario)) % 10**8)
    path = workdir / f"scenario-{tag}.xml"
    path.write_text(scenario)
    cmd = [
        "sipp", f"{target[0]}:{target[1]}", "-sf", str(path), "-m", str(calls),
        "-l", str(concurrency), "-r", str(rate), "-i", "127.0.0.1", "-nostdin",
        "-timeout", f"{int(timeout_s)}s", "-timeout_error", "-trace_err",
        "-error_file", str(workdir / f"sipp-errors-{tag}.log"), "-max_recv_loops", "1000",
    ]  # fmt: skip
    if local_port:
        cmd += ["-p", str(local_port)]
    if media_port:
        cmd += ["-mp", str(media_port)]
    return cmd


def run_sipp(
    scenario: str, target: tuple[str, int], workdir: Path, *, calls: int = 1,
    concurrency: int = 1, rate: float = 10.0, timeout_s: float = 60.0, local_port: int = 0,
    media_port: int = 0,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run sipp to completion; stdout/stderr and the exit code tell what happened."""
    cmd = sipp_command(scenario, target, workdir, calls=calls, concurrency=concurrency,
                       rate=rate, timeout_s=timeout_s, local_port=local_port,
                       media_port=media_port)  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 30,
                          cwd=workdir, stdin=subprocess.DEVNULL)  # fmt: skip


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
