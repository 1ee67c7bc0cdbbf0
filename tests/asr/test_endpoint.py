"""Endpointing on real speech: onset (barge-in) and end within 100 ms of the speech."""

from __future__ import annotations

import numpy as np
import pytest

from asr.base import AsrError
from asr.bench import load_clips, speech_end_s, speech_start_s
from asr.endpoint import Endpointer, speech_bounds
from asr.recognizer import looks_complete
from hotline.audio import iter_frames
from hotline.settings import EndpointingSettings

SILENCE = b"\x00" * 32000  # 1 s at 16 kHz


@pytest.fixture(scope="module")
def call_clips(shared_dir):
    return load_clips(shared_dir / "audio" / "calls-dev")


def test_speech_start_and_end_within_100ms_of_the_clip_speech(call_clips):
    settings = EndpointingSettings()
    for clip in call_clips:
        pcm = SILENCE + clip.pcm + SILENCE + SILENCE
        bounds = speech_bounds(pcm, settings)
        assert bounds, clip.name
        assert abs(bounds[0][0] - speech_start_s(pcm)) <= 0.1, clip.name
        assert abs(bounds[-1][1] - speech_end_s(pcm)) <= 0.1, clip.name


def test_start_event_comes_within_100ms_of_onset_for_barge_in(call_clips):
    clip = call_clips[0]
    pcm = SILENCE + clip.pcm + SILENCE
    endpointer = Endpointer(EndpointingSettings())
    for index, frame in enumerate(iter_frames(pcm, 16000)):
        if endpointer.push(frame).started:
            detected_at = (index + 1) * 0.02  # when the frame that triggered it had arrived
            break
    else:
        pytest.fail("no start of speech")
    assert detected_at - speech_start_s(pcm) <= 0.15  # start_speech_ms (100) + one frame
    assert abs(endpointer.speech_start_s - speech_start_s(pcm)) <= 0.1


def test_trailing_silence_setting_decides_the_end(call_clips):
    pcm = SILENCE + call_clips[1].pcm + SILENCE + SILENCE
    ends = {}
    for silence_ms in (300, 800):
        settings = EndpointingSettings(end_silence_ms=silence_ms, max_end_silence_ms=silence_ms)
        endpointer = Endpointer(settings)
        for index, frame in enumerate(iter_frames(pcm, 16000)):
            if endpointer.push(frame).ended:
                ends[silence_ms] = (index + 1) * 0.02
                break
    assert 0.4 <= ends[800] - ends[300] <= 0.6


def test_maximum_utterance_length_forces_an_end(call_clips):
    speech = b"".join(c.pcm for c in call_clips[:6])  # ~20 s with short gaps
    settings = EndpointingSettings(
        max_utterance_s=3.0, end_silence_ms=2000, max_end_silence_ms=2000
    )
    endpointer = Endpointer(settings)
    reasons = [
        s.reason for s in (endpointer.push(f) for f in iter_frames(speech, 16000)) if s.ended
    ]
    assert "max_length" in reasons


def test_silence_and_noise_never_start_speech():
    endpointer = Endpointer(EndpointingSettings())
    rng = np.random.default_rng(7)
    hiss = (rng.normal(0, 20, 16000 * 3)).astype("<i2").tobytes()  # line hiss at about -64 dBFS
    assert not any(endpointer.push(f).started for f in iter_frames(SILENCE * 3 + hiss, 16000))


def test_wrong_frame_size_is_a_clear_error():
    with pytest.raises(AsrError, match="640 bytes"):
        Endpointer(EndpointingSettings()).push(b"\x00" * 320)


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("我想问一下公积金怎么提取。", True),
        ("我家楼下的路灯坏了", True),
        ("我想问一下那个", False),
        ("就是，", False),
        ("我认为跑步最重要的就是。", False),  # Whisper's full stop is no evidence of an end
        ("然后", False),
        ("", False),
    ],
)
def test_words_that_announce_more_keep_the_turn_open(text, complete):
    assert looks_complete(text) is complete
