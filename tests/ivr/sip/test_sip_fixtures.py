"""The controller's SIP UA, message by message, against datagrams the real Asterisk 20 sent
(captured by capture.py; README.md): every reply is compared byte for byte with a
``bot-*.sip`` file. No Asterisk, no sockets: ``datagram_received`` is driven directly and
a fake transport keeps what the endpoint sends.

The bot's tags are the ones it gave in the capture (Asterisk echoes them in its ACK, BYE
and INFO), so the captured in-dialog requests match the dialogs the tests create.
``HOTLINE_SIP_FIXTURES=write`` rewrites the ``bot-*.sip`` files (then read the diff)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

import ivr.sip
from hotline.metrics import METRICS
from hotline.settings import SipSettings
from ivr.sip import CallState, IncomingCall, SipEndpoint, SipMessage
from tests.ivr.sip.pins import INSTANCE, REGISTER_BRANCHES, REGISTER_TAG

HERE = Path(__file__).resolve().parent
META = json.loads((HERE / "capture.json").read_text())
ASTERISK = (META["asterisk"][0], META["asterisk"][1])
ASTERISK_B = (META["asterisk_b"][0], META["asterisk_b"][1])  # dtmf_mode=info, 90 s timers
RTP_PORT = 21000
WRITE = os.environ.get("HOTLINE_SIP_FIXTURES") == "write"


def fixture(name: str) -> bytes:
    return (HERE / f"{name}.sip").read_bytes()


def expect(name: str, sent: bytes) -> None:
    """``sent`` is byte for byte the ``name`` fixture (CRLF and all)."""
    path = HERE / f"{name}.sip"
    if WRITE:
        path.write_bytes(sent)
    assert path.exists(), f"{path.name} missing: run with HOTLINE_SIP_FIXTURES=write, review"
    assert sent == path.read_bytes(), f"{name}:\n{sent.decode(errors='replace')}"


def our_tag(captured: str) -> str:
    """The tag the bot gave in the capture, read from a request Asterisk sent back."""
    return ivr.sip._tag_of(SipMessage(fixture(captured)).header("To"))


def offered_port() -> int:
    """The audio port in Asterisk's captured offer."""
    return int(fixture("asterisk-invite").split(b"m=audio ")[1].split(b" ")[0])


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


class FakeRtpSocket:
    """What ``PortPool.open`` hands out; the tests open no socket."""

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", RTP_PORT)

    def close(self) -> None:
        pass


class Bot:
    """A ``SipEndpoint`` with a fake transport, its tags those of the capture."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tags: list[str], **changes: object) -> None:
        fields: dict[str, object] = {
            "bind_host": "127.0.0.1", "bind_port": META["bot"][1], "registrar_host": "",
            "username": "hotline-bot", "password": "change-me-bot", "max_calls": 60,
        }  # fmt: skip
        fields.update(changes)
        self.endpoint = SipEndpoint(SipSettings.model_validate(fields), self.answered)
        self.transport = FakeTransport()
        self.endpoint.connection_made(self.transport)  # type: ignore[arg-type]
        self.endpoint.ports.open = FakeRtpSocket  # type: ignore[assignment,method-assign]
        self.calls: list[IncomingCall] = []
        self.keys: list[str] = []
        branches = (f"bot{n:013d}" for n in itertools.count(1))  # after "z9hG4bK"
        queue = itertools.chain(tags, (f"bottag{n:04d}" for n in itertools.count(1)))

        def token(n: int = 10) -> str:  # local tags from the capture, then numbered ones
            return next(queue) if n == 10 else next(branches)

        monkeypatch.setattr(ivr.sip, "_token", token)

    def answered(self, call: IncomingCall) -> None:
        call.on_dtmf_info = self.keys.append
        self.calls.append(call)

    def receive(self, name: str, source: tuple[str, int] = ASTERISK) -> list[bytes]:
        """Feed the ``name`` fixture from ``source``: what the bot sent back to it."""
        before = len(self.transport.sent)
        self.endpoint.datagram_received(fixture(name), source)
        replies = self.transport.sent[before:]
        assert all(addr == source for _, addr in replies), replies
        return [data for data, _ in replies]


async def sent_with(bot: Bot, marker: bytes) -> bytes:
    """The first datagram the bot sent containing ``marker``, once it is sent."""
    for _ in range(100):
        found = [data for data, _ in bot.transport.sent if marker in data]
        if found:
            return found[0]
        await asyncio.sleep(0.001)
    raise AssertionError(f"the bot never sent {marker!r}")


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(body())  # type: ignore[arg-type]


def malformed_count() -> float:
    return float(METRICS.sip_malformed._value.get())


@pytest.fixture(autouse=True)
def no_retransmission_wait(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ivr.sip, "T1", 0.005)  # Timer H (64 x T1) in 0.32 s
    yield


# ---- INVITE, ACK, BYE ----
def test_asterisks_invite_is_answered_at_once_with_200_and_our_sdp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = Bot(monkeypatch, [our_tag("asterisk-ack")])

    async def body() -> None:
        (ok,) = bot.receive("asterisk-invite")
        expect("bot-200-invite", ok)  # A-law and telephone-event 101 picked from the offer
        call = bot.calls[0]
        assert (call.caller, call.called) == ("13800000001", "hotline-bot")
        assert call.asterisk_channel == "PJSIP/trunk-00000000"  # for the AMI Redirect
        assert (call.media.host, call.media.port, call.media.payload_type,
                call.media.dtmf_payload_type) == ("127.0.0.1", offered_port(), 8, 101)  # fmt: skip
        # Asterisk resends its INVITE (our 200 was lost): the same 200, no second call.
        assert bot.receive("asterisk-invite") == [ok]
        assert bot.receive("asterisk-ack") == []
        await asyncio.sleep(0.1)  # 200 would have been resent at T1, 2 T1, 4 T1 ...
        assert len(bot.transport.sent) == 2 and call.state is CallState.ANSWERED

    run(body)


def test_a_200_nobody_acknowledges_is_resent_then_the_call_ends_with_bye(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = Bot(monkeypatch, [our_tag("asterisk-ack")])

    async def body() -> None:
        (ok,) = bot.receive("asterisk-invite")
        call = bot.calls[0]
        call._cseq = 100  # random in production; pinned for the exact BYE
        await asyncio.wait_for(call.ended.wait(), 2)
        sent = [data for data, _ in bot.transport.sent]
        # RFC 3261 13.3.1.4: resent at T1, 2, 4, 8, 16, 32 T1; Timer H at 64 T1 ends it.
        assert sent[:7] == [ok] * 7
        expect("bot-bye-no-ack", sent[7])
        assert call.hangup_by == "no-ack"
        assert call.call_id not in bot.endpoint.calls

    run(body)


def test_asterisks_bye_gets_200_and_ends_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    bot = Bot(monkeypatch, [our_tag("asterisk-ack")])

    async def body() -> None:
        bot.receive("asterisk-invite")
        bot.receive("asterisk-ack")
        (ok,) = bot.receive("asterisk-bye")
        expect("bot-200-bye", ok)
        call = bot.calls[0]
        assert call.ended.is_set() and call.hangup_by == "caller"
        # Asterisk resends the BYE (our 200 lost): the dialog is gone, 481 says so.
        (gone,) = bot.receive("asterisk-bye")
        expect("bot-481-bye", gone)

    run(body)


def test_a_bye_from_another_host_is_refused_and_the_call_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = Bot(monkeypatch, [our_tag("asterisk-ack")])

    async def body() -> None:
        bot.receive("asterisk-invite")
        bot.receive("asterisk-ack")
        (refused,) = bot.receive("asterisk-bye", ("127.0.0.9", ASTERISK[1]))
        assert refused.startswith(b"SIP/2.0 481 ")
        assert not bot.calls[0].ended.is_set()

    run(body)


def test_our_hang_up_sends_bye_and_asterisks_200_ends_the_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The BYE Asterisk answered in the capture (call 13800000003), rebuilt exactly: its
    Call-ID, tags, CSeq and branch are the captured ones."""
    answer = SipMessage(fixture("asterisk-200-bye"))
    bot = Bot(monkeypatch, [ivr.sip._tag_of(answer.header("From"))])
    branch = answer.header("Via").split("branch=z9hG4bK")[1]
    invite = fixture("asterisk-invite")
    for field in ("Call-ID", "From"):  # the captured call's INVITE had these
        old = SipMessage(invite).header(field).encode()
        new = answer.header("To" if field == "From" else field).encode()
        invite = invite.replace(old, new)
    invite = invite.replace(b"13800000001", b"13800000003")

    async def body() -> None:
        bot.endpoint.datagram_received(invite, ASTERISK)
        call = bot.calls[0]
        call._cseq = int(answer.header("CSeq").split()[0]) - 1
        monkeypatch.setattr(ivr.sip, "_token", lambda n=10: branch)
        call.hangup()
        await asyncio.sleep(0)
        bye = bot.transport.sent[-1][0]
        expect("bot-bye", bye)
        assert call.hangup_by == "bot" and call.ended.is_set()
        (pending,) = bot.endpoint._pending.values()
        assert bot.receive("asterisk-200-bye") == [] and pending.done()  # no more resends

    run(body)


# ---- CANCEL ----
def test_cancel_while_ringing_gets_200_then_487_and_asterisks_ack_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = Bot(monkeypatch, [our_tag("asterisk-ack-487")], answer_delay_ms=2000)

    async def body() -> None:
        (ringing,) = bot.receive("asterisk-invite-cancelled")
        expect("bot-180-invite", ringing)
        ok, terminated = bot.receive("asterisk-cancel")
        expect("bot-200-cancel", ok)
        expect("bot-487-invite", terminated)
        assert not bot.calls  # never answered: no session, no RTP port
        # Asterisk resends its INVITE before our 487 arrived: the 487 again.
        assert bot.receive("asterisk-invite-cancelled") == [terminated]
        assert bot.receive("asterisk-ack-487") == []
        assert not bot.endpoint.calls

    run(body)


def test_cancel_for_no_call_gets_481(monkeypatch: pytest.MonkeyPatch) -> None:
    bot = Bot(monkeypatch, [])
    run(lambda: asyncio.sleep(0))
    (gone,) = bot.receive("asterisk-cancel")
    expect("bot-481-cancel", gone)


# ---- OPTIONS (Asterisk's qualify) ----
def test_qualify_options_get_200_then_486_when_full_and_503_when_draining(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = Bot(monkeypatch, ["optionstg1", our_tag("asterisk-ack"), "optionstg2", "optionstg3"],
              max_calls=1)  # fmt: skip

    async def body() -> None:
        (ok,) = bot.receive("asterisk-options")
        expect("bot-200-options", ok)
        bot.receive("asterisk-invite")
        (busy,) = bot.receive("asterisk-options")
        expect("bot-486-options", busy)  # Asterisk's Dial then skips this controller
        bot.endpoint.draining = True
        (leaving,) = bot.receive("asterisk-options")
        expect("bot-503-options", leaving)

    run(body)


def test_an_invite_beyond_max_calls_gets_486(monkeypatch: pytest.MonkeyPatch) -> None:
    bot = Bot(monkeypatch, [our_tag("asterisk-ack"), "busytag001"], max_calls=1)

    async def body() -> None:
        bot.receive("asterisk-invite")
        (busy,) = bot.receive("asterisk-invite-cancelled")
        expect("bot-486-invite", busy)
        assert len(bot.endpoint.calls) == 1

    run(body)


# ---- INFO DTMF and the session-timer re-INVITE (Asterisk with dtmf_mode=info) ----
def test_info_dtmf_gets_200_and_the_key_reaches_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    bot = Bot(monkeypatch, [our_tag("asterisk-b-info")])

    async def body() -> None:
        (ok,) = bot.receive("asterisk-b-invite", ASTERISK_B)
        expect("bot-200-b-invite", ok)  # A-law only: Asterisk offered no telephone-event
        bot.receive("asterisk-b-ack", ASTERISK_B)
        (info_ok,) = bot.receive("asterisk-b-info", ASTERISK_B)
        expect("bot-200-info", info_ok)
        assert bot.keys == ["5"]

    run(body)


def test_info_for_no_call_gets_481_and_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    bot = Bot(monkeypatch, [])
    (gone,) = bot.receive("asterisk-b-info", ASTERISK_B)
    expect("bot-481-info", gone)
    assert bot.keys == []


def test_session_refresh_reinvite_gets_200_with_the_same_media(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = Bot(monkeypatch, [our_tag("asterisk-b-info")])

    async def body() -> None:
        (first,) = bot.receive("asterisk-b-invite", ASTERISK_B)
        bot.receive("asterisk-b-ack", ASTERISK_B)
        (ok,) = bot.receive("asterisk-b-reinvite", ASTERISK_B)
        expect("bot-200-reinvite", ok)
        # Same SDP (session id and version unchanged: RFC 3264 8, nothing was modified).
        assert ok.split(b"\r\n\r\n")[1] == first.split(b"\r\n\r\n")[1]
        assert len(bot.calls) == 1 and bot.calls[0].state is CallState.ANSWERED

    run(body)


def test_a_reinvite_without_the_calls_codec_gets_488_and_the_call_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Answering it with A-law (as before) named a codec the offer did not carry."""
    bot = Bot(monkeypatch, [our_tag("asterisk-b-info")])

    async def body() -> None:
        bot.receive("asterisk-b-invite", ASTERISK_B)
        bot.receive("asterisk-b-ack", ASTERISK_B)
        (refused,) = bot.receive("derived-reinvite-pcmu", ASTERISK_B)
        expect("bot-488-reinvite-pcmu", refused)
        call = bot.calls[0]
        assert call.state is CallState.ANSWERED and call.media.payload_type == 8

    run(body)


# ---- REGISTER with digest authentication ----
def test_register_answers_asterisks_401_with_the_digest_asterisk_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The two REGISTERs the controller builds are the ones Asterisk accepted in the
    capture (its 200 is the next fixture): same pinned tag, branch and instance id, and
    a digest computed from the captured nonce."""
    bot = Bot(monkeypatch, [], registrar_host=ASTERISK[0], registrar_port=ASTERISK[1])
    registrar = bot.endpoint._registrar
    registrar.tagLibrary["register"] = REGISTER_TAG
    registrar.urnUUID = INSTANCE
    branches = itertools.cycle(REGISTER_BRANCHES)
    registrar.gen_branch = lambda length=32: next(branches)  # type: ignore[method-assign]

    async def body() -> None:
        task = asyncio.create_task(bot.endpoint._register_once())
        await asyncio.sleep(0)
        assert bot.transport.sent[0][0] == fixture("bot-register")  # as captured
        assert bot.receive("asterisk-401-register") == []
        answer = await sent_with(bot, b"Authorization: Digest")
        assert answer == fixture("bot-register-auth")  # the one Asterisk accepted
        assert bot.receive("asterisk-200-register") == []
        assert await asyncio.wait_for(task, 1) == 120

    run(body)


# ---- refusals ----
@pytest.mark.parametrize("offer", ["g729", "port0", "multicast", "bad-sdp"])
def test_an_offer_the_bot_cannot_use_gets_488_and_no_call(
    monkeypatch: pytest.MonkeyPatch, offer: str
) -> None:
    bot = Bot(monkeypatch, ["refusetag1"])

    async def body() -> None:
        (refused,) = bot.receive(f"derived-invite-{offer}")
        expect(f"bot-488-{offer}", refused)
        assert not bot.calls and not bot.endpoint.calls

    run(body)


def test_a_method_we_do_not_implement_gets_501_with_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    bot = Bot(monkeypatch, [])
    (refused,) = bot.receive("derived-message")
    expect("bot-501-message", refused)


MALFORMED = sorted(p.stem for p in HERE.glob("malformed-*.sip"))
# Parsed, but a mandatory header is missing or wrong: a request we can still address
# (it has a Via) gets 400 and a Warning that says why; the rest gets nothing.
ANSWERED_400 = {"malformed-bad-cseq", "malformed-no-call-id"}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_datagram_is_counted_and_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    bot = Bot(monkeypatch, [])
    before = malformed_count()
    replies = bot.receive(name)
    assert malformed_count() == before + 1
    if name in ANSWERED_400:
        (refused,) = replies
        expect(f"bot-400-{name.removeprefix('malformed-')}", refused)
    else:
        assert replies == []
    assert not bot.endpoint.calls
    # And the endpoint still works: Asterisk's next qualify is answered.
    monkeypatch.setattr(ivr.sip, "_token", lambda n=10: "optionstg1")
    (ok,) = bot.receive("asterisk-options")
    expect("bot-200-options", ok)


def test_every_malformed_kind_is_in_the_fixtures() -> None:
    assert len(MALFORMED) >= 9 and set(MALFORMED) >= ANSWERED_400, MALFORMED
