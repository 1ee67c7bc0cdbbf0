"""The dialplan's own sounds: rendered as 8 kHz WAV where Asterisk reads them, a manager's
recording kept, re-rendered only when the words change; no Playback the hotline does not
render (a caller would hear silence, then a hang-up)."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from hotline.audio import write_wav
from ivr.asterisk_sounds import ASTERISK_SOUNDS, missing_sounds, render_asterisk_sounds
from voice.prompts import PromptLibrary
from voice.tts import ClauseStreaming

REPO = Path(__file__).resolve().parents[2]


class ToneEngine(ClauseStreaming):
    """A local engine speaking one second of a tone at 8 kHz for any text."""

    name = "tone"
    voice = "a440"
    network = False

    def __init__(self) -> None:
        self.rendered: list[str] = []

    def available(self) -> bool:
        return True

    def synthesize(self, text: str) -> bytes:
        self.rendered.append(text)
        t = np.arange(8000) / 8000
        return (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


def _library(tmp_path: Path, engine: ToneEngine) -> PromptLibrary:
    return PromptLibrary(tmp_path / "recorded", tmp_path / "cache", [engine])


def test_every_dialplan_sound_is_written_as_8khz_mono_wav(tmp_path: Path) -> None:
    engine = ToneEngine()
    folder = tmp_path / "sounds" / "zh" / "hotline"
    assert missing_sounds(folder) == [s.name for s in ASTERISK_SOUNDS]
    written = render_asterisk_sounds(_library(tmp_path, engine), folder)
    assert sorted(p.name for p in written) == [
        "all-busy.wav",
        "night-callback.wav",
        "night-closed.wav",
        "please-hold.wav",
    ]
    assert missing_sounds(folder) == []
    with wave.open(str(folder / "night-callback.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() > 4000  # audio, not an empty file
    night = next(s for s in ASTERISK_SOUNDS if s.name == "night-callback")
    assert "回电" in night.text and "110" in night.text  # the promise, and the way to help
    # A second run with the same words writes nothing and renders nothing.
    before = list(engine.rendered)
    assert render_asterisk_sounds(_library(tmp_path, engine), folder) == []
    assert engine.rendered == before


def test_a_managers_recording_is_kept_and_copied(tmp_path: Path) -> None:
    engine = ToneEngine()
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    pcm = (np.ones(8000) * 1234).astype("<i2").tobytes()
    write_wav(recorded / "night-callback.wav", pcm, 8000)
    # Asterisk's folder elsewhere: the recording is what goes there.
    folder = tmp_path / "asterisk"
    render_asterisk_sounds(_library(tmp_path, engine), folder)
    with wave.open(str(folder / "night-callback.wav")) as wav:
        assert wav.readframes(wav.getnframes()) == pcm
    assert all("回电" not in text for text in engine.rendered)
    # Asterisk reading the recordings' folder itself (docker): the recording is untouched.
    assert "night-callback.wav" not in [p.name for p in render_asterisk_sounds(
        _library(tmp_path, engine), recorded)]  # fmt: skip
    with wave.open(str(recorded / "night-callback.wav")) as wav:
        assert wav.readframes(wav.getnframes()) == pcm


def test_changed_words_are_rendered_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ivr.asterisk_sounds as sounds

    folder = tmp_path / "asterisk"
    render_asterisk_sounds(_library(tmp_path, ToneEngine()), folder)
    changed = tuple(
        sounds.AsteriskSound(s.name, s.text + "谢谢。", s.why) for s in sounds.ASTERISK_SOUNDS
    )
    monkeypatch.setattr(sounds, "ASTERISK_SOUNDS", changed)
    engine = ToneEngine()
    written = render_asterisk_sounds(_library(tmp_path, engine), folder)
    assert len(written) == len(changed) and all(t.endswith("谢谢。") for t in engine.rendered)


def test_the_linter_flags_a_sound_nobody_renders(tmp_path: Path) -> None:
    from ops.asterisk_lint import lint

    conf = tmp_path / "conf"
    shutil.copytree(REPO / "telephony_config", conf)
    plan = conf / "extensions.conf"
    plan.write_text(plan.read_text().replace("Playback(hotline/all-busy)", "Playback(hotline/x)"))
    queues = conf / "queues.conf"
    queues.write_text(queues.read_text().replace("=hotline/please-hold", "=hotline/wait", 1))
    found = lint(conf)
    assert any("hotline/x is no sound the hotline renders" in p for p in found)
    assert any("periodic-announce=hotline/wait is no sound the hotline" in p for p in found)


def test_a_caller_no_bot_answered_is_promised_nothing_at_night() -> None:
    """No bot, no journal, no ticket: the night sound must not promise a callback."""
    sounds = {s.name: s.text for s in ASTERISK_SOUNDS}
    assert "回电" in sounds["night-callback"] and "回电" not in sounds["night-closed"]
    plan = (REPO / "telephony_config" / "extensions.conf").read_text()
    assert 'HOTLINE_NO_TICKET}" = "1"]?hotline/night-closed:hotline/night-callback' in plan


def test_the_dialplan_never_hangs_up_right_after_a_sound_that_may_be_missing() -> None:
    """Every Playback of a hotline sound is followed by a PLAYBACKSTATUS check, so a
    missing file leads to a ringing queue or a tone, never straight to Hangup()."""
    lines = (REPO / "telephony_config" / "extensions.conf").read_text().splitlines()
    plays = [i for i, line in enumerate(lines) if "Playback(" in line]
    assert len(plays) >= 2
    for i in plays:
        assert "PLAYBACKSTATUS" in lines[i + 1], lines[i : i + 2]
