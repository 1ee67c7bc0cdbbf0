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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.base import Recognizer, SpeechEngine
from bot.brain import Brain
from bot.events import SilenceTimeout, Utterance
from hotline.audio import alaw_decode, alaw_encode
from hotline.settings import SipSettings
from ivr.bench import DialogueRecorder
from ivr.callers import Caller, free_udp_port, raw_g711, run_sipp
from ivr.controller import Controller
from ivr.journal import CallRecord
from ivr.prompts import EspeakEngine, PromptLibrary
from ivr.sip import IncomingCall
from ivr.wiring import build_deps, load_brain, load_speech
from tests.ivr.rtp_peer import Captured, RtpCapture
from tickets.draft import RequestType, TicketDraft

SHORT_GREETING = "一二三四五热线，请讲。"
SHORT_SILENCE = "请问还在吗？"
SHORT_MENU = "请按键选择。"


class MemoryTickets:
    """Stands in for tickets.service until the tickets package lands on main."""

    def __init__(self) -> None:
        self.drafts: list[tuple[TicketDraft, str]] = []

    async def intake(self, draft: TicketDraft, skill: str) -> str:
        self.drafts.append((draft, skill))
        return f"2024{len(self.drafts):06d}"


@pytest.fixture(scope="module")
def settings() -> Any:
    from hotline.settings import Settings

    return Settings()


@pytest.fixture(scope="module")
def brain(shared_dir: Path, settings: Any) -> Brain:
    return load_brain(settings, shared_dir / "eval" / "kb.yaml")


@pytest.fixture(scope="module")
def engine(settings: Any) -> SpeechEngine:
    speech = load_speech(settings, "whisper")
    yield speech  # type: ignore[misc]
    speech.close()


@pytest.fixture(scope="module")
def prompt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prompt-cache")


@pytest.fixture(scope="module")
def tts_prompts(prompt_cache: Path) -> PromptLibrary:
    return PromptLibrary(Path("/nonexistent"), prompt_cache, [EspeakEngine()])


@pytest.fixture(scope="module")
def short_prompts(prompt_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    recorded = tmp_path_factory.mktemp("recorded")
    espeak = EspeakEngine()
    for prompt_id, text in (("greeting", SHORT_GREETING), ("silence", SHORT_SILENCE),
                            ("silence_menu", SHORT_MENU)):  # fmt: skip
        espeak.render(text, recorded / f"{prompt_id}.wav")
    return PromptLibrary(recorded, prompt_cache, [espeak])


class Call:
    """One finished call: what the controller recorded, what came back on the wire."""

    def __init__(self, record: CallRecord, capture: RtpCapture, tickets: MemoryTickets,
                 dialogue: DialogueRecorder) -> None:  # fmt: skip
        self.record = record
        self.packets = capture.packets
        self.tickets = tickets
        self.dialogue = dialogue

    def bot_lines(self) -> list[str]:
        return [t["text"] for t in self.record.transcript if t["speaker"] == "bot"]

    def caller_lines(self) -> list[str]:
        return [t["text"] for t in self.record.transcript if t["speaker"] == "caller"]


def place_call(
    tmp_path: Path, settings: Any, brain: Brain, engine: SpeechEngine, prompts: PromptLibrary,
    steps: Callable[[Caller], Caller], silence_s: float = 8.0, answer_delay_ms: int = 0,
    cancel_after_ms: int | None = None,
) -> tuple[Controller, Call | None, list[Recognizer]]:  # fmt: skip
    port = free_udp_port()
    low = 40000 + (port % 500) * 20
    sip = SipSettings(bind_port=port, rtp_port_low=low, rtp_port_high=low + 19,
                      answer_delay_ms=answer_delay_ms)  # type: ignore[call-arg]  # fmt: skip
    tickets = MemoryTickets()
    dialogues: list[DialogueRecorder] = []
    recognizers: list[Recognizer] = []
    deps = build_deps(settings, brain, engine, prompts, tickets=tickets,
                      data_dir=tmp_path / "var")  # fmt: skip
    deps.survey = False
    deps.silence_timeout_s = silence_s
    make_recognizer = deps.new_recognizer

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
        await controller.start()
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

    try:
        result = asyncio.run(main())
    finally:
        capture.close()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    if not controller.records:
        return controller, None, recognizers
    assert len(controller.records) == 1
    return controller, Call(controller.records[0], capture, tickets, dialogues[0]), recognizers


def clip(tmp_path: Path, shared_dir: Path, name: str, line_s: float = 2.0) -> Path:
    return raw_g711(shared_dir / "audio" / "calls-dev" / name, tmp_path, line_s=line_s)


def talkspurts(packets: list[Captured]) -> list[int]:
    """Indexes of the first packet of each prompt (RTP marker bit)."""
    return [i for i, p in enumerate(packets) if p.marker]


def loud(packet: Captured) -> bool:
    pcm = np.frombuffer(alaw_decode(packet.payload), dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(pcm * pcm))) > 200


def test_consultation_answered_by_voice(tmp_path, shared_dir, settings, brain, engine,
                                        short_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    greeting_ms = int(short_prompts.get(SHORT_GREETING, "greeting").seconds * 1000)
    speech = clip(tmp_path, shared_dir, "001.wav")  # 喂你好我想问一下租房能不能取公积金
    _, call, _ = place_call(
        tmp_path, settings, brain, engine, short_prompts,
        lambda c: c.wait(greeting_ms + 500).speak(speech).wait(7000).hang_up(),
    )  # fmt: skip
    assert call is not None
    answer = brain.kb.get("gjj-rent")
    assert answer is not None
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
    assert not call.tickets.drafts
    assert Path(call.record.recording).is_file()


def test_complaint_becomes_ticket_with_transcript(tmp_path, shared_dir, settings, brain, engine,
                                                  tts_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    # No RTP after the clip (a trunk with silence suppression): the session fills the gap
    # with silence so the recogniser still sees the turn end.
    speech = clip(tmp_path, shared_dir, "027.wav", line_s=0.0)  # 我要投诉…工地半夜还在施工…
    _, call, _ = place_call(tmp_path, settings, brain, engine, tts_prompts,
                            lambda c: c.wait(1000).speak(speech).wait(11000).hang_up())  # fmt: skip
    assert call is not None
    assert call.record.barge_ins >= 1  # the caller spoke over the greeting
    assert len(call.tickets.drafts) == 1, call.record.transcript
    draft, _skill = call.tickets.drafts[0]
    assert draft.type == RequestType.COMPLAINT
    assert draft.elements.what_happened
    caller_said = [t.text for t in draft.transcript if t.speaker == "caller"]
    assert caller_said and "投诉" in caller_said[0]
    assert any(t.speaker == "bot" for t in draft.transcript)
    assert draft.call_id == call.record.call_id and draft.recording_path
    assert call.record.outcome == "ticket" and call.record.ticket == "2024000001"


def test_dtmf_zero_goes_to_a_person(tmp_path, settings, brain, engine, tts_prompts) -> None:  # type: ignore[no-untyped-def]
    _, call, _ = place_call(tmp_path, settings, brain, engine, tts_prompts,
                            lambda c: c.wait(1500).key("0").expect_bye(20000))  # fmt: skip
    assert call is not None
    assert call.record.dtmf.startswith("0")
    assert call.record.outcome == "transfer" and call.record.hangup_by == "bot"
    assert brain.prompts.text("transfer") in call.bot_lines()
    draft, skill = call.tickets.drafts[0]
    assert draft.type == RequestType.HUMAN and draft.dtmf.startswith("0")
    assert call.record.transfer_queue == skill


def test_barge_in_stops_prompt_and_is_understood(tmp_path, shared_dir, settings, brain, engine,
                                                 tts_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    speech = clip(tmp_path, shared_dir, "013.wav")  # 我家停水了什么时候有水
    pcm = np.frombuffer(alaw_decode(speech.read_bytes()), dtype="<i2").astype(np.float32)
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160)
    onset_s = int(np.argmax(np.sqrt((frames**2).mean(axis=1)) > 300)) * 0.02
    t_before = time.monotonic()
    _, call, _ = place_call(tmp_path, settings, brain, engine, tts_prompts,
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


def test_silence_is_the_bots_to_handle(tmp_path, settings, brain, engine, short_prompts) -> None:  # type: ignore[no-untyped-def]
    _, call, _ = place_call(tmp_path, settings, brain, engine, short_prompts,
                            lambda c: c.expect_bye(60000), silence_s=1.5)  # fmt: skip
    assert call is not None
    events = [event for event, _, _ in call.dialogue.turns]
    assert sum(isinstance(e, SilenceTimeout) for e in events) == 3
    assert not any(isinstance(e, Utterance) for e in events)
    assert call.bot_lines()[-1] == brain.prompts.text("silence_end")
    assert call.record.outcome == "silence" and call.record.hangup_by == "bot"
    assert not call.tickets.drafts


def test_caller_hangs_up_mid_prompt(tmp_path, settings, brain, engine, tts_prompts) -> None:  # type: ignore[no-untyped-def]
    _, call, recognizers = place_call(tmp_path, settings, brain, engine, tts_prompts,
                                      lambda c: c.wait(1200).hang_up())  # fmt: skip
    assert call is not None
    assert call.record.hangup_by == "caller"
    assert call.record.outcome == "abandoned"
    assert not call.tickets.drafts
    assert len(recognizers) == 1


def test_cancel_before_answer_starts_no_session(tmp_path, settings, brain, engine,
                                                tts_prompts) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    controller, call, recognizers = place_call(tmp_path, settings, brain, engine, tts_prompts,
                                               lambda c: c, answer_delay_ms=3000,
                                               cancel_after_ms=300)  # fmt: skip
    assert call is None and not controller.records
    assert not recognizers  # no recogniser taken for a call that never connected
    assert not controller.endpoint.calls
