from __future__ import annotations

from pathlib import Path

import pytest

from bot.lexicon import LexiconError, load_lexicon
from bot.menu import MenuError, load_menu, parse_menu
from bot.prompts import PromptsError, load_prompts


def test_sample_menu_is_valid() -> None:
    menu = load_menu()
    assert menu.option("3") is not None and len(menu.option("3").submenu) == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([{"key": "0", "label": "x", "intake": "complaint"}], "reserved for reaching a person"),
        (
            [
                {"key": "1", "label": "a", "intake": "complaint"},
                {"key": "1", "label": "b", "repeat": True},
            ],
            "used twice",
        ),
        ([{"key": "1", "label": "a"}], "exactly one action"),
        (
            [{"key": "1", "label": "a", "intake": "complaint", "transfer": "general"}],
            "exactly one action",
        ),
        ([{"key": "1", "label": "a", "transfer": "nowhere"}], "must be a queue"),
        ([{"key": "1", "label": "a", "intake": "gossip"}], "field 'intake'"),
        ([{"key": "x", "label": "a", "repeat": True}], "field 'key'"),
        ([{"key": "1", "label": "", "repeat": True}], "field 'label'"),
        (
            [
                {
                    "key": "1",
                    "label": "a",
                    "submenu": [
                        {
                            "key": "1",
                            "label": "b",
                            "submenu": [{"key": "1", "label": "c", "repeat": True}],
                        }
                    ],
                }
            ],
            "at most two levels",
        ),
    ],
)
def test_menu_validation_errors(options: list[dict[str, object]], message: str) -> None:
    with pytest.raises(MenuError) as info:
        parse_menu({"options": options}, "menu.yaml")
    assert message in str(info.value) and "menu.yaml" in str(info.value)


def test_menu_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "menu.yaml"
    path.write_text("options: [\n", encoding="utf-8")
    with pytest.raises(MenuError, match="not valid YAML"):
        load_menu(path)
    with pytest.raises(MenuError, match="file not found"):
        load_menu(tmp_path / "none.yaml")


def test_lexicon_and_prompts_validation(tmp_path: Path) -> None:
    bad = tmp_path / "cues.yaml"
    bad.write_text(
        "emergency: {cues: [着火]}\nhuman: [人工]\ntypes: {gossip: {}}\n", encoding="utf-8"
    )
    with pytest.raises(LexiconError, match="unknown type 'gossip'"):
        load_lexicon(bad)
    bad.write_text(
        "emergency: {cues: [着火]}\nhuman: [人工]\ntypes: {complaint: {cues: {吵: -1}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(LexiconError, match="weights must be > 0"):
        load_lexicon(bad)
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("greeting: 你好\n", encoding="utf-8")
    with pytest.raises(PromptsError, match="missing or empty: greeting_night"):
        load_prompts(prompts)
