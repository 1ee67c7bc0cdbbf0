"""Hot reload of the data files, and the caller's contact details."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

import pytest

from bot.brain import BotPaths, BrainCache
from bot.contact import parse_name, parse_phone
from bot.events import CallStarted, Utterance
from bot.lexicon import load_lexicon

SAMPLE_KB = Path(str(resources.files("bot").joinpath("data/kb.yaml")))


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_brain_cache_reloads_edits_between_calls_never_mid_call(tmp_path: Path) -> None:
    kb = tmp_path / "kb.yaml"
    shutil.copy(SAMPLE_KB, kb)
    cache = BrainCache(BotPaths(kb=kb), check_every=0.0)
    first = cache.current()
    assert cache.current() is first and cache.version == 1  # nothing changed
    _bump_mtime(kb)  # touched, same content: no rebuild
    assert cache.current() is first and cache.version == 1

    call = first.new_dialogue()
    call.handle(CallStarted("13800000000", seats_available=True))
    kb.write_text(
        kb.read_text(encoding="utf-8").replace("补卡工本费二十元", "补卡免费"), encoding="utf-8"
    )
    _bump_mtime(kb)
    second = cache.current()
    assert second is not first and cache.version == 2
    # The call in progress keeps the brain it started with; a new call gets the edit.
    old = call.handle(Utterance("社保卡丢了怎么办"))
    new = second.new_dialogue()
    new.handle(CallStarted("13800000001", seats_available=True))
    fresh = new.handle(Utterance("社保卡丢了怎么办"))
    assert "工本费二十元" in str(old.actions[0]) and "补卡免费" in str(fresh.actions[0])


def test_brain_cache_keeps_the_last_good_brain_on_a_broken_edit(tmp_path: Path) -> None:
    kb = tmp_path / "kb.yaml"
    shutil.copy(SAMPLE_KB, kb)
    cache = BrainCache(BotPaths(kb=kb), check_every=0.0)
    good = cache.current()
    kb.write_text("- id: x\n  question: [unclosed\n", encoding="utf-8")
    _bump_mtime(kb)
    assert cache.current() is good and cache.version == 1
    assert "kb.yaml" in cache.last_error


def test_synonym_file_errors_and_city_precedence(tmp_path: Path) -> None:
    bad = tmp_path / "syn.yaml"
    bad.write_text("groups:\n  工资: [薪水]\n  报酬: [薪水]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'薪水' is in group '工资' and in group '报酬'"):
        load_lexicon(None, bad)
    lexicon = load_lexicon()
    assert lexicon.map_synonyms("老板欠薪") == "老板拖欠工资"
    assert lexicon.map_synonyms("交不上社会保险") == "交不上社保"
    cues = tmp_path / "cues.yaml"
    text = resources.files("bot").joinpath("data/cues.yaml").read_text(encoding="utf-8")
    cues.write_text(text.replace("synonyms: {}", "synonyms: {社保卡: [一卡通]}"), "utf-8")
    assert load_lexicon(cues).map_synonyms("一卡通丢了") == "社保卡丢"


@pytest.mark.parametrize(
    ("said", "name", "anonymous", "confidential"),
    [
        ("我叫张伟", "张伟", False, False),
        ("我姓刘", "刘（姓）", False, False),
        ("陈女士", "陈女士", False, False),
        ("就叫我李老师吧，帮我保密", "李老师", False, True),
        ("我要匿名", "", True, True),
        ("不想说", "", True, True),
    ],
)
def test_parse_name(said: str, name: str, anonymous: bool, confidential: bool) -> None:
    answer = parse_name(said, load_lexicon())
    assert (answer.name, answer.anonymous, answer.confidential) == (name, anonymous, confidential)


def test_parse_phone() -> None:
    assert parse_phone("幺三八一二三四五六七八") == "13812345678"
    assert parse_phone("打0571-8888 6666") == "057188886666"
    assert parse_phone("就打这个吧") is None
