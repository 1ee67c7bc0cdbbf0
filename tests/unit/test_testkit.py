"""testkit takes its fixtures as parameters, and the sipp scenarios it writes hold together."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

from testkit.callers import Caller, bye_answered

REPO = Path(__file__).resolve().parents[2]


def _code_strings(path: Path) -> list[str]:
    """String constants of a module's code (docstrings left out: they may name defaults)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_testkit_reaches_for_no_fixture_of_its_own() -> None:
    """The recorded callers and the sample knowledge base in ../shared are the ops commands'
    defaults (ops/shared.py); testkit is handed them."""
    found = [
        f"{path.relative_to(REPO)}: {text!r}"
        for path in sorted((REPO / "testkit").rglob("*.py"))
        for text in _code_strings(path)
        if "shared/" in text
    ]
    assert found == []


def test_the_checker_sees_a_path_in_code_but_not_in_a_docstring(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""Reads ../shared/eval."""\nKB = "../shared/eval/kb.yaml"\n')
    assert _code_strings(module) == ["../shared/eval/kb.yaml"]


def _jumps_and_labels(scenario: str) -> tuple[set[str], set[str]]:
    root = ET.fromstring(scenario.encode())
    labels = {str(label.get("id")) for label in root.iter("label")}
    jumps = {str(e.get(attr)) for e in root.iter() for attr in ("next", "ontimeout") if e.get(attr)}
    return jumps, labels


def test_hang_up_unless_bye_takes_either_path_to_a_label_that_exists() -> None:
    scenario = Caller(4000).wait(100).key("5").hang_up_unless_bye(7000).scenario()
    jumps, labels = _jumps_and_labels(scenario)
    assert jumps == {"caller_bye", "done"} <= labels
    root = ET.fromstring(scenario.encode())
    wait = next(e for e in root.iter("recv") if e.get("request") == "BYE")
    assert (wait.get("timeout"), wait.get("ontimeout")) == ("7000", "caller_bye")
    sent = [e.text or "" for e in root.iter("send")]
    assert any(text.lstrip().startswith("BYE sip:") for text in sent)  # the caller's own BYE


def test_expect_bye_answers_the_bye_and_fails_the_call_without_one() -> None:
    root = ET.fromstring(Caller(4000).expect_bye(1234).scenario().encode())
    wait = next(e for e in root.iter("recv") if e.get("request") == "BYE")
    assert (wait.get("timeout"), wait.get("ontimeout")) == ("1234", None)
    assert (root.findall("send")[-1].text or "").lstrip().startswith("SIP/2.0 200 OK")


def test_bye_answered_is_a_fragment_a_phone_can_embed() -> None:
    """tests/asterisk/peers.py puts it inside its own scenario: no placeholder left."""
    fragment = bye_answered(60000)
    assert "{" not in fragment
    root = ET.fromstring(f"<scenario>{fragment}</scenario>".encode())
    assert [e.tag for e in root] == ["recv", "send"]


def test_the_clock_probe_counts_ticks_until_told_to_stop() -> None:
    """``hotline bench calls`` reads underruns against this idle clock's own late ticks."""
    import json
    import subprocess
    import sys
    import time

    started = time.monotonic()
    probe = subprocess.Popen(
        [sys.executable, "-m", "testkit.clock_probe"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)
    out, _ = probe.communicate("", timeout=10)  # closing its input stops it
    elapsed = time.monotonic() - started
    figures = json.loads(out)
    assert probe.returncode == 0
    # One tick per 20 ms from when it started (Python's start-up comes off the front).
    assert 10 <= figures["ticks"] <= elapsed / 0.02 + 1
    assert 0 <= figures["late_ticks"] <= figures["ticks"]
    assert figures["scheduling"]  # what priority it got is part of the figure
