"""Choosing and loading the speech engine named in settings (one per process)."""

from __future__ import annotations

from pathlib import Path

from asr.base import AsrError, SpeechEngine
from asr.models import verify_vosk_model
from hotline.settings import AsrSettings


def vosk_model_path(settings: AsrSettings, models_dir: Path) -> Path:
    return settings.vosk.model_dir or models_dir / settings.vosk.model_name


def resolve_engine_name(settings: AsrSettings, models_dir: Path) -> str:
    """'auto' means Vosk when a Vosk model is installed, else Whisper."""
    if settings.engine != "auto":
        return settings.engine
    return "vosk" if vosk_model_path(settings, models_dir).is_dir() else "whisper"


def load_engine(settings: AsrSettings, models_dir: Path) -> SpeechEngine:
    name = resolve_engine_name(settings, models_dir)
    if name == "vosk":
        from asr.vosk_engine import VoskEngine

        if settings.vosk.model_dir is not None:
            path = settings.vosk.model_dir
            if not path.is_dir():
                raise AsrError(f"Vosk model folder {path} (asr.vosk.model_dir) does not exist")
        else:
            path = verify_vosk_model(models_dir, settings.vosk.model_name)
        return VoskEngine(path, settings.endpointing, settings.vosk.n_best)
    if name == "whisper":
        from asr.whisper_engine import WhisperEngine

        return WhisperEngine(settings.whisper, settings.endpointing, models_dir)
    raise AsrError(f"unknown engine {name!r}; use auto, vosk or whisper")
