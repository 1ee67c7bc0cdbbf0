"""The keypad menu managers edit (``bot/data/menu.yaml``), validated on load.

Rules enforced (GB/T 33358-2016: speech first, shallow menus, a person within reach):
at most two levels; keys 1-9, * or #, unique per level; ``0`` is reserved for a person
in every state and may not be assigned; each option has exactly one action.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

QUEUES = ("general", "social_insurance", "real_estate", "business_environment")
INTAKE_TYPES = ("complaint", "help", "report", "suggestion", "praise")
ACTIONS = ("ask", "intake", "transfer", "submenu", "repeat")
KEYS = tuple("123456789*#")


class MenuError(ValueError):
    """A menu file that breaks the rules; the message names the option and field."""


@dataclass(frozen=True, slots=True)
class MenuOption:
    key: str
    label: str
    action: str  # one of ACTIONS
    value: str = ""  # prompt text, intake type or queue
    submenu: tuple[MenuOption, ...] = ()

    def path(self) -> str:
        return f"{self.key}:{self.label}"


@dataclass(frozen=True, slots=True)
class Menu:
    options: tuple[MenuOption, ...]
    source: str = ""

    def option(self, key: str, level: tuple[MenuOption, ...] | None = None) -> MenuOption | None:
        for option in self.options if level is None else level:
            if option.key == key:
                return option
        return None

    @staticmethod
    def spoken(options: tuple[MenuOption, ...]) -> str:
        keys = {"*": "星号键", "#": "井号键"}
        parts = [f"{option.label}请按{keys.get(option.key, option.key)}" for option in options]
        return "，".join([*parts, "人工服务请按零"]) + "。"

    def labels(self) -> list[str]:
        out = []
        for option in self.options:
            out.append(option.label)
            out.extend(sub.label for sub in option.submenu)
        return out


def parse_menu(raw: Any, source: str = "menu") -> Menu:
    if not isinstance(raw, dict) or "options" not in raw:
        raise MenuError(f"{source}: expected a mapping with 'options'")
    extra = sorted(set(raw) - {"options", "version"})
    if extra:
        raise MenuError(f"{source}: unknown field {extra[0]!r}")
    return Menu(_options(raw["options"], source, "options", depth=1), source)


def _options(raw: Any, source: str, where: str, depth: int) -> tuple[MenuOption, ...]:
    if not isinstance(raw, list) or not raw:
        raise MenuError(f"{source}: {where}: expected a non-empty list of options")
    if len(raw) > 9:
        raise MenuError(f"{source}: {where}: {len(raw)} options; at most 9 per level")
    seen: set[str] = set()
    out = []
    for i, item in enumerate(raw):
        label = f"{where}[{i + 1}]"
        if not isinstance(item, dict):
            raise MenuError(f"{source}: {label}: expected a mapping")
        key = str(item.get("key", "")).strip()
        if key == "0":
            raise MenuError(f"{source}: {label}: key '0' is reserved for reaching a person")
        if key not in KEYS:
            raise MenuError(
                f"{source}: {label}: field 'key' must be one of 1-9, * or # (got {key!r})"
            )
        if key in seen:
            raise MenuError(f"{source}: {label}: key {key!r} is used twice on this level")
        seen.add(key)
        name = item.get("label")
        if not isinstance(name, str) or not name.strip():
            raise MenuError(f"{source}: {label} (key {key}): field 'label' is missing or empty")
        extra = sorted(set(item) - {"key", "label", *ACTIONS})
        if extra:
            raise MenuError(f"{source}: {label} (key {key}): unknown field {extra[0]!r}")
        actions = [a for a in ACTIONS if a in item]
        if len(actions) != 1:
            raise MenuError(
                f"{source}: {label} (key {key}): needs exactly one action of {', '.join(ACTIONS)}"
                f" (got {', '.join(actions) or 'none'})"
            )
        out.append(
            _option(item, actions[0], key, name.strip(), source, f"{label} (key {key})", depth)
        )
    return tuple(out)


def _option(
    item: dict[str, Any], action: str, key: str, name: str, source: str, where: str, depth: int
) -> MenuOption:
    value = item[action]
    if action == "submenu":
        if depth >= 2:
            raise MenuError(
                f"{source}: {where}: a submenu inside a submenu; menus have at most two levels"
            )
        return MenuOption(
            key, name, action, "", _options(value, source, f"{where}.submenu", depth + 1)
        )
    if action == "intake" and value not in INTAKE_TYPES:
        raise MenuError(
            f"{source}: {where}: field 'intake' must be one of {', '.join(INTAKE_TYPES)}"
            f" (got {value!r})"
        )
    if action == "transfer" and value not in QUEUES:
        raise MenuError(
            f"{source}: {where}: field 'transfer' must be a queue: {', '.join(QUEUES)}"
            f" (got {value!r})"
        )
    if action == "ask" and (not isinstance(value, str) or not value.strip()):
        raise MenuError(f"{source}: {where}: field 'ask' must be the prompt text")
    if action == "repeat":
        value = ""
    return MenuOption(key, name, action, str(value))


def load_menu(path: str | Path | None = None) -> Menu:
    if path is None:
        text = resources.files("bot").joinpath("data/menu.yaml").read_text(encoding="utf-8")
        source = "bot/data/menu.yaml"
    else:
        path = Path(path)
        if not path.is_file():
            raise MenuError(f"menu {path}: file not found")
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MenuError(f"{source}: not valid YAML: {exc}") from exc
    return parse_menu(raw, source)
