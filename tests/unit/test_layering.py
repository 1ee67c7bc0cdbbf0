"""The packages depend one way (docs/architecture.md):

    hotline  <-  asr, bot, tickets, voice  <-  ivr, manage  <-  console, testkit  <-  ops

A package may import its own layer's base (``hotline``) and anything below it, never a
package of its own layer or above: the bot stays pure logic, telephony knows nothing of
the managers' tools, the console never reaches into the call path's composition root.
``testkit`` (bench, sipp callers, replayed AMI, the in-process stack) drives the call path
from above it; only ``ops`` and the tests use it, so no runtime package depends on test
support.
Every ``import`` statement is read (at module level and inside functions alike), so a
lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS: list[tuple[str, ...]] = [
    ("hotline",),
    ("asr", "bot", "tickets", "voice"),
    ("ivr", "manage"),
    ("console", "testkit"),
    ("ops",),
]
LEVEL = {package: level for level, group in enumerate(LAYERS) for package in group}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import of one of the project's packages."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [(node.lineno, name) for name in names if name.split(".")[0] in LEVEL]
    return found


def violations(package: str) -> list[str]:
    own = LEVEL[package]
    wrong = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in imported_packages(path):
            target = module.split(".")[0]
            if target != package and LEVEL[target] >= own:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return wrong


@pytest.mark.parametrize("package", sorted(LEVEL))
def test_package_imports_only_the_layers_below(package: str) -> None:
    assert violations(package) == []


def test_every_package_of_the_project_has_a_layer() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages - {"tests"} == set(LEVEL)


def test_a_wrong_import_is_found(tmp_path: Path) -> None:
    """The checker itself: an import against the layering, even inside a function."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from console.app import create_app\n    import bot.kb\n")
    assert imported_packages(module) == [(2, "console.app"), (3, "bot.kb")]
