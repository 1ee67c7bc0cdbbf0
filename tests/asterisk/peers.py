"""Real SIP user agents around the real Asterisk: seat phones and the stand-in carrier
(sipp), and callers arriving over the trunk (sipp scenarios of testkit.callers)."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from testkit.callers import Caller, bye_answered, sipp_command
from tests.asterisk.local import CARRIER_HOST, Asterisk, free_port

_REGISTER = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="seat phone registers">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]reg[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{user}@[local_ip]:[local_port]>
Expires: {expires}
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]reg[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:{user}@[local_ip]:[local_port]>
[authentication username={user} password={password}]
Expires: {expires}
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
</scenario>
"""

# A phone that answers Asterisk's qualify (OPTIONS) and calls: rings, answers with G.711
# A-law, stays until the other side hangs up. Each answered call that ended with a BYE
# writes "answered" and "bye" to calls.log (sipp counts OPTIONS as calls too, so its exit
# status cannot tell).
_ANSWER = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="phone answers">
  <recv request="OPTIONS" optional="true" next="options"/>
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]ans[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{user}@[local_ip]:[local_port]>
Content-Length: 0
]]></send>
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]ans[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{user}@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=phone 1 1 IN IP[local_ip_type] [local_ip]
s=phone
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv
]]></send>
  <recv request="ACK" crlf="true"/>
  <nop><action><exec command="echo answered >> {log}"/></action></nop>
{bye_answered}  <nop><action><exec command="echo bye >> {log}"/></action></nop>
  <pause milliseconds="0" next="end"/>
  <label id="options"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]opt[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
  <label id="end"/>
</scenario>
"""


def answer_scenario(user: str, ring_ms: int, hold_s: float, log: Path) -> str:
    """The ``_ANSWER`` phone of ``user``, holding each call up to ``hold_s`` for its BYE."""
    return _ANSWER.format(user=user, ring_ms=ring_ms, log=log,
                          bye_answered=bye_answered(int(hold_s * 1000)))  # fmt: skip


def _sipp(work: Path, name: str, scenario: str, target: str, local: tuple[str, int],
          timeout_s: float, *extra: str) -> list[str]:  # fmt: skip
    path = work / f"{name}.xml"
    path.write_text(scenario)
    return ["sipp", target, "-sf", str(path), "-i", local[0], "-p", str(local[1]),
            "-mp", str(free_port(host=local[0])), "-nostdin",
            "-timeout", f"{int(timeout_s)}s", "-timeout_error", "-trace_err",
            "-error_file", str(work / f"{name}-errors.log"), *extra]  # fmt: skip


@dataclass
class Phone:
    """A SIP phone (sipp) at ``host:port`` that answers one call: a seat registered to
    Asterisk, or the carrier's side of the trunk (no registration)."""

    asterisk: Asterisk
    work: Path
    user: str
    password: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    answered: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = self.port or free_port(host=self.host)
        self.work.mkdir(parents=True, exist_ok=True)

    @property
    def target(self) -> str:
        return f"{self.asterisk.host}:{self.asterisk.sip_port}"

    def register(self, expires: int = 300) -> None:
        """REGISTER with digest auth from this phone's port (Asterisk keeps the contact)."""
        scenario = _REGISTER.format(user=self.user, password=self.password, expires=expires)
        cmd = _sipp(self.work, f"{self.user}-register-{expires}", scenario, self.target,
                    (self.host, self.port), 10, "-m", "1")  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=self.work,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"{self.user} could not register: {self.errors()}")

    def unregister(self) -> None:
        self.register(expires=0)

    @property
    def calls_log(self) -> Path:
        return self.work / "calls.log"

    def answer(self, ring_ms: int = 500, hold_s: float = 60.0) -> Phone:
        """Be on (in the background): answer qualify and calls, each until its BYE."""
        self.calls_log.write_text("")
        scenario = answer_scenario(self.user, ring_ms, hold_s, self.calls_log)
        cmd = _sipp(self.work, f"{self.user}-answer", scenario, self.target,
                    (self.host, self.port), hold_s + 60, "-bind_local")  # fmt: skip
        quiet = subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, cwd=self.work, stdin=quiet, stdout=quiet, stderr=quiet)
        time.sleep(0.3)  # sipp binds its port
        return self

    def wait(self, timeout_s: float = 60.0) -> int:
        """Until a call was answered and ended by the other side's BYE: how many were."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = self.calls_log.read_text().split() if self.calls_log.exists() else []
            if lines.count("bye") >= lines.count("answered") > 0:
                return lines.count("answered")
            time.sleep(0.2)
        raise AssertionError(f"{self.user}: no answered call ended by a BYE: {self.errors()}")

    def kill(self) -> None:
        """The phone dies (power cut): no BYE, no un-REGISTER."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        self.kill()

    def errors(self) -> str:
        return "".join(p.read_text(errors="replace")[-1500:]
                       for p in self.work.glob(f"{self.user}-*errors.log"))  # fmt: skip


def seat(asterisk: Asterisk, work: Path, number: str) -> Phone:
    """Seat ``seat-<number>`` with the password telephony_config ships."""
    return Phone(asterisk, work / f"seat-{number}", f"seat-{number}", f"change-me-{number}")


def carrier(asterisk: Asterisk, work: Path) -> Phone:
    """The carrier's side of the trunk: where Asterisk sends calls to citizens."""
    return Phone(asterisk, work / "carrier", "carrier", host=CARRIER_HOST,
                 port=asterisk.carrier_port)  # fmt: skip


def call_command(asterisk: Asterisk, caller: Caller, work: Path, timeout_s: float) -> list[str]:
    """sipp placing ``caller``'s call to 12345 through Asterisk, arriving over the trunk."""
    work.mkdir(parents=True, exist_ok=True)
    cmd = sipp_command(caller.scenario(), (asterisk.host, asterisk.sip_port), work,
                       timeout_s=timeout_s, local_port=free_port(host=CARRIER_HOST),
                       media_port=caller.media_port, name=caller.caller)  # fmt: skip
    cmd[cmd.index("-i") + 1] = CARRIER_HOST
    return cmd


async def place_call(asterisk: Asterisk, caller: Caller, work: Path, timeout_s: float = 90) -> int:
    """Run the call to its end; sipp's exit status (0: every step as scripted)."""
    import asyncio

    cmd = call_command(asterisk, caller, work, timeout_s)
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)  # fmt: skip
    return await proc.wait()
