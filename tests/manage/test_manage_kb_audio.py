"""Knowledge-base versions, import/export; recorded prompts checked and converted."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from hotline.settings import Settings
from manage.audio import RecordingError, check_recording
from manage.config import ConfigError, ConfigStore, parse_kb_upload
from tickets.store import TicketStore


@pytest.fixture
def config(store: TicketStore, settings: Settings) -> ConfigStore:
    config = ConfigStore(store, settings)
    config.seed()
    return config


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_entry_edits_are_versioned_and_reach_the_bot_files(config: ConfigStore) -> None:
    first = config.kb_state("si-card-lost")
    assert first is not None and first.revision == 1 and first.author == "system"
    changed = {**first.data, "answer": "请拨打人社服务电话挂失，再到银行网点补卡。"}
    assert config.kb_save([changed], "boss", "新政策") == 1
    assert config.kb_save([changed], "boss") == 0  # unchanged: no new revision
    history = config.kb_history("si-card-lost")
    assert [(h.revision, h.author, h.note) for h in history] == [
        (2, "boss", "新政策"),
        (1, "system", "初始版本"),
    ]
    assert "请拨打人社服务电话挂失" in (config.dir / "kb.yaml").read_text(encoding="utf-8")

    config.kb_save([], "boss", retire=["si-card-lost"])
    assert config.kb_state("si-card-lost").retired  # type: ignore[union-attr]
    assert "si-card-lost" not in (config.dir / "kb.yaml").read_text(encoding="utf-8")
    assert all(k.entry_id != "si-card-lost" for k in config.kb_states())
    config.kb_restore("si-card-lost", 1, "boss")
    restored = config.kb_state("si-card-lost")
    assert restored is not None and not restored.retired and restored.revision == 4
    assert restored.data == first.data


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_changes_are_refused_with_the_field(config: ConfigStore) -> None:
    before = len(config.kb_states())
    with pytest.raises(ConfigError, match="field 'answer' is missing or empty"):
        config.kb_save(
            [{"id": "new-one", "topic": "t", "department": "d", "question": "q"}], "boss"
        )
    with pytest.raises(ConfigError, match="field 'id' must be letters"):
        config.kb_save(
            [{"id": "有 空格", "topic": "t", "department": "d", "question": "q", "answer": "a"}],
            "boss",
        )
    with pytest.raises(ConfigError, match="has no entries"):
        config.kb_save([], "boss", retire=[k.entry_id for k in config.kb_states()])
    assert len(config.kb_states()) == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_export_import_round_trip(config: ConfigStore) -> None:
    csv_text = config.kb_csv()
    yaml_text = config.kb_yaml()
    from_csv = parse_kb_upload("kb.csv", csv_text.encode("utf-8"))
    from_yaml = parse_kb_upload("kb.yaml", yaml_text.encode("utf-8"))
    assert from_csv == from_yaml == config.kb_documents()
    assert config.kb_save(from_csv, "boss") == 0  # nothing changed
    edited = csv_text.replace("补卡工本费二十元", "补卡免费", 1)
    assert edited != csv_text
    items = parse_kb_upload("kb.csv", edited.encode("utf-8"))
    assert config.kb_save(items, "boss", "导入") == 1
    with pytest.raises(ConfigError, match=r"kb\.csv: row 2"):
        parse_kb_upload("kb.csv", b"id,topic,department,question,also,answer\nx,t,d,q,,\n")
    with pytest.raises(ConfigError, match=r"use a \.yaml"):
        parse_kb_upload("kb.xlsx", b"PK")


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def tone(rate: int, seconds: float, amplitude: float, lead_s: float = 0.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    signal = amplitude * np.sin(2 * np.pi * 440 * t)
    return np.concatenate([np.zeros(int(rate * lead_s)), signal])


def test_recording_is_converted_to_8k_mono() -> None:
    stereo = np.repeat(tone(44100, 1.0, 8000)[:, None], 2, axis=1).reshape(-1)
    checked = check_recording(wav_bytes(stereo, 44100, channels=2), "greeting.wav")
    with wave.open(io.BytesIO(checked.wav)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert abs(wav.getnframes() - 8000) <= 10
    assert checked.source_rate == 44100 and -15 < checked.peak_dbfs < -10


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.clip(tone(16000, 1.0, 60000), -32767, 32767), "clipped"),
        (tone(16000, 1.0, 20), "almost silent"),
        (tone(16000, 1.0, 8000, lead_s=2.5), "starts with 2.5 s of silence"),
    ],
)
def test_bad_recordings_are_refused(samples: np.ndarray, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        check_recording(wav_bytes(samples, 16000), "x.wav")


def test_not_a_wav_is_refused() -> None:
    with pytest.raises(RecordingError, match="not a PCM WAV"):
        check_recording(b"ID3\x03mp3 data", "song.mp3")
