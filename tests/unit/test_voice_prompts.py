"""Prompt audio: a slow repeat is the same words stretched in time by sox, and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voice.prompts import EspeakEngine, PromptLibrary, cache_dir


def _dominant_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    band = (freqs > 80) & (freqs < 400)  # the voice's fundamental
    return float(freqs[band][np.argmax(spectrum[band])])


def test_a_slow_repeat_is_longer_with_the_same_voice(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path / "recorded", tmp_path / "cache", [EspeakEngine()])
    text = "请问具体在什么地方？请说区、街道、小区或者路名。"
    library.prerender([text])  # a bot prompt, known before calls: cached
    normal = library.get(text, "ask_where")
    slow = library.get(text, "ask_where", slow=True)
    assert 1.15 <= slow.seconds / normal.seconds <= 1.4, (normal.seconds, slow.seconds)
    assert abs(_dominant_hz(slow.pcm) - _dominant_hz(normal.pcm)) < 25  # pitch kept
    assert len(list((tmp_path / "cache").glob("slow-*.wav"))) == 1
    fresh = PromptLibrary(tmp_path / "recorded", tmp_path / "cache", [EspeakEngine()])
    fresh.prerender([text])
    assert fresh.get(text, "ask_where", slow=True).pcm == slow.pcm  # from the cache


class CloudStandIn(EspeakEngine):
    """Renders like espeak-ng but declares itself remote, as edge-tts does, and notes
    every text it is given: what would have left the building."""

    name = "cloud-stand-in"
    network = True

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.heard.append(text)
        return super().synthesize(text)


def test_a_callers_words_never_reach_a_cloud_voice_nor_the_disk(tmp_path: Path) -> None:
    cloud = CloudStandIn()
    library = PromptLibrary(tmp_path / "recorded", tmp_path / "cache", [cloud, EspeakEngine()])
    greeting = "您好，这里是12345热线。"
    library.prerender([greeting])
    cached = sorted((tmp_path / "cache").iterdir())
    remembered = len(library._memory)
    readback = "我记录的是：阳光花园小区三号楼楼下饭店油烟扰民，联系电话一三九零七五五一二三四。"
    spoken = library.get(readback, "readback")
    slower = library.get(readback, "readback", slow=True)  # 「慢一点」
    assert spoken.engine == "espeak-ng" and slower.seconds > spoken.seconds
    assert readback not in cloud.heard and greeting in cloud.heard  # prompts may use it
    assert sorted((tmp_path / "cache").iterdir()) == cached  # no WAV, no text sidecar
    assert len(library._memory) == remembered  # not kept for the next caller either


class CountingEspeak(EspeakEngine):
    """espeak-ng that counts what it renders: a prompt read from the cache costs nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.rendered.append(text)
        return super().synthesize(text)


def test_controllers_sharing_a_prompt_cache_render_each_prompt_once(tmp_path: Path) -> None:
    from hotline.settings import IvrSettings

    shared = tmp_path / "shared-cache"
    ivr = IvrSettings(prompts_dir=tmp_path / "recorded", prompt_cache_dir=shared)  # type: ignore[call-arg]
    text = "您好，这里是12345政务服务便民热线。"
    first, second = CountingEspeak(), CountingEspeak()
    PromptLibrary(ivr.prompts_dir, cache_dir(ivr, tmp_path / "node-a"), [first]).prerender([text])
    PromptLibrary(ivr.prompts_dir, cache_dir(ivr, tmp_path / "node-b"), [second]).prerender([text])
    assert text in first.rendered and second.rendered == []  # digits too, all cached
    unset = IvrSettings(prompts_dir=tmp_path / "recorded")  # type: ignore[call-arg]
    assert cache_dir(unset, tmp_path / "node-a") == tmp_path / "node-a" / "prompt-cache"
