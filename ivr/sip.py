"""The controller's SIP user agent: Asterisk dials it for 12345; it answers many calls at once.

pyVoIP 1.6.8 supplies the SIP message model (``SIPMessage``: headers, SDP offer) and the
REGISTER requests with digest authentication (``SIPClient.gen_first_response`` /
``gen_register``). Its call handling is not usable for a hotline, so this module wraps
the parser and does the transaction layer itself on the asyncio loop:

* pyVoIP answers every call about 1 s late (``Timer(1, callCallback)`` before the
  application may answer); we send 200 OK from the datagram handler, in milliseconds.
* pyVoIP rejects OPTIONS as unparseable (Asterisk's ``qualify_frequency`` pings would
  mark the bot unreachable) and answers CANCEL with 200 only, never ending the INVITE
  with 487; both are handled here.
* pyVoIP sends every response to the registrar address instead of the request's
  source, rebuilds To tags for in-dialog requests, and its re-REGISTER timer reads the
  shared socket directly, swallowing INVITEs that arrive meanwhile. Our registration is
  a state machine driven by the same receive path as everything else.
* Its RTP layer is replaced by ``ivr.rtp`` (see there why).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import re
import socket
import string
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

with warnings.catch_warnings():
    # pyVoIP imports audioop (deprecated in 3.12, gone in 3.13: the audioop-lts package
    # supplies it there). We never call it; our G.711 is hotline.audio. pyVoIP's package
    # must be imported through pyVoIP.VoIP first or SIP hits a circular import.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pyVoIP.VoIP  # noqa: F401
    from pyVoIP import SIP

from hotline.backoff import Backoff
from hotline.metrics import METRICS
from hotline.settings import SipSettings
from ivr.rtp import CODEC_NAMES, PCMA, PCMU, PortPool, RtpError

log = logging.getLogger(__name__)

T1 = 0.5  # RFC 3261 round-trip estimate
BYE_GRACE_S = 1.0  # at stop, for the BYEs sent to get their 200 OK
METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REGISTER", "NOTIFY", "UPDATE"]
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact",
           "l": "Content-Length", "c": "Content-Type", "k": "Supported"}  # fmt: skip
USER_AGENT = "hotline12345"
# Input limits checked before any parsing, so the cost of junk is bounded and linear.
# RFC 3261 18.1.1 sends anything near the MTU over TCP; real INVITEs with SDP are 1-3 KB.
MAX_DATAGRAM = 8192
MAX_HEADER_LINES = 100
MAX_HEADER_LINE = 2048
_START_LINE = re.compile(
    rb"^(?:[A-Z]{3,16} \S{1,512} SIP/2\.0|SIP/2\.0 [1-6]\d\d [^\r\n]{0,256})\r?\n"
)


def refusal(data: bytes) -> str:
    """Why a datagram is refused before parsing ("" = parse it): size, start line, headers."""
    if len(data) > MAX_DATAGRAM:
        return "oversized"
    if not _START_LINE.match(data):
        return "not-sip"
    head = data.split(b"\r\n\r\n", 1)[0]
    if head.count(b"\n") > MAX_HEADER_LINES:
        return "too-many-headers"
    if any(len(line) > MAX_HEADER_LINE for line in head.split(b"\n")):
        return "header-too-long"
    return ""


class SipMessage(SIP.SIPMessage):
    """pyVoIP's parser, taught the methods a PBX sends (OPTIONS, INFO, NOTIFY ...)."""

    def parse(self, data: bytes) -> None:
        # Any method token parses, so one we do not implement (MESSAGE, SUBSCRIBE, REFER)
        # is answered 501 (RFC 3261 8.2.1); pyVoIP raised on it and the request was dropped
        # as junk, leaving the peer to retransmit it for 32 s.
        method = data.split(b" ", 1)[0].decode("ascii", "replace")
        extra = [method] if method.isalpha() and method.isupper() else []
        self.SIPCompatibleMethods = METHODS + extra
        super().parse(data)
        self.raw_headers = _raw_headers(data)

    def header(self, name: str) -> str:
        wanted = name.lower()
        return next((v for k, v in self.raw_headers if k.lower() == wanted), "")

    def all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self.raw_headers if k.lower() == wanted]


def _raw_headers(data: bytes) -> list[tuple[str, str]]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")[1:]
    out: list[tuple[str, str]] = []
    for line in head:
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        name = name.strip()
        out.append((COMPACT.get(name, name), value.strip()))
    return out


def _missing_mandatory(msg: SipMessage) -> str:
    """What makes a parsed message unusable ("" = nothing): a header every request and
    response carries (RFC 3261 8.1.1) missing, or a CSeq that is not "number METHOD" of
    this request. Without a Call-ID every such INVITE would share the dialog key ""."""
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if not msg.header(name):
            return f"no {name}"
    number, _, method = msg.header("CSeq").partition(" ")
    if not number.isdigit() or (
        msg.type != SIP.SIPMessageType.RESPONSE and method.strip() != msg.method
    ):
        return "bad CSeq"
    return ""


def _token(n: int = 10) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


def _uri_of(name_addr: str) -> str:
    match = re.search(r"<([^>]+)>", name_addr)
    return match.group(1) if match else name_addr.split(";")[0].strip()


def _user_of(name_addr: str) -> str:
    match = re.search(r"sips?:([^@;>]+)@", name_addr)
    return match.group(1) if match else ""


class CallState(Enum):
    RINGING = "ringing"
    ANSWERED = "answered"
    CANCELLED = "cancelled"
    ENDED = "ended"


@dataclass(slots=True)
class MediaOffer:
    host: str
    port: int
    payload_type: int
    dtmf_payload_type: int | None


@dataclass(eq=False)
class IncomingCall:
    """One dialog created by an INVITE from Asterisk."""

    call_id: str
    invite: SipMessage
    source: tuple[str, int]
    local_tag: str
    media: MediaOffer
    caller: str
    called: str
    invite_at: float  # monotonic
    asterisk_channel: str = ""  # X-Hotline-Channel: the caller's channel, for AMI transfer
    state: CallState = CallState.RINGING
    answered_at: float = 0.0
    ended_at: float = 0.0
    hangup_by: str = ""
    sock: socket.socket | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    on_dtmf_info: Callable[[str], None] | None = None
    last_response: bytes = b""
    _cseq: int = field(default_factory=lambda: random.randint(1, 10000))
    _answer_task: asyncio.Task[None] | None = None
    _retransmit: asyncio.Task[None] | None = None
    endpoint: SipEndpoint | None = None

    @property
    def answer_ms(self) -> float:
        return (self.answered_at - self.invite_at) * 1000 if self.answered_at else 0.0

    def hangup(self) -> None:
        if self.endpoint is not None:
            self.endpoint.hangup(self)


def parse_offer(msg: SipMessage, preference: list[int]) -> MediaOffer | None:
    """Pick the first preferred G.711 law the offer carries, and its telephone-event type."""
    body = msg.body or {}
    audio = [m for m in body.get("m", []) if m.get("type") == "audio"]
    conns = body.get("c", [])
    if not audio or not conns:
        return None
    media = audio[0]
    if not _usable_rtp_address(conns[0].get("address"), media.get("port")):
        return None  # 488: port 0 or 99999, or an address that is not one
    names: dict[int, str] = {}
    for pt in media["methods"]:
        rtpmap = media["attributes"].get(pt, {}).get("rtpmap")
        if rtpmap:
            names[int(pt)] = rtpmap["name"].upper()
        elif pt.isdigit() and int(pt) in CODEC_NAMES:
            names[int(pt)] = CODEC_NAMES[int(pt)]
    offered = {name: pt for pt, name in names.items()}
    chosen = next((pt for pt in preference if CODEC_NAMES[pt] in offered), None)
    if chosen is None:
        return None
    return MediaOffer(conns[0]["address"], media["port"], chosen, offered.get("TELEPHONE-EVENT"))


def _tag_of(header: str) -> str:
    """The ``tag`` parameter of a From or To header ("" when it has none)."""
    match = re.search(r";\s*tag=([^;>\s]+)", header, re.I)
    return match.group(1) if match else ""


def _usable_rtp_address(address: object, port: object) -> bool:
    """An SDP connection address and audio port we can send RTP to: a unicast IP and a
    port in 1-65535. Odd ports are accepted: RFC 3550 only recommends even ones, and
    sipp's -mp or a NAT may offer an odd one."""
    if not isinstance(port, int) or not 1 <= port <= 65535:
        return False
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    return not (ip.is_multicast or ip.is_unspecified)


class SipEndpoint(asyncio.DatagramProtocol):
    """A UDP SIP UA for incoming calls. ``on_call`` runs on the loop right after 200 OK."""

    def __init__(self, settings: SipSettings, on_call: Callable[[IncomingCall], None]) -> None:
        self.settings = settings
        self.on_call = on_call
        self.host = settings.advertise_host or settings.bind_host
        self.calls: dict[str, IncomingCall] = {}
        self._callers: set[str] | None = None  # addresses INVITEs may come from; None: any
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> tokens, last refill
        self.ports = PortPool(settings.bind_host, settings.rtp_port_low, settings.rtp_port_high)
        self.preference = [PCMA if c == "PCMA" else PCMU for c in settings.codecs]
        self.transport: asyncio.DatagramTransport | None = None
        self.registered = asyncio.Event()
        self.draining = False  # shutting down: new calls get 503, registration withdrawn
        self._register_task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[SipMessage]] = {}  # Call-ID+CSeq -> response
        self._tasks: set[asyncio.Task[SipMessage | None]] = set()  # BYE transactions
        self._malformed_logged_at = -1e9
        self._registrar = SIP.SIPClient(
            settings.registrar_host or "127.0.0.1", settings.registrar_port,
            settings.username, settings.password, phone=None,  # type: ignore[arg-type]
            myIP=self.host, myPort=settings.bind_port,
        )  # fmt: skip
        self._registrar.default_expires = settings.register_expires_s

    # ---- lifecycle ----
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._callers = await self._resolve_invite_sources()
        await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.settings.bind_host, self.settings.bind_port)
        )
        if self.settings.registrar_host:
            self._register_task = asyncio.create_task(self._keep_registered())

    async def _resolve_invite_sources(self) -> set[str] | None:
        """The addresses INVITEs may come from (None: any). Resolved once, at start: no DNS
        on the receive path."""
        hosts = list(self.settings.invite_sources)
        if not hosts and self.settings.registrar_host:
            hosts = [self.settings.registrar_host]
        if not hosts:
            return None
        loop = asyncio.get_running_loop()
        addresses: set[str] = set()
        for host in hosts:
            try:
                found = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
            except OSError as exc:
                log.error("SIP: cannot resolve %s (sip.invite_sources / registrar_host): %s; "
                          "its INVITEs will be refused", host, exc)  # fmt: skip
                continue
            addresses |= {str(info[4][0]) for info in found}
        return addresses

    def _refuse_invite(self, msg: SipMessage, addr: tuple[str, int], tag: str) -> bool:
        """403 for an INVITE from outside ``sip.invite_sources``; 503 beyond the per-source
        rate. Without these any host reaching the port could fill every call slot."""
        if self._callers is not None and addr[0] not in self._callers:
            METRICS.calls_refused.labels(reason="not_asterisk").inc()
            self._reply(msg, addr, 403, "Forbidden", to_tag=tag)
            return True
        if not self._invite_budget(addr[0]):
            METRICS.calls_refused.labels(reason="source_rate").inc()
            self._reply(msg, addr, 503, "Service Unavailable", to_tag=tag,
                        extra={"Retry-After": "1"})  # fmt: skip
            return True
        return False

    def _invite_budget(self, host: str) -> bool:
        """A token bucket per source address: ``invites_per_source_s`` a second, bursts of
        twice that. Hand-written: a dict of two floats per address is all it needs."""
        rate = self.settings.invites_per_source_s
        now = time.monotonic()
        tokens, at = self._buckets.get(host, (2 * rate, now))
        tokens = min(2 * rate, tokens + (now - at) * rate)
        if len(self._buckets) > 10_000:  # a spoofed-source flood must not grow this forever
            self._buckets.clear()
        if tokens < 1:
            self._buckets[host] = (tokens, now)
            return False
        self._buckets[host] = (tokens - 1, now)
        return True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Take no new calls (503: Asterisk's dialplan sends them on) and withdraw the
        registration, so the registrar stops routing calls here; live calls go on."""
        self.draining = True
        if self._register_task:
            self._register_task.cancel()
            self._register_task = None
        if self.registered.is_set():
            self.registered.clear()
            try:
                await asyncio.wait_for(self._register_once(deregister=True), timeout_s)
                log.info("SIP registration withdrawn")
            except (TimeoutError, RegistrationError) as exc:
                log.warning("could not withdraw the SIP registration: %s", exc)

    async def stop(self) -> None:
        self.draining = True
        if self._register_task:
            self._register_task.cancel()
        for call in list(self.calls.values()):
            self.hangup(call)
        await asyncio.sleep(0)
        # The BYEs' transactions: a moment for their 200 OK, then ended, so none is left
        # pending (and reported "destroyed") when the event loop closes.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=BYE_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.transport:
            self.transport.close()

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    # ---- receive path ----
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip() in (b"", b"\x00\x00\x00\x00"):
            return  # keep-alive
        reason = refusal(data)
        if reason:
            self._malformed(addr, reason, len(data))
            return
        try:
            msg = SipMessage(data)
        except Exception as exc:  # pyVoIP raises bare exceptions on malformed input
            self._unreadable(data, addr, str(exc))
            return
        missing = _missing_mandatory(msg)
        if missing:
            self._malformed(addr, "bad-request", len(data), missing)
            if msg.type != SIP.SIPMessageType.RESPONSE and missing != "no Via":
                self._reply(
                    msg, addr, 400, "Bad Request", extra={"Warning": f'399 hotline "{missing}"'}
                )
            return
        if msg.type == SIP.SIPMessageType.RESPONSE:
            self._response(msg)
            return
        handler = {
            "INVITE": self._invite, "ACK": self._ack, "BYE": self._bye,
            "CANCEL": self._cancel, "OPTIONS": self._options, "INFO": self._info,
        }.get(msg.method)  # fmt: skip
        if handler is None:
            self._reply(msg, addr, 501, "Not Implemented", extra={"Allow": ALLOW})
        else:
            handler(msg, addr)

    def _unreadable(self, data: bytes, addr: tuple[str, int], detail: str) -> None:
        """Counted and dropped; but an INVITE whose headers parse and whose SDP does not
        gets 488 (RFC 3261 21.4.26), so the peer stops retransmitting and knows why."""
        self._malformed(addr, "unparseable", len(data), detail)
        head = data.split(b"\r\n\r\n", 1)[0]
        if not head.startswith(b"INVITE ") or head == data:
            return
        try:
            msg = SipMessage(re.sub(rb"(?im)^content-length:.*$", b"Content-Length: 0", head)
                             + b"\r\n\r\n")  # fmt: skip
        except Exception:  # the headers are broken too: nothing to answer to
            return
        self._reply(msg, addr, 488, "Not Acceptable Here",
                    extra={"Warning": '399 hotline "unreadable SDP"'})  # fmt: skip

    def _malformed(self, addr: tuple[str, int], reason: str, size: int, detail: str = "") -> None:
        METRICS.sip_malformed.inc()
        METRICS.sip_refused.labels(reason=reason).inc()
        # A flood must not become a flood of log lines: one warning per 10 s, and never
        # the datagram itself (it may be 8 KB of junk, or a caller's number).
        now = time.monotonic()
        if now - self._malformed_logged_at >= 10.0:
            self._malformed_logged_at = now
            log.warning("SIP datagram refused from %s: %s, %d bytes %s(further ones for 10 s "
                        "only counted: hotline_sip_malformed_packets_total)", addr[0], reason,
                        size, f"({detail[:80]}) " if detail else "")  # fmt: skip

    def _response(self, msg: SipMessage) -> None:
        key = f"{msg.header('Call-ID')} {msg.header('CSeq')}"
        future = self._pending.get(key)
        if future is not None and not future.done() and int(msg.status) >= 200:
            future.set_result(msg)

    # ---- responses ----
    def _reply(
        self, req: SipMessage, addr: tuple[str, int], code: int, phrase: str,
        to_tag: str = "", extra: dict[str, str] | None = None, body: str = "",
    ) -> bytes:  # fmt: skip
        lines = [f"SIP/2.0 {code} {phrase}"]
        for via in req.all("Via"):
            lines.append(f"Via: {self._via_received(via, addr)}")
        to = req.header("To")
        # RFC 3261 8.2.6.2: a final response carries our To tag even when no dialog
        # is made (481, 488 for unreadable SDP, 501): a tag of its own then.
        if ";tag=" not in to and code > 100:
            to += f";tag={to_tag or _token()}"
        lines += [f"From: {req.header('From')}", f"To: {to}",
                  f"Call-ID: {req.header('Call-ID')}", f"CSeq: {req.header('CSeq')}",
                  f"User-Agent: {USER_AGENT}"]  # fmt: skip
        for name, value in (extra or {}).items():
            lines.append(f"{name}: {value}")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        data = ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
        self._send(data, addr)
        return data

    @staticmethod
    def _via_received(via: str, addr: tuple[str, int]) -> str:
        # RFC 3581: fill rport and received so the reply reaches the real source.
        via = re.sub(r";rport(?=;|$)", f";rport={addr[1]}", via)
        if ";received=" not in via:
            via += f";received={addr[0]}"
        return via

    # ---- requests ----
    def _invite(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        call_id = msg.header("Call-ID")
        known = self.calls.get(call_id)
        if known is not None:
            if ";tag=" in msg.header("To"):  # re-INVITE (hold, codec change): keep media
                if self._dialog_of(msg, addr, known.local_tag) is None:
                    self._reply(msg, addr, 481, "Call/Transaction Does Not Exist")
                    return
                if msg.body and parse_offer(msg, [known.media.payload_type]) is None:
                    # Our answer repeats the call's codec; a new offer without it cannot
                    # be answered so (RFC 3264 6): 488 keeps the session as it was
                    # (RFC 3261 14.2). An offer-less re-INVITE gets our SDP as the offer.
                    self._reply(msg, addr, 488, "Not Acceptable Here", to_tag=known.local_tag)
                    return
                self._reply(msg, addr, 200, "OK", to_tag=known.local_tag,
                            extra={"Contact": self._contact()}, body=self._sdp(known))  # fmt: skip
            elif known.last_response and self._dialog_of(msg, addr, "") is not None:
                self._send(known.last_response, addr)  # retransmission of the first INVITE
            return
        local_tag = _token()
        if self._refuse_invite(msg, addr, local_tag):
            return
        if self.draining:
            self._reply(msg, addr, 503, "Service Unavailable", to_tag=local_tag,
                        extra={"Retry-After": "30"})  # fmt: skip
            return
        if len(self.calls) >= self.settings.max_calls:
            # Full: 486 makes Asterisk's dialplan try the next controller (docs/deploy.md).
            METRICS.calls_refused.labels(reason="busy").inc()
            self._reply(msg, addr, 486, "Busy Here", to_tag=local_tag)
            return
        offer = parse_offer(msg, self.preference)
        if offer is None:
            self._reply(msg, addr, 488, "Not Acceptable Here", to_tag=local_tag)
            return
        call = IncomingCall(
            call_id=call_id, invite=msg, source=addr, local_tag=local_tag, media=offer,
            caller=_user_of(msg.header("From")), called=_user_of(msg.header("To")),
            invite_at=time.monotonic(), asterisk_channel=msg.header("X-Hotline-Channel"),
            endpoint=self,
        )  # fmt: skip
        self.calls[call_id] = call
        if self.settings.answer_delay_ms:
            call.last_response = self._reply(msg, addr, 180, "Ringing", to_tag=local_tag,
                                             extra={"Contact": self._contact()})  # fmt: skip
            call._answer_task = asyncio.get_running_loop().create_task(self._answer_later(call))
        else:
            self._answer(call)

    async def _answer_later(self, call: IncomingCall) -> None:
        await asyncio.sleep(self.settings.answer_delay_ms / 1000)
        if call.state is CallState.RINGING:
            self._answer(call)

    def _answer(self, call: IncomingCall) -> None:
        try:
            call.sock = self.ports.open()
        except RtpError as exc:
            log.error("cannot answer %s: %s", call.call_id, exc)
            METRICS.calls_refused.labels(reason="no_rtp_port").inc()
            self._reply(call.invite, call.source, 503, "Service Unavailable", to_tag=call.local_tag)
            self._forget(call)
            return
        call.last_response = self._reply(
            call.invite, call.source, 200, "OK", to_tag=call.local_tag,
            extra={"Contact": self._contact(), "Allow": ALLOW}, body=self._sdp(call),
        )  # fmt: skip
        call.state = CallState.ANSWERED
        call.answered_at = time.monotonic()
        call._retransmit = asyncio.get_running_loop().create_task(self._retransmit_ok(call))
        self.on_call(call)

    async def _retransmit_ok(self, call: IncomingCall) -> None:
        """RFC 3261 13.3.1.4: repeat the 2xx at T1, 2T1, ... (max 4 s) until the ACK."""
        interval, waited, timer_h = T1, 0.0, 64 * T1
        while waited < timer_h and call.state is CallState.ANSWERED:
            # Timer H fires at 64*T1 (32 s) exactly, not at the next 4 s retransmission.
            step = min(interval, timer_h - waited)
            await asyncio.sleep(step)
            waited += step
            if call._retransmit is None:
                return
            if waited < timer_h:
                self._send(call.last_response, call.source)
            interval = min(interval * 2, 4.0)
        if call.state is CallState.ANSWERED and call._retransmit is not None:
            log.warning("no ACK for call %s: ending it", call.call_id)
            call.hangup_by = "no-ack"  # nobody was on this call: the session keeps nothing
            self.hangup(call)

    def _sdp(self, call: IncomingCall) -> str:
        pt = call.media.payload_type
        port = call.sock.getsockname()[1] if call.sock else 0
        formats = [str(pt)]
        attrs = [f"a=rtpmap:{pt} {CODEC_NAMES[pt]}/8000"]
        if call.media.dtmf_payload_type is not None:
            dpt = call.media.dtmf_payload_type
            formats.append(str(dpt))
            attrs += [f"a=rtpmap:{dpt} telephone-event/8000", f"a=fmtp:{dpt} 0-16"]
        # Stable per call (RFC 4566 only asks for uniqueness): hash() is salted per process,
        # so the same call answered twice (re-INVITE after a restart, tests) would differ.
        session = zlib.crc32(call.call_id.encode()) % 10**9
        return "\r\n".join([
            "v=0", f"o=hotline {session} {session} IN IP4 {self.host}", "s=hotline12345",
            f"c=IN IP4 {self.host}", "t=0 0", f"m=audio {port} RTP/AVP {' '.join(formats)}",
            *attrs, "a=ptime:20", "a=sendrecv", "",
        ])  # fmt: skip

    def _contact(self) -> str:
        return f"<sip:{self.settings.username}@{self.host}:{self.settings.bind_port}>"

    def _dialog_of(
        self, msg: SipMessage, addr: tuple[str, int], to_tag: str
    ) -> IncomingCall | None:
        """The call an in-dialog request belongs to, or None: the Call-ID, the caller's tag,
        our tag (``to_tag``; "" for CANCEL and INVITE retransmissions, which carry none)
        and the peer's address must all be the dialog's (RFC 3261 12.2.2). A stranger who
        learnt a Call-ID can then neither end the call nor press its keys."""
        call = self.calls.get(msg.header("Call-ID"))
        if call is None:
            return None
        if (
            addr[0] != call.source[0]
            or _tag_of(msg.header("From")) != _tag_of(call.invite.header("From"))
            or _tag_of(msg.header("To")) != to_tag
        ):
            METRICS.sip_refused.labels(reason="foreign-dialog").inc()
            log.warning("%s for a live call from a stranger (%s: wrong tags or address) "
                        "refused with 481", msg.method, addr[0])  # fmt: skip
            return None
        return call

    def _ack(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        known = self.calls.get(msg.header("Call-ID"))
        call = self._dialog_of(msg, addr, known.local_tag) if known is not None else None
        if call is None:
            return
        if call._retransmit is not None:
            call._retransmit.cancel()
            call._retransmit = None
        if call.state is CallState.CANCELLED:
            self._forget(call)

    def _bye(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        known = self.calls.get(msg.header("Call-ID"))
        call = self._dialog_of(msg, addr, known.local_tag) if known is not None else None
        if call is None:
            self._reply(msg, addr, 481, "Call/Transaction Does Not Exist")
            return
        self._reply(msg, addr, 200, "OK")
        call.hangup_by = call.hangup_by or "caller"
        self._end(call)

    def _cancel(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        call = self._dialog_of(msg, addr, "")  # a CANCEL repeats the INVITE's To, no tag
        if call is None:
            self._reply(msg, addr, 481, "Call/Transaction Does Not Exist")
            return
        self._reply(msg, addr, 200, "OK", to_tag=call.local_tag)
        if call.state is not CallState.RINGING:
            return  # already answered: the caller will send BYE (RFC 3261 9.2)
        if call._answer_task is not None:
            call._answer_task.cancel()
        call.state = CallState.CANCELLED
        call.hangup_by = "cancel"
        call.last_response = self._reply(call.invite, call.source, 487, "Request Terminated",
                                         to_tag=call.local_tag)  # fmt: skip
        call.ended_at = time.monotonic()
        call.ended.set()
        # Keep the dialog until the ACK for 487 (retransmitted INVITEs get the 487 again).
        asyncio.get_running_loop().call_later(32 * T1, self._forget, call)

    def _options(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        extra = {"Allow": ALLOW, "Accept": "application/sdp"}
        if self.draining:  # Asterisk's qualify marks us unavailable at once
            self._reply(msg, addr, 503, "Service Unavailable", to_tag=_token(), extra=extra)
            return
        busy = len(self.calls) >= self.settings.max_calls
        self._reply(msg, addr, 486 if busy else 200, "Busy Here" if busy else "OK",
                    to_tag=_token(), extra=extra)  # fmt: skip

    def _info(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        """SIP INFO DTMF (application/dtmf-relay), for trunks without RFC 2833."""
        known = self.calls.get(msg.header("Call-ID"))
        call = self._dialog_of(msg, addr, known.local_tag) if known is not None else None
        self._reply(msg, addr, 200 if call else 481, "OK" if call else "Call Does Not Exist")
        body = msg.raw.split(b"\r\n\r\n", 1)[-1].decode("utf-8", "replace")
        match = re.search(r"Signal\s*=\s*([0-9*#A-D])", body)
        if call is not None and match and call.on_dtmf_info is not None:
            call.on_dtmf_info(match.group(1))

    # ---- our hang-up ----
    def hangup(self, call: IncomingCall) -> None:
        """End the call from our side: BYE if answered, 480 if still ringing."""
        if call.state is CallState.RINGING:
            if call._answer_task is not None:
                call._answer_task.cancel()
            call.hangup_by = call.hangup_by or "bot"
            self._reply(call.invite, call.source, 480, "Temporarily Unavailable",
                        to_tag=call.local_tag)  # fmt: skip
            self._end(call)
            return
        if call.state is not CallState.ANSWERED:
            return
        call.hangup_by = call.hangup_by or "bot"
        call._cseq += 1
        invite = call.invite
        target = _uri_of(invite.header("Contact")) or _uri_of(invite.header("From"))
        request = "\r\n".join([
            f"BYE {target} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.settings.bind_port}"
            f";branch=z9hG4bK{_token(16)};rport",
            "Max-Forwards: 70",
            f"From: {invite.header('To').split(';tag=')[0]};tag={call.local_tag}",
            f"To: {invite.header('From')}",
            f"Call-ID: {call.call_id}",
            f"CSeq: {call._cseq} BYE",
            f"User-Agent: {USER_AGENT}",
            "Content-Length: 0", "", "",
        ]).encode()  # fmt: skip
        self._end(call)
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            self._request(request, call.source, f"{call.call_id} {call._cseq} BYE")
        )
        self._tasks.add(task)  # keep a reference until the BYE transaction ends
        task.add_done_callback(self._tasks.discard)

    async def _request(self, data: bytes, addr: tuple[str, int], key: str) -> SipMessage | None:
        """Send a non-INVITE request, retransmitting per RFC 3261 17.1.2 until a final reply."""
        future: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        interval = T1
        try:
            for _ in range(7):
                self._send(data, addr)
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(future), interval)
                interval = min(interval * 2, 4.0)
            return None
        finally:
            self._pending.pop(key, None)

    def _end(self, call: IncomingCall) -> None:
        if call._retransmit is not None:
            call._retransmit.cancel()
            call._retransmit = None
        call.state = CallState.ENDED
        call.ended_at = time.monotonic()
        call.ended.set()
        self._forget(call)

    def _forget(self, call: IncomingCall) -> None:
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]

    # ---- registration ----
    async def _keep_registered(self) -> None:
        """REGISTER (digest auth built by pyVoIP), refresh before expiry; back off on failure."""
        backoff = Backoff(first_s=1.0, cap_s=60.0)
        while True:
            try:
                expires = await self._register_once()
                self.registered.set()
                backoff.reset()
                await asyncio.sleep(max(10.0, expires * 0.8))
            except (TimeoutError, RegistrationError) as exc:
                self.registered.clear()
                delay = backoff.next_delay()
                log.warning("SIP registration with %s failed: %s; retry in %.1f s",
                            self.settings.registrar_host, exc, delay)  # fmt: skip
                await asyncio.sleep(delay)

    async def _register_once(self, deregister: bool = False) -> int:
        registrar = (self.settings.registrar_host, self.settings.registrar_port)
        first = self._registrar.gen_first_response(deregister=deregister)
        reply = await self._register_request(first, registrar)
        if int(reply.status) in (401, 407):
            if not self.settings.password:
                raise RegistrationError("registrar wants authentication; set sip.password")
            answer = self._registrar.gen_register(reply, deregister=deregister)
            reply = await self._register_request(answer, registrar)
        if int(reply.status) != 200:
            raise RegistrationError(f"registrar answered {int(reply.status)}")
        expires = reply.header("Expires")
        return int(expires) if expires.isdigit() else self.settings.register_expires_s

    async def _register_request(self, text: str, registrar: tuple[str, int]) -> SipMessage:
        data = text.encode()
        msg = SipMessage(data)
        key = f"{msg.header('Call-ID')} {msg.header('CSeq')}"
        reply = await self._request(data, registrar, key)
        if reply is None:
            raise TimeoutError(f"no answer from registrar {registrar[0]}:{registrar[1]}")
        return reply


class RegistrationError(Exception):
    pass
