"""Call sessions end to end over real SIP (sipp as Asterisk) with the bot and recogniser contracts.

The bot (bot/) and the speech engines (asr/) are built in parallel; until they land these
tests drive the session with a scripted dialogue (the bot.events contract) and a
recogniser that finds utterances with the project's real VAD endpointer and reports the
clip's known text. Everything on the wire is real: SIP from sipp, RTP both ways.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from asr.base import AsrEvent, Recognizer, SpeechStarted, Transcript
from asr.endpoint import Endpointer
from bot.events import (
    CallStarted,
    CreateTicket,
    Decision,
    Dtmf,
    Event,
    HangUp,
    Listen,
    Say,
    SilenceTimeout,
    Transfer,
    Utterance,
)  # fmt: skip
from hotline.audio import alaw_decode
from hotline.settings import EndpointingSettings, SipSettings
from ivr.controller import Controller
from ivr.prompts import EspeakEngine, PromptLibrary
from ivr.session import SessionDeps
from tests.ivr.rtp_peer import RtpCapture
from ivr.callers import Caller, free_udp_port, raw_g711, run_sipp
from tickets.draft import RequestType, TicketDraft

GREETING = "您好，这里是一二三四五政务服务便民热线，请您简要说明您要咨询或反映的问题，您也可以在任何时候按零转人工服务。"
ANSWER = "租房提取公积金需要提供租房合同和身份证。"


class KnownTextRecognizer(Recognizer):
    """Real VAD endpointing; the text of each utterance comes from a list (stands in for ASR)."""

    def __init__(self, texts: list[str]) -> None:
        self.ep = Endpointer(EndpointingSettings())  # type: ignore[call-arg]
        self.texts = list(texts)

    def accept(self, frame: bytes) -> list[AsrEvent]:
        step = self.ep.push(frame)
        if step.started:
            return [SpeechStarted(self.ep.speech_start_s)]
        if step.ended:
            text = self.texts.pop(0) if self.texts else ""
            return [Transcript(text, 0.9, self.ep.speech_start_s, self.ep.now_s, True)]
        return []

    def finish(self) -> list[AsrEvent]:
        return []

    def reset(self, hints=()) -> None:  # type: ignore[no-untyped-def]
        self.ep.reset()


class ScriptedDialogue:
    """A tiny policy over the bot.events contract: answer, ticket, or transfer on keys/words."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> Decision:
        self.events.append(event)
        listen = Listen(hints=("公积金",), timeout_s=1.5)
        if isinstance(event, CallStarted):
            return Decision([Say(GREETING, prompt="greeting"), listen], "greeting")
        if isinstance(event, Dtmf) and event.digit == "0":
            draft = TicketDraft(type=RequestType.HUMAN, handover_reason="caller pressed 0")
            return Decision([Say("正在为您转接人工服务。"), Transfer("general", "dtmf 0", draft)],
                            "transfer")  # fmt: skip
        if isinstance(event, Utterance) and "投诉" in event.text:
            draft = TicketDraft(type=RequestType.COMPLAINT, summary=event.text)
            return Decision([CreateTicket(draft), Say("已为您登记。"), HangUp("ticket")], "ticket")
        if isinstance(event, Utterance):
            return Decision([Say(ANSWER), HangUp("answered")], "answered")
        if isinstance(event, SilenceTimeout):
            return Decision([HangUp("silence")], "silence")
        return Decision([], "")


class MemoryTickets:
    def __init__(self) -> None:
        self.drafts: list[tuple[TicketDraft, str]] = []

    async def intake(self, draft: TicketDraft, skill: str) -> str:
        self.drafts.append((draft, skill))
        return f"2024{len(self.drafts):06d}"


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    lib = PromptLibrary(Path("/nonexistent"), tmp_path_factory.mktemp("prompts"), [EspeakEngine()])
    lib.prerender([GREETING, ANSWER, "正在为您转接人工服务。", "已为您登记。"])
    return lib


def run_call(
    tmp_path: Path, prompts: PromptLibrary, caller_steps, texts: list[str], survey: bool = True
):  # type: ignore[no-untyped-def]
    port = free_udp_port()
    low = 40000 + (port % 500) * 20
    sip = SipSettings(bind_port=port, rtp_port_low=low, rtp_port_high=low + 19)  # type: ignore[call-arg]
    tickets = MemoryTickets()
    dialogues: list[ScriptedDialogue] = []

    def new_dialogue(call):  # type: ignore[no-untyped-def]
        dialogues.append(ScriptedDialogue())
        return dialogues[-1]

    deps = SessionDeps(prompts=prompts, new_recognizer=lambda: KnownTextRecognizer(texts),
                       new_dialogue=new_dialogue, tickets=tickets, switchboard=None, redis=None,
                       data_dir=tmp_path / "var", survey=survey)  # fmt: skip
    capture = RtpCapture()
    controller = Controller(sip, deps)
    caller = caller_steps(Caller(capture.port))

    async def main():  # type: ignore[no-untyped-def]
        await controller.start()
        try:
            result = await asyncio.to_thread(run_sipp, caller.scenario(), ("127.0.0.1", port),
                                             tmp_path, media_port=free_udp_port(), timeout_s=40)  # fmt: skip
            for _ in range(100):
                if controller.records:
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
    assert len(controller.records) == 1
    return controller.records[0], capture, tickets, dialogues[0]


def voiced(capture: RtpCapture) -> list:  # type: ignore[type-arg]
    out = []
    for p in capture.packets:
        pcm = np.frombuffer(alaw_decode(p.payload), dtype="<i2").astype(np.float32)
        if np.sqrt(np.mean(pcm * pcm)) > 200:
            out.append(p)
    return out


def clip(tmp_path: Path, shared_dir: Path, name: str = "001.wav") -> Path:
    return raw_g711(shared_dir / "audio" / "calls-dev" / name, tmp_path)


def test_consultation_answered_by_voice_with_survey(tmp_path, shared_dir, prompts) -> None:  # type: ignore[no-untyped-def]
    speech = clip(tmp_path, shared_dir)
    record, capture, tickets, _dialogue = run_call(
        tmp_path, prompts,
        lambda c: c.wait(2000).speak(speech).wait(4500 + 9000).key("1").expect_bye(20000),
        ["喂你好我想问一下租房能不能取公积金"],
    )  # fmt: skip
    # The greeting is what came back on the wire, byte for byte (A-law of the prompt).
    greeting = prompts.get(GREETING, "greeting").pcm
    from hotline.audio import alaw_encode

    first = next(i for i, p in enumerate(capture.packets) if p.marker)
    expected = alaw_encode(greeting[: 160 * 2 * 20])
    got = b"".join(p.payload for p in capture.packets[first : first + 20])
    assert got == expected
    assert record.outcome == "answered"
    assert record.satisfaction == 1
    assert [t["speaker"] for t in record.transcript][:3] == ["bot", "caller", "bot"]
    assert record.transcript[2]["text"] == ANSWER
    assert record.hangup_by == "bot"
    assert Path(record.recording).is_file()
    assert not tickets.drafts
    assert (tmp_path / "var" / "calls").is_dir()


def test_barge_in_stops_prompt_quickly(tmp_path, shared_dir, prompts) -> None:  # type: ignore[no-untyped-def]
    speech = clip(tmp_path, shared_dir)
    pcm = np.frombuffer(alaw_decode(speech.read_bytes()), dtype="<i2").astype(np.float32)
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160)
    onset_s = int(np.argmax(np.sqrt((frames**2).mean(axis=1)) > 300)) * 0.02
    t_before = time.monotonic()
    record, capture, _, _ = run_call(
        tmp_path, prompts, lambda c: c.wait(1000).speak(speech).wait(6000).hang_up(), ["随便说说"],
        survey=False,
    )  # fmt: skip
    assert record.barge_ins >= 1
    out = voiced(capture)
    # Greeting packets stop: find the gap where the greeting was cut.
    greeting_s = prompts.get(GREETING, "greeting").seconds
    spurt = [p for p in out if p.arrival - out[0].arrival < greeting_s]
    gaps = np.diff([p.arrival for p in spurt])
    cut = spurt[int(np.argmax(gaps > 0.1))] if (gaps > 0.1).any() else spurt[-1]
    played_s = cut.arrival - out[0].arrival
    assert played_s < greeting_s - 1.0  # the prompt did not play to its end
    # The caller's speech started ~1 s after the answer plus the clip's own onset.
    speech_start = out[0].arrival + 1.0 + onset_s
    assert cut.arrival - speech_start < 0.25, (
        f"prompt stopped {cut.arrival - speech_start:.3f}s after speech"
    )
    assert t_before < cut.arrival


def test_dtmf_zero_transfers_with_ticket(tmp_path, prompts) -> None:  # type: ignore[no-untyped-def]
    record, _, tickets, _ = run_call(
        tmp_path, prompts, lambda c: c.wait(1500).key("0").expect_bye(15000), [],
    )  # fmt: skip
    assert record.dtmf.startswith("0")
    assert record.outcome in ("transfer", "ticket") and record.transfer_queue == "general"
    assert tickets.drafts and tickets.drafts[0][1] == "general"
    assert tickets.drafts[0][0].dtmf.startswith("0")


def test_silence_reprompts_once_then_bot_decides(tmp_path, prompts) -> None:  # type: ignore[no-untyped-def]
    greeting_s = prompts.get(GREETING, "greeting").seconds
    wait_ms = int((2 * greeting_s + 1.5 * 2 + 8) * 1000)
    record, _, _, dialogue = run_call(tmp_path, prompts, lambda c: c.expect_bye(wait_ms), [],
                                      survey=False)  # fmt: skip
    assert "reprompt" in record.path
    assert [t["text"] for t in record.transcript].count(GREETING) == 2
    assert any(isinstance(e, SilenceTimeout) for e in dialogue.events)


def test_caller_hangs_up_mid_prompt(tmp_path, prompts) -> None:  # type: ignore[no-untyped-def]
    record, _, _, _ = run_call(tmp_path, prompts, lambda c: c.wait(1200).hang_up(), [])
    assert record.hangup_by == "caller"
    assert record.outcome == "abandoned"
