"""Menu validation: every problem named with its node, the command's exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.menu import load_menu, menu_problems, parse_menu

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "options": [
        {"key": "1", "label": "政策咨询", "ask": "请说出您的问题。"},
        {"key": "2", "label": "投诉", "intake": "complaint"},
    ]
}


def problems(raw: dict[str, object]) -> list[str]:
    return [str(p) for p in menu_problems(raw)]


def test_shipped_menu_has_no_problems() -> None:
    raw = yaml.safe_load((REPO / "bot/data/menu.yaml").read_text(encoding="utf-8"))
    assert problems(raw) == []


def test_unreachable_named_submenu_is_named() -> None:
    raw = {
        **GOOD,
        "submenus": {"orphan": {"options": [{"key": "1", "label": "x", "repeat": True}]}},
    }
    assert problems(raw) == ["submenus.orphan: unreachable: no option leads to this submenu"]


def test_named_submenu_reached_and_built() -> None:
    raw = {
        "options": [*GOOD["options"], {"key": "3", "label": "专席", "submenu": "seats"}],
        "submenus": {
            "seats": {
                "prompt": "社保请按1，人工服务请按零。",
                "options": [{"key": "1", "label": "社保", "transfer": "social_insurance"}],
            }
        },
    }
    assert problems(raw) == []
    menu = parse_menu(raw)
    seats = menu.option("3")
    assert seats is not None and seats.submenu[0].value == "social_insurance"
    assert menu.spoken(seats.submenu) == "社保请按1，人工服务请按零。"
    assert "人工服务请按零" in menu.spoken(menu.options)  # built from the labels


def test_missing_prompts_duplicate_keys_and_no_person() -> None:
    raw = {
        "prompt": "咨询请按1，投诉请按2。",
        "options": [
            {"key": "1", "label": "咨询", "ask": " "},
            {"key": "2", "label": "投诉", "intake": "complaint"},
            {"key": "2", "label": "举报", "intake": "report"},
            {
                "key": "3",
                "label": "专席",
                "prompt": "",
                "submenu": [{"key": "1", "label": "社保", "transfer": "nowhere"}],
            },
        ],
    }
    found = problems(raw)
    assert "options[1] (key 1 咨询): field 'ask' is missing its prompt text" in found[0]
    assert any(p.startswith("options[3] (key 2 举报): key '2' is used twice") for p in found)
    assert any(
        p.startswith(
            "options[4] (key 3 专席).submenu[1] (key 1 社保): field 'transfer' must be a queue"
        )
        for p in found
    )
    assert any(p.startswith("options[4] (key 3 专席): field 'prompt' is empty") for p in found)
    assert (
        "menu: the prompt never tells the caller how to reach a person (add 人工服务请按零)"
        in found
    )
    assert "menu: the prompt does not mention key 3 (专席)" in found


def test_depth_and_dead_ends() -> None:
    deep = {
        "options": [
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
        ]
    }
    assert any("at most two levels" in p for p in problems(deep))
    empty = {"options": [{"key": "1", "label": "a", "submenu": []}]}
    assert any("dead end" in p for p in problems(empty))
    assert problems({"options": []}) == [
        "options: expected a non-empty list of options (an empty level is a dead end)"
    ]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_validate_command(tmp_path: Path) -> None:
    ok = _cli("menu", "validate", "bot/data/menu.yaml")
    assert ok.returncode == 0, ok.stderr
    assert load_menu(REPO / "bot/data/menu.yaml").options

    bad = tmp_path / "menu.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "options": [
                    {"key": "1", "label": "咨询", "ask": "请讲"},
                    {"key": "1", "label": "投诉", "intake": "complaint"},
                ]
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    result = _cli("menu", "validate", str(bad))
    assert result.returncode == 1
    assert "options[2] (key 1 投诉): key '1' is used twice on this level" in result.stderr
    assert "Traceback" not in result.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("options: [\n", encoding="utf-8")
    for args in (("menu", "validate", str(broken)), ("menu", "validate", "/nonexistent.yaml")):
        result = _cli(*args)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert result.stderr.startswith("hotline: ")


@pytest.mark.parametrize("text", ["- just a list\n", "options: 3\n", "{}\n"])
def test_validate_command_on_wrong_shapes(tmp_path: Path, text: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    result = _cli("menu", "validate", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
