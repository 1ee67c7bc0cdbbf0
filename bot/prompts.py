"""Prompt wording (``bot/data/prompts.yaml``): named prompts managers may reword or record."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hotline.errors import UserFacingError

REQUIRED = (
    "greeting",
    "greeting_night",
    "listen_again",
    "rephrase",
    "not_understood_handover",
    "not_understood_night",
    "answer_followup",
    "goodbye",
    "emergency",
    "emergency_night",
    "abusive_warning",
    "abusive_end",
    "transfer",
    "human_night",
    "intake_start",
    "ask_what_happened",
    "ask_where",
    "ask_when",
    "ask_who_what",
    "ask_caller_wants",
    "ask_caller_name",
    "ask_callback_number",
    "ask_callback_digits",
    "readback",
    "ask_correction",
    "ask_correction_field",
    "ticket_created_day",
    "ticket_created_night",
    "silence",
    "silence_menu",
    "silence_end",
    "menu_invalid",
)


# Prompts added after cities wrote their own prompt files: a file without them still
# loads, and the shipped wording is used (see parse_prompts).
OPTIONAL = (
    "emergency_fire",
    "emergency_medical",
    "emergency_police",
    "emergency_traffic",
    "emergency_water",
    "emergency_check",
    "confirm_kb",
    "confirm_heard",
    "cannot_answer",
    "ask_again",
    "ask_where_area",
    "ask_where_spot",
    "ask_ticket_number",
    "ticket_status",
    "ticket_not_found",
    "readback_changed",
    "survey",
    "callback_registered",
)


class PromptsError(UserFacingError, ValueError):
    """A prompts file that lacks a prompt or is malformed."""


class Prompts:
    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def text(self, prompt_id: str, **values: str) -> str:
        text = self.texts[prompt_id]
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text


def load_prompts(path: str | Path | None = None) -> Prompts:
    if path is None:
        raw_text = resources.files("bot").joinpath("data/prompts.yaml").read_text(encoding="utf-8")
        source = "bot/data/prompts.yaml"
    else:
        path = Path(path)
        if not path.is_file():
            raise PromptsError(f"prompts {path}: file not found")
        raw_text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        raw: Any = yaml.safe_load(raw_text)
    except yaml.YAMLError as exc:
        raise PromptsError(f"{source}: not valid YAML: {exc}") from exc
    return parse_prompts(raw, source)


def parse_prompts(raw: Any, source: str = "prompts") -> Prompts:
    """Validate a mapping of prompt id to text (every required prompt present)."""
    if not isinstance(raw, dict):
        raise PromptsError(f"{source}: expected a mapping of prompt id to text")
    missing = [p for p in REQUIRED if not isinstance(raw.get(p), str) or not raw[p].strip()]
    if missing:
        raise PromptsError(f"{source}: prompt(s) missing or empty: {', '.join(missing)}")
    texts = {str(k): str(v) for k, v in raw.items()}
    missing_optional = [p for p in OPTIONAL if not str(texts.get(p) or "").strip()]
    if missing_optional:
        shipped = yaml.safe_load(
            resources.files("bot").joinpath("data/prompts.yaml").read_text(encoding="utf-8")
        )
        for prompt_id in missing_optional:
            texts[prompt_id] = str(shipped[prompt_id])
    return Prompts(texts)
