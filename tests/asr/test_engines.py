"""Each engine transcribing real audio through the telephone path."""

from __future__ import annotations

import threading

import pytest

from asr.base import AsrError, SpeechStarted, Transcript
from asr.bench import TRAILING_SILENCE_S, load_clips, speech_end_s, speech_start_s, telephone_path
from asr.engines import load_engine, resolve_engine_name
from asr.synth import synthesize
from asr.textnorm import cer
from hotline.audio import iter_frames
from hotline.settings import AsrSettings, load_settings

pytestmark = pytest.mark.slow


def stream(recognizer, pcm: bytes) -> list:
    events = []
    for frame in iter_frames(pcm + b"\x00" * int(TRAILING_SILENCE_S * 32000), 16000):
        events += recognizer.accept(frame)
    return events + recognizer.finish()


def finals(events) -> list[Transcript]:
    return [e for e in events if isinstance(e, Transcript) and e.is_final]


@pytest.fixture(scope="module")
def mandarin_calls(shared_dir):
    return load_clips(shared_dir / "audio" / "calls-dev")[:8]


def test_whisper_transcribes_mandarin_calls_after_an_alaw_round_trip(
    whisper_engine, mandarin_calls
):
    pairs = []
    alternatives = []
    for clip in mandarin_calls:
        recognizer = whisper_engine.recognizer()
        events = stream(recognizer, telephone_path(clip.pcm, "alaw"))
        recognizer.close()
        assert isinstance(events[0], SpeechStarted), clip.name
        results = finals(events)
        assert results, clip.name
        assert all(0.0 < r.confidence <= 1.0 and r.start_s < r.end_s for r in results)
        pairs.append((clip.text, "".join(r.text for r in results)))
        for r in results:  # the beam's n-best: best first, the first is the text
            assert r.alternatives and r.alternatives[0].text == r.text, clip.name
            scores = [a.score for a in r.alternatives]
            assert scores == sorted(scores, reverse=True) and all(x < 0 for x in scores)
            alternatives.append(len(r.alternatives))
    assert max(alternatives) == whisper_engine.settings.n_best  # a second hypothesis exists
    # Whisper base mishears some characters on phone audio; whole sentences must survive.
    assert cer(pairs) < 0.3, pairs


def test_whisper_outputs_simplified_characters(whisper_engine, shared_dir):
    clip = load_clips(shared_dir / "audio" / "mandarin")[0]
    text = "".join(r.text for r in finals(stream(whisper_engine.recognizer(), clip.pcm)))
    assert text
    assert not set(text) & set("們這個國廣時說話經")


def test_whisper_final_carries_times_of_the_utterance(whisper_engine, mandarin_calls):
    clip = mandarin_calls[0]
    pcm = b"\x00" * 32000 + clip.pcm  # 1 s of silence before the clip
    [result] = finals(stream(whisper_engine.recognizer(), pcm))
    assert result.start_s == pytest.approx(speech_start_s(pcm), abs=0.1)
    assert result.end_s == pytest.approx(speech_end_s(pcm), abs=0.15)
    assert result.reason == "silence"


def test_whisper_ignores_silence(whisper_engine):
    assert finals(stream(whisper_engine.recognizer(), b"\x00" * 32000 * 3)) == []


def test_reset_drops_the_utterance_in_progress(whisper_engine, mandarin_calls):
    recognizer = whisper_engine.recognizer()
    pcm = mandarin_calls[1].pcm
    for frame in iter_frames(pcm[: len(pcm) // 2], 16000):
        recognizer.accept(frame)
    recognizer.reset(hints=["公积金"])
    assert recognizer.finish() == []


def _speech_then_silence(recognizer, pcm: bytes, silent_frames: int) -> None:
    end = int(speech_end_s(pcm) * 16000) * 2
    for frame in iter_frames(pcm[:end], 16000):
        recognizer.accept(frame)
    for _ in range(silent_frames):
        recognizer.accept(b"\x00" * 640)


def test_whisper_starts_decoding_at_a_short_pause_only_when_a_worker_is_idle(
    whisper_engine, mandarin_calls, monkeypatch
):
    pcm = mandarin_calls[2].pcm
    idle = whisper_engine.recognizer()
    _speech_then_silence(idle, pcm, silent_frames=4)  # 80 ms: past the early start only
    assert idle._current_speculation() is not None
    idle.close()

    monkeypatch.setattr(whisper_engine, "has_idle_worker", lambda: False)
    busy = whisper_engine.recognizer()
    _speech_then_silence(busy, pcm, silent_frames=4)
    assert busy._current_speculation() is None  # would queue behind other calls' decodes
    for _ in range(6):  # 200 ms in all: the regular start, busy or not
        busy.accept(b"\x00" * 640)
    assert busy._current_speculation() is not None
    busy.close()


def test_whisper_counts_decodes_in_flight(whisper_engine, mandarin_calls):
    assert whisper_engine.has_idle_worker()
    prompt = whisper_engine.prompt(())
    futures = [whisper_engine.submit(mandarin_calls[0].pcm, prompt) for _ in range(4)]
    assert not whisper_engine.has_idle_worker()  # more decodes than workers
    assert all(f.result().text for f in futures)
    assert whisper_engine.has_idle_worker()


def test_whisper_puts_hints_in_the_prompt_only_within_its_budget(whisper_engine, monkeypatch):
    hints = ["公积金", "社保卡", "营业执照"]
    assert whisper_engine.prompt(hints).text == "以下是普通话的句子。"  # default: no hints
    monkeypatch.setattr(whisper_engine.settings, "hint_prompt_chars", 7)  # whole words only
    assert whisper_engine.prompt(hints).text == "以下是普通话的句子。关键词：公积金、社保卡"


def test_vosk_streams_partials_and_a_final_on_korean_speech(vosk_engine):
    speech = b"\x00" * 16000 + synthesize("저는 서울에 살고 있습니다", "ko") + b"\x00" * 16000
    recognizer = vosk_engine.recognizer()
    events = stream(recognizer, speech)
    recognizer.close()
    partials = [e for e in events if isinstance(e, Transcript) and not e.is_final]
    results = finals(events)
    assert isinstance(events[0], SpeechStarted)
    assert partials, "Vosk must report partial results while the caller speaks"
    assert len(results) == 1 and results[0].confidence > 0
    assert any("\uac00" <= ch <= "\ud7a3" for ch in results[0].text)  # Hangul syllables


def test_vosk_hands_on_its_n_best_when_asked(korean_model_dir):
    from asr.vosk_engine import VoskEngine

    engine = VoskEngine(korean_model_dir, load_settings().asr.endpointing, n_best=3)
    speech = b"\x00" * 16000 + synthesize("저는 서울에 살고 있습니다", "ko") + b"\x00" * 16000
    recognizer = engine.recognizer()
    [result] = finals(stream(recognizer, speech))
    recognizer.close()
    engine.close()
    assert len(result.alternatives) >= 2 and result.alternatives[0].text == result.text
    scores = [a.score for a in result.alternatives]
    assert scores[0] == 0 and scores == sorted(scores, reverse=True)  # relative to the best
    assert 1 / len(scores) <= result.confidence <= 1  # the best one's share of the n-best


def test_vosk_phrase_hints_restrict_answers_to_the_menu(vosk_engine):
    speech = synthesize("안녕하세요", "ko") + b"\x00" * 8000
    recognizer = vosk_engine.recognizer(hints=["안녕하세요", "감사합니다"])
    text = "".join(r.text for r in finals(stream(recognizer, telephone_path(speech, "alaw"))))
    recognizer.close()
    assert "안녕하세요" in text
    assert set(text.split()) <= {"안녕하세요", "감사합니다"}


def test_vosk_recognisers_are_reused_warm(vosk_engine):
    first = vosk_engine.recognizer()
    kaldi = first.kaldi
    first.close()
    second = vosk_engine.recognizer()
    assert second.kaldi is kaldi
    second.close()
    with pytest.raises(AsrError, match="closed"):
        first.accept(b"\x00" * 640)


def test_auto_picks_vosk_only_when_a_vosk_model_is_installed(tmp_path):
    settings = AsrSettings()
    assert resolve_engine_name(settings, tmp_path) == "whisper"
    (tmp_path / settings.vosk.model_name).mkdir()
    assert resolve_engine_name(settings, tmp_path) == "vosk"


def test_missing_vosk_model_names_the_command_that_fixes_it(tmp_path):
    with pytest.raises(AsrError, match=r"hotline models pull vosk-model-small-cn-0\.22"):
        load_engine(AsrSettings(engine="vosk"), tmp_path)


def test_whisper_decode_threads_run_below_the_call_threads(monkeypatch):
    import os

    from asr import whisper_engine
    from asr.whisper_engine import WhisperEngine

    created: list[set[int]] = []
    lower = whisper_engine._lower_priority
    monkeypatch.setattr(whisper_engine, "_lower_priority",
                        lambda tids, nice: (created.append(tids), lower(tids, nice)))  # fmt: skip
    settings = AsrSettings()
    from hotline.settings import load_settings

    engine = WhisperEngine(
        settings.whisper.model_copy(update={"decode_nice": 7}), settings.endpointing,
        load_settings().models_dir,
    )  # fmt: skip
    try:
        [decode_threads] = created
        assert decode_threads  # CTranslate2's workers, one per core
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        for tid in decode_threads:
            assert os.getpriority(os.PRIO_PROCESS, tid) == min(19, mine + 7)
        assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # the caller's threads untouched
    finally:
        engine.close()


def _silent_frames(recognizer, count: int) -> list:
    events: list = []
    for _ in range(count):
        events += recognizer.accept(b"\x00" * 640)
    return events


@pytest.mark.parametrize(
    ("words", "ends_after_frames"),
    [
        ("我想问一下公积金怎么提取。", 1),  # complete: ends as soon as the decode is in
        ("我想问一下那个", None),  # announces more: waits for max_end_silence_ms
    ],
)
def test_whisper_holds_the_turn_open_until_its_decode_is_in(
    whisper_engine, mandarin_calls, monkeypatch, words, ends_after_frames
):
    from concurrent.futures import Future

    from asr.whisper_engine import Decoded

    decodes: list[Future] = []

    def submit(pcm, prompt):
        future: Future = Future()
        # A recogniser that blocks on a running decode gets a wrong text, not a hang.
        timer = threading.Timer(3, lambda: future.done() or future.set_result(late))
        timer.daemon = True
        timer.start()
        decodes.append(future)
        return future

    late = Decoded("过了三秒", 0.9, 0.01)

    monkeypatch.setattr(whisper_engine, "submit", submit)
    recognizer = whisper_engine.recognizer()
    end_frames = whisper_engine.endpointing.end_silence_ms // 20
    _speech_then_silence(recognizer, mandarin_calls[2].pcm, silent_frames=end_frames + 5)
    # Past end_silence_ms, but the decode of these words is still running: the turn stays
    # open (a caller going on now keeps it) rather than end on words not yet known.
    assert decodes and not finals(_silent_frames(recognizer, 2))
    decodes[-1].set_result(Decoded(words, 0.9, 0.01))
    events = _silent_frames(recognizer, 1)
    if ends_after_frames:
        assert [t.text for t in finals(events)] == [words]
    else:
        assert not finals(events)
        waited = (end_frames + 5 + 3) * 20
        left = (whisper_engine.endpointing.max_end_silence_ms - waited) // 20
        assert not finals(_silent_frames(recognizer, left - 1))
        assert [t.text for t in finals(_silent_frames(recognizer, 2))] == [words]
