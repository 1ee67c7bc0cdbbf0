"""The Mandarin-only Whisper vocabulary: same logits for kept tokens, fewer tokens."""

from __future__ import annotations

import json
import shutil

import pytest

from asr.base import AsrError
from asr.bench import load_clips, telephone_path
from asr.models import install_whisper_base
from asr.whisper_vocab import (
    VocabularyMap,
    _read_vocabulary,
    mandarin_model,
    mandarin_token_ids,
)
from hotline.settings import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_model():
    return install_whisper_base(load_settings().models_dir)


@pytest.fixture(scope="module")
def derived(base_model, tmp_path_factory):
    return mandarin_model(base_model, tmp_path_factory.mktemp("models"))


def test_keeps_chinese_digits_and_special_tokens_and_drops_other_words(base_model):
    from tokenizers import Tokenizer

    vocabulary = _read_vocabulary(base_model)
    kept = set(mandarin_token_ids(vocabulary))
    tokenizer = Tokenizer.from_file(str(base_model / "tokenizer.json"))

    def spellable(text: str) -> bool:
        return set(tokenizer.encode(text, add_special_tokens=False).ids) <= kept

    assert 3000 < len(kept) < 10000 < len(vocabulary)
    chinese = ("公积金怎么提取？", "我家停水了，2024年12月3日。", "醫保報銷", "鑫淼犇")
    for text in (*chinese, "ETC", "APP"):
        assert spellable(text), text
    for text in (" hello", " the", "こんにちは", " Москва"):
        assert not spellable(text), text
    specials = ("<|endoftext|>", "<|startoftranscript|>", "<|zh|>", "<|notimestamps|>")
    assert all(vocabulary.index(s) in kept for s in specials)


def test_derived_model_decodes_like_the_full_model(base_model, derived, shared_dir):
    from asr.whisper_engine import WhisperEngine

    settings = load_settings().asr
    models_dir = derived.parent
    full = WhisperEngine(
        settings.whisper.model_copy(update={"vocabulary": "full", "model_dir": base_model}),
        settings.endpointing, models_dir,
    )  # fmt: skip
    small = WhisperEngine(
        settings.whisper.model_copy(update={"vocabulary": "mandarin", "model_dir": base_model}),
        settings.endpointing, models_dir,
    )  # fmt: skip
    try:
        clips = load_clips(shared_dir / "audio" / "calls-dev")[:6]
        same = 0
        for clip in clips:
            pcm = telephone_path(clip.pcm, "alaw")
            a = full.decode(pcm, full.prompt(())).text
            b = small.decode(pcm, small.prompt(())).text
            assert b, clip.name
            same += a == b
        # Kept tokens keep their logits: text differs only where the full model chose a
        # token the derived one cannot say.
        assert same >= len(clips) - 1
    finally:
        full.close()
        small.close()


def test_vocabulary_map_round_trips_and_drops_unsayable_tokens(derived):
    vocab = VocabularyMap.load(derived)
    kept = list(vocab.kept)
    assert vocab.to_tokenizer(vocab.to_model(kept[:50])) == kept[:50]
    unsayable = next(i for i in range(300, 50000) if i not in set(kept))
    assert vocab.to_model([kept[10], unsayable, kept[11]]) == [10, 11]


def test_derived_model_is_built_once_and_rebuilt_when_the_source_changes(base_model, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(base_model, source)
    cache = tmp_path / "cache"
    first = mandarin_model(source, cache)
    built_at = (first / "model.bin").stat().st_mtime_ns
    assert mandarin_model(source, cache) == first
    assert (first / "model.bin").stat().st_mtime_ns == built_at  # cached
    (source / "model.bin").write_bytes((source / "model.bin").read_bytes())  # new mtime
    mandarin_model(source, cache)
    assert (first / "model.bin").stat().st_mtime_ns != built_at
    stamp = json.loads((first / "source.json").read_text())
    assert stamp["size"] == (source / "model.bin").stat().st_size


def test_a_damaged_source_model_is_a_clear_error(base_model, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(base_model, source)
    data = (source / "model.bin").read_bytes()
    (source / "model.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(AsrError, match="truncated"):
        mandarin_model(source, tmp_path / "cache")
    (source / "model.bin").write_bytes(b"\x05\x00\x00\x00" + data[4:64])
    with pytest.raises(AsrError, match="format 5"):
        mandarin_model(source, tmp_path / "cache")
    (source / "vocabulary.txt").write_text("a\nb\n")
    with pytest.raises(AsrError, match="not a Whisper vocabulary"):
        mandarin_model(source, tmp_path / "cache")


def test_a_models_dir_it_cannot_write_is_a_clear_error(base_model, tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the models folder should be")
    with pytest.raises(AsrError, match="vocabulary: full"):
        mandarin_model(base_model, blocker)
