"""Prompt audio: a slow repeat is the same words stretched in time by sox, and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ivr.prompts import EspeakEngine, PromptLibrary


def _dominant_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    band = (freqs > 80) & (freqs < 400)  # the voice's fundamental
    return float(freqs[band][np.argmax(spectrum[band])])


def test_a_slow_repeat_is_longer_with_the_same_voice(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path / "recorded", tmp_path / "cache", [EspeakEngine()])
    text = "请问具体在什么地方？请说区、街道、小区或者路名。"
    normal = library.get(text, "ask_where")
    slow = library.get(text, "ask_where", slow=True)
    assert 1.15 <= slow.seconds / normal.seconds <= 1.4, (normal.seconds, slow.seconds)
    assert abs(_dominant_hz(slow.pcm) - _dominant_hz(normal.pcm)) < 25  # pitch kept
    assert len(list((tmp_path / "cache").glob("slow-*.wav"))) == 1
    fresh = PromptLibrary(tmp_path / "recorded", tmp_path / "cache", [EspeakEngine()])
    assert fresh.get(text, "ask_where", slow=True).pcm == slow.pcm  # from the cache
