"""The sounds Asterisk's own dialplan plays, rendered where Asterisk reads them.

The dialplan (telephony_config/extensions.conf) speaks to callers the bot cannot reach:
at night when the bot leg died (``hotline/night-callback``: the orphan ticket carries
the callback) or no bot answered at all (``hotline/night-closed``: no ticket, no promise),
and when no seat answered for the queue's whole wait (``hotline/all-busy``); the queues
(queues.conf) tell waiting callers to hold on (``hotline/please-hold``). Asterisk
ships no Mandarin sounds, so a missing file would mean silence and a hang-up; these are
rendered by the prompt library (a manager's recording wins, else TTS) into
``ivr.asterisk_sounds_dir`` as 8 kHz 16-bit mono WAV (Asterisk's ``wav`` format) by
``hotline prompts`` and at every ``hotline run`` start.

Asterisk looks a sound ``hotline/night-callback`` up as
``<astdatadir>/sounds/<language>/hotline/night-callback.wav``; the dialplan sets the
language to ``zh``, so the folder is ``/var/lib/asterisk/sounds/zh/hotline`` on a stock
install (docker-compose mounts the ``prompts`` volume there, which is why the default
is ``ivr.prompts_dir``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hotline.audio import write_wav
from hotline.settings import Settings
from voice.prompts import RATE, PromptLibrary

log = logging.getLogger(__name__)

# Danger to life is handed to 110/119/120 in every state, the dialplan's words included.
EMERGENCY = "如遇危及生命安全的紧急情况，请立即拨打110、119或120。"


@dataclass(frozen=True, slots=True)
class AsteriskSound:
    name: str  # the file name under hotline/, without .wav (what Playback() names)
    text: str
    why: str  # when the dialplan plays it


ASTERISK_SOUNDS = (
    AsteriskSound(
        "night-callback",
        "您好，现在是非工作时间，人工座席已经下班。您的来电已经登记，我们会在工作时间尽快"
        f"给您回电。{EMERGENCY}感谢您的来电，再见。",
        "night, no seat logged in: a caller the bot could not finish with (bot leg died, "
        "bot unreachable); the orphan ticket carries the callback flag",
    ),
    AsteriskSound(
        "night-closed",
        "您好，现在是非工作时间，人工座席已经下班，请您在工作时间再拨打12345。"
        f"{EMERGENCY}感谢您的来电，再见。",
        "night, no seat logged in, and no bot answered the call (no journal, no ticket): "
        "no callback can be promised",
    ),
    AsteriskSound(
        "please-hold",
        "您好，座席正忙，请您稍候，我们会尽快为您接通。",
        "every 30 s while a caller waits in a queue (queues.conf periodic-announce)",
    ),
    AsteriskSound(
        "all-busy",
        f"很抱歉，人工座席仍然繁忙，请您稍后再拨打12345。{EMERGENCY}再见。",
        "the queues' whole wait passed without a seat answering",
    ),
)


def sounds_dir(settings: Settings) -> Path:
    """``ivr.asterisk_sounds_dir``, else the recorded prompts' folder (docker's mount)."""
    folder = settings.ivr.asterisk_sounds_dir
    return Path(folder) if folder else Path(settings.ivr.prompts_dir)


def _marker(folder: Path, name: str) -> Path:
    # Says "we rendered this file": a WAV without it is a manager's recording and is kept.
    return folder / f".{name}.rendered.json"


def render_asterisk_sounds(library: PromptLibrary, folder: Path) -> list[Path]:
    """Write every dialplan sound into ``folder`` (created); returns the files written.

    A manager's recording of the same name (``<prompts_dir>/night-callback.wav``) is what
    Asterisk plays; a file we rendered earlier is rendered again when its text changed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for sound in ASTERISK_SOUNDS:
        wav = folder / f"{sound.name}.wav"
        marker = _marker(folder, sound.name)
        if wav.is_file() and not marker.is_file():
            log.info("%s: kept (a recording, not ours)", wav)
            continue
        recorded = library.recorded_dir / f"{sound.name}.wav"
        if recorded.is_file() and recorded.resolve() != wav.resolve():
            prompt = library.get(sound.text, sound.name)  # the manager's, at 8 kHz
        elif wav.is_file() and _marked_text(marker) == sound.text:
            continue  # ours, and the text has not changed
        else:
            prompt = library.render_public(sound.text)  # fixed words: any engine, cached
        tmp = wav.with_suffix(".tmp")
        write_wav(tmp, prompt.pcm, RATE)
        os.replace(tmp, wav)  # Asterisk never opens half a file
        marker.write_text(json.dumps({"text": sound.text, "engine": prompt.engine,
                                      "voice": prompt.voice}, ensure_ascii=False))  # fmt: skip
        written.append(wav)
    return written


def _marked_text(marker: Path) -> str:
    try:
        return str(json.loads(marker.read_text(encoding="utf-8")).get("text", ""))
    except (OSError, ValueError):
        return ""


def missing_sounds(folder: Path) -> list[str]:
    """The dialplan sounds not in ``folder``."""
    return [s.name for s in ASTERISK_SOUNDS if not (folder / f"{s.name}.wav").is_file()]
