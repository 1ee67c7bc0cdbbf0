"""Audio basics: G.711 against reference vectors, resampling, framing, WAV errors."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest

from hotline.audio import (
    AudioFormatError,
    StreamResampler,
    alaw_decode,
    alaw_encode,
    iter_frames,
    read_wav,
    resample,
    ulaw_decode,
    ulaw_encode,
)
from hotline.audio.frames import FrameBuffer, frame_bytes

DATA = Path(__file__).resolve().parent.parent / "data"
ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


@pytest.mark.parametrize(
    ("decode", "vector"),
    [(alaw_decode, "g711_alaw_decode_sox.bin"), (ulaw_decode, "g711_ulaw_decode_sox.bin")],
)
def test_decode_matches_sox_for_every_code(decode, vector):
    assert decode(ALL_CODES) == (DATA / vector).read_bytes()


@pytest.mark.parametrize(
    ("encode", "vector"),
    [(alaw_encode, "g711_alaw_encode_audioop.bin"), (ulaw_encode, "g711_ulaw_encode_audioop.bin")],
)
def test_encode_matches_reference_for_every_sample(encode, vector):
    assert encode(ALL_SAMPLES) == (DATA / vector).read_bytes()


@pytest.mark.parametrize(
    ("encode", "decode"), [(alaw_encode, alaw_decode), (ulaw_encode, ulaw_decode)]
)
def test_every_reconstruction_level_encodes_to_itself(encode, decode):
    levels = decode(ALL_CODES)
    codes = encode(levels)
    # mu-law has two codes for zero (0x7F and 0xFF); both decode to 0.
    assert decode(codes) == levels


@pytest.mark.parametrize(
    ("encode", "decode"), [(alaw_encode, alaw_decode), (ulaw_encode, ulaw_decode)]
)
def test_round_trip_error_is_within_half_a_step(encode, decode):
    x = np.frombuffer(ALL_SAMPLES, dtype="<i2").astype(np.int32)
    y = np.frombuffer(decode(encode(ALL_SAMPLES)), dtype="<i2").astype(np.int32)
    # The largest G.711 step is 1024 (A-law) / 1024 (mu-law top segment).
    assert np.max(np.abs(x - y)) <= 1024
    # Small signals keep fine resolution: the point of 16-bit over 8-bit linear.
    small = np.abs(x) < 64
    assert np.max(np.abs(x[small] - y[small])) <= 8


def test_encode_rejects_odd_byte_count():
    with pytest.raises(ValueError, match="even number of bytes"):
        alaw_encode(b"\x00\x01\x02")


def _tone(freq: float, rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * math.pi * freq * t) * 12000).astype("<i2").tobytes()


def _dominant_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_resample_8k_to_16k_keeps_pitch_and_length():
    up = resample(_tone(1000, 8000, 1.0), 8000, 16000)
    assert len(up) == 2 * 16000
    assert abs(_dominant_hz(up, 16000) - 1000) < 5


def test_resample_16k_to_8k_removes_content_above_4k():
    mixed = (
        np.frombuffer(_tone(1000, 16000, 1.0), "<i2") // 2
        + np.frombuffer(_tone(6000, 16000, 1.0), "<i2") // 2
    )
    down = np.frombuffer(resample(mixed.astype("<i2").tobytes(), 16000, 8000), "<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(down))
    freqs = np.fft.rfftfreq(len(down), 1 / 8000)
    at_1k = spectrum[np.argmin(np.abs(freqs - 1000))]
    # 6 kHz cannot exist at 8 kHz; if it aliased it would appear at 2 kHz.
    at_2k = spectrum[np.argmin(np.abs(freqs - 2000))]
    assert at_2k < at_1k / 100


def test_stream_resampler_matches_whole_buffer_resampling():
    tone = _tone(440, 8000, 1.0)
    stream = StreamResampler(8000, 16000)
    pieces = [stream.process(f) for f in iter_frames(tone, 8000)] + [stream.process(b"", last=True)]
    streamed = np.frombuffer(b"".join(pieces), "<i2").astype(float)
    whole = np.frombuffer(resample(tone, 8000, 16000), "<i2").astype(float)
    assert abs(len(streamed) - len(whole)) <= 2
    # The live filter lags by its group delay, 31.5 samples: compared whole samples
    # apart, the 440 Hz tones differ by half a sample of phase (correlation 0.9963).
    lag = round(stream.delay_samples)
    n = min(len(streamed) - lag, len(whole))
    assert np.corrcoef(streamed[1000 + lag : n + lag - 1000], whole[1000 : n - 1000])[0, 1] > 0.995


def test_live_upsampling_returns_every_frame_at_once():
    # soxr's stream resampler held audio back for ~100 ms, delaying ends of turn and
    # barge-in; the live path must turn each 20 ms packet into 20 ms of 16 kHz audio.
    stream = StreamResampler(8000, 16000)
    sizes = [len(stream.process(f)) for f in iter_frames(_tone(1000, 8000, 0.2), 8000)]
    assert sizes == [640] * 10
    assert stream.delay_samples < 40  # under 2.5 ms at 16 kHz


@pytest.mark.parametrize("hz", [300, 1000, 3000])
def test_live_upsampling_keeps_the_tone_and_rejects_its_image(hz: int):
    stream = StreamResampler(8000, 16000)
    tone = _tone(hz, 8000, 1.0)
    out = np.frombuffer(b"".join(stream.process(f) for f in iter_frames(tone, 8000)), "<i2")
    y = out[1000:].astype(float)
    spectrum = np.abs(np.fft.rfft(y * np.kaiser(len(y), 14)))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    wanted = spectrum[np.argmin(np.abs(freqs - hz))]
    image = spectrum[np.argmin(np.abs(freqs - (8000 - hz)))]
    assert image < wanted / 10_000  # at least 80 dB down
    level_in = np.sqrt(np.mean(np.frombuffer(tone, "<i2").astype(float) ** 2))
    assert abs(np.sqrt(np.mean(y**2)) / level_in - 1) < 0.02


def test_frames_are_20ms_and_last_frame_is_padded():
    assert frame_bytes(8000) == 320 and frame_bytes(16000) == 640
    frames = list(iter_frames(b"\x01\x00" * 170, 8000))
    assert [len(f) for f in frames] == [320, 320]
    assert frames[1][20:] == b"\x00" * 300


def test_frame_buffer_rechunks_odd_sizes_without_losing_bytes():
    buf = FrameBuffer(8000)
    data = bytes(range(256)) * 10
    out = buf.push(data[:100]) + buf.push(data[100:1000]) + buf.push(data[1000:])
    assert b"".join(out) == data[: len(data) // 320 * 320]


def _write(path: Path, pcm: bytes, rate: int = 16000, width: int = 2, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


def test_read_wav_converts_rate_on_request(tmp_path):
    path = _write(tmp_path / "a.wav", _tone(300, 8000, 0.5), rate=8000)
    pcm, rate = read_wav(path, target_rate=16000)
    assert rate == 16000 and len(pcm) == 16000


def test_truncated_wav_is_a_clear_error(tmp_path):
    path = _write(tmp_path / "t.wav", _tone(300, 16000, 1.0))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(AudioFormatError, match="truncated"):
        read_wav(path)


def test_empty_wav_is_a_clear_error(tmp_path):
    with pytest.raises(AudioFormatError, match="no audio"):
        read_wav(_write(tmp_path / "e.wav", b""))


def test_8bit_wav_is_refused(tmp_path):
    with pytest.raises(AudioFormatError, match="16-bit"):
        read_wav(_write(tmp_path / "b.wav", b"\x80" * 800, width=1))


def test_sample_rate_below_telephone_quality_is_refused(tmp_path):
    with pytest.raises(AudioFormatError, match="4000 Hz"):
        read_wav(_write(tmp_path / "low.wav", _tone(300, 4000, 0.5), rate=4000), target_rate=16000)


def test_44k_stereo_is_mixed_down_and_resampled(tmp_path):
    left = np.frombuffer(_tone(500, 44100, 0.5), "<i2")
    stereo = np.stack([left, left], axis=1).astype("<i2").tobytes()
    pcm, rate = read_wav(
        _write(tmp_path / "s.wav", stereo, rate=44100, channels=2), target_rate=16000
    )
    assert rate == 16000 and len(pcm) == 16000
    assert abs(_dominant_hz(pcm, 16000) - 500) < 5


def test_not_a_wav_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio")
    with pytest.raises(AudioFormatError, match="not a readable PCM WAV"):
        read_wav(junk)
