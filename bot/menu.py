"""The keypad menu managers edit (``bot/data/menu.yaml``), validated on load.

Rules enforced (GB/T 33358-2016: speech first, shallow menus, a person within reach):
at most two levels; keys 1-9, * or #, unique per level; ``0`` is reserved for a person
in every state and may not be assigned; each option has exactly one action; every level
that has its own spoken prompt must tell the caller how to reach a person and name every
key; named submenus must be reachable from the main menu.

Format::

    prompt: 政策咨询请按1，……人工服务请按零。   # optional; default: built from the labels
    options:
      - {key: "1", label: 政策咨询, ask: 请说出您要咨询的问题。}
      - {key: "3", label: 专席服务, submenu: special}   # or an inline list of options
    submenus:                                        # optional named second levels
      special: {prompt: ..., options: [...]}

:func:`menu_problems` returns every problem at once, each naming the node (``options[3]
(key 3 专席服务) > submenu[1] (key 1 社保医保)``); :func:`parse_menu` raises the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hotline.errors import UserFacingError

QUEUES = ("general", "social_insurance", "real_estate", "business_environment")
INTAKE_TYPES = ("complaint", "help", "report", "suggestion", "praise")
ACTIONS = ("ask", "intake", "transfer", "submenu", "repeat")
KEYS = tuple("123456789*#")
KEY_WORDS = {"*": "星号", "#": "井号", **{d: "零一二三四五六七八九"[int(d)] for d in "123456789"}}
_PERSON = re.compile(r"人工|按零|按0|按 0")


class MenuError(UserFacingError, ValueError):
    """A menu file that breaks the rules; the message names the option and field."""


@dataclass(frozen=True, slots=True)
class MenuProblem:
    node: str  # where: "menu", "options[3] (key 3 专席服务)", "submenus.special"
    message: str

    def __str__(self) -> str:
        return f"{self.node}: {self.message}"


@dataclass(frozen=True, slots=True)
class MenuOption:
    key: str
    label: str
    action: str  # one of ACTIONS
    value: str = ""  # prompt text, intake type or queue
    submenu: tuple[MenuOption, ...] = ()
    prompt: str = ""  # the submenu's own spoken text (empty: built from the labels)

    def path(self) -> str:
        return f"{self.key}:{self.label}"


@dataclass(frozen=True, slots=True)
class Menu:
    options: tuple[MenuOption, ...]
    source: str = ""
    prompt: str = ""  # the main menu's own spoken text (empty: built from the labels)

    def option(self, key: str, level: tuple[MenuOption, ...] | None = None) -> MenuOption | None:
        for option in self.options if level is None else level:
            if option.key == key:
                return option
        return None

    def spoken(self, options: tuple[MenuOption, ...]) -> str:
        """What the caller hears for a level: its own prompt, else one built from labels."""
        if options is self.options or options == self.options:
            return self.prompt or generated_prompt(options)
        for option in self.options:
            if option.submenu and option.submenu == options:
                return option.prompt or generated_prompt(options)
        return generated_prompt(options)

    def labels(self) -> list[str]:
        out = []
        for option in self.options:
            out.append(option.label)
            out.extend(sub.label for sub in option.submenu)
        return out


def generated_prompt(options: tuple[MenuOption, ...]) -> str:
    keys = {"*": "星号键", "#": "井号键"}
    parts = [f"{option.label}请按{keys.get(option.key, option.key)}" for option in options]
    return "，".join([*parts, "人工服务请按零"]) + "。"


def parse_menu(raw: Any, source: str = "menu") -> Menu:
    """Validate and build; raises :class:`MenuError` with the first problem found."""
    problems = menu_problems(raw)
    if problems:
        raise MenuError(f"{source}: {problems[0]}")
    named = raw.get("submenus") or {}
    options = tuple(_build(item, named) for item in raw["options"])
    return Menu(options, source, str(raw.get("prompt") or "").strip())


def _build(item: dict[str, Any], named: dict[str, Any]) -> MenuOption:
    key, label = str(item["key"]).strip(), str(item["label"]).strip()
    action = next(a for a in ACTIONS if a in item)
    value = item[action]
    if action == "submenu":
        prompt = str(item.get("prompt") or "").strip()
        if isinstance(value, str):
            prompt = prompt or str(named[value].get("prompt") or "").strip()
            value = named[value]["options"]
        return MenuOption(key, label, action, "", tuple(_build(s, named) for s in value), prompt)
    return MenuOption(key, label, action, "" if action == "repeat" else str(value).strip())


def menu_problems(raw: Any) -> list[MenuProblem]:
    """Every rule the menu breaks, in file order; empty when the menu is valid."""
    if not isinstance(raw, dict) or "options" not in raw:
        return [MenuProblem("menu", "expected a mapping with 'options'")]
    problems: list[MenuProblem] = []
    extra = sorted(set(map(str, raw)) - {"options", "version", "prompt", "submenus"})
    if extra:
        problems.append(MenuProblem("menu", f"unknown field {extra[0]!r}"))
    named = raw.get("submenus") or {}
    if not isinstance(named, dict):
        problems.append(MenuProblem("submenus", "expected a mapping of name to submenu"))
        named = {}
    used: set[str] = set()
    checker = _Checker(problems, named, used)
    checker.level(raw["options"], "options", depth=1, prompt=raw.get("prompt"), node="menu")
    for name, sub in named.items():
        where = f"submenus.{name}"
        if not isinstance(sub, dict) or "options" not in sub:
            problems.append(MenuProblem(where, "expected a mapping with 'options' (and 'prompt')"))
            continue
        if name not in used:
            problems.append(MenuProblem(where, "unreachable: no option leads to this submenu"))
        checker.level(sub["options"], f"{where}.options", depth=2, prompt=sub.get("prompt"),
                      node=where)  # fmt: skip
    return problems


@dataclass
class _Checker:
    problems: list[MenuProblem]
    named: dict[str, Any]
    used: set[str]

    def add(self, node: str, message: str) -> None:
        self.problems.append(MenuProblem(node, message))

    def level(self, raw: Any, where: str, depth: int, prompt: Any, node: str) -> None:
        if not isinstance(raw, list) or not raw:
            self.add(where, "expected a non-empty list of options (an empty level is a dead end)")
            return
        if len(raw) > 9:
            self.add(where, f"{len(raw)} options; at most 9 per level")
        seen: dict[str, str] = {}
        keys: list[tuple[str, str]] = []
        for i, item in enumerate(raw):
            label = f"{where}[{i + 1}]"
            if not isinstance(item, dict):
                self.add(label, "expected a mapping")
                continue
            key = str(item.get("key", "")).strip()
            name = item.get("label")
            named = f"{label} (key {key}" + (f" {name.strip()})" if isinstance(name, str)
                                              and name.strip() else ")")  # fmt: skip
            if key == "0":
                self.add(named, "key '0' is reserved for reaching a person")
            elif key not in KEYS:
                self.add(named, f"field 'key' must be one of 1-9, * or # (got {key!r})")
            elif key in seen:
                self.add(named, f"key {key!r} is used twice on this level (also {seen[key]})")
            else:
                seen[key] = label
                keys.append((key, name.strip() if isinstance(name, str) else ""))
            if not isinstance(name, str) or not name.strip():
                self.add(named, "field 'label' is missing or empty")
            self.option(item, named, depth)
        self.level_prompt(prompt, node, keys)

    def level_prompt(self, prompt: Any, node: str, keys: list[tuple[str, str]]) -> None:
        if prompt is None:
            return  # built from the labels: names every key and the person
        if not isinstance(prompt, str) or not prompt.strip():
            self.add(node, "field 'prompt' is empty: the caller would hear nothing (remove it"
                           " to use the prompt built from the labels)")  # fmt: skip
            return
        if not _PERSON.search(prompt):
            self.add(node, "the prompt never tells the caller how to reach a person"
                           " (add 人工服务请按零)")  # fmt: skip
        for key, name in keys:
            if f"按{key}" not in prompt and f"按{KEY_WORDS[key]}" not in prompt:
                self.add(node, f"the prompt does not mention key {key} ({name})")

    def option(self, item: dict[str, Any], where: str, depth: int) -> None:
        extra = sorted(set(map(str, item)) - {"key", "label", "prompt", *ACTIONS})
        if extra:
            self.add(where, f"unknown field {extra[0]!r}")
        actions = [a for a in ACTIONS if a in item]
        if len(actions) != 1:
            self.add(where, f"needs exactly one action of {', '.join(ACTIONS)}"
                            f" (got {', '.join(actions) or 'none'})")  # fmt: skip
            return
        action, value = actions[0], item[actions[0]]
        if "prompt" in item and action != "submenu":
            self.add(where, "field 'prompt' belongs to a submenu option only")
        if action == "submenu":
            if depth >= 2:
                self.add(where, "a submenu inside a submenu; menus have at most two levels")
            elif isinstance(value, str):
                if value not in self.named:
                    self.add(where, f"submenu {value!r} is not defined under 'submenus'")
                self.used.add(value)
                if "prompt" in item:
                    self.level_prompt(item["prompt"], where, [])
            else:
                self.level(value, f"{where}.submenu", depth + 1, item.get("prompt"), where)
        elif action == "intake" and value not in INTAKE_TYPES:
            self.add(where, f"field 'intake' must be one of {', '.join(INTAKE_TYPES)}"
                            f" (got {value!r})")  # fmt: skip
        elif action == "transfer" and value not in QUEUES:
            self.add(where, f"field 'transfer' must be a queue: {', '.join(QUEUES)}"
                            f" (got {value!r})")  # fmt: skip
        elif action == "ask" and (not isinstance(value, str) or not value.strip()):
            self.add(where, "field 'ask' is missing its prompt text (what the caller hears)")


def read_menu_text(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MenuError(f"{source}: not valid YAML{where}: {problem}") from exc


def load_menu(path: str | Path | None = None) -> Menu:
    if path is None:
        text = resources.files("bot").joinpath("data/menu.yaml").read_text(encoding="utf-8")
        source = "bot/data/menu.yaml"
    else:
        path = Path(path)
        if not path.is_file():
            raise MenuError(f"menu {path}: file not found")
        text, source = path.read_text(encoding="utf-8"), str(path)
    return parse_menu(read_menu_text(text, source), source)
