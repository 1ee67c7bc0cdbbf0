"""Start-up check of the bot's data: knowledge base, menu, prompts (``hotline check``)."""

from __future__ import annotations

from pathlib import Path

from hotline.cli import CommandError
from hotline.settings import Settings


def check_bot_data(settings: Settings) -> str:
    """The knowledge base, menu and prompts load (a missing or broken file is named)."""
    from bot.kb import KnowledgeBaseError, load_kb
    from bot.menu import load_menu
    from bot.prompts import load_prompts

    bot = settings.bot
    optional_files = {"bot.cues": bot.cues, "bot.gazetteer": bot.gazetteer,
                      "bot.synonyms": bot.synonyms}  # fmt: skip
    for setting, path in optional_files.items():
        if path is not None and not Path(path).is_file():
            raise CommandError(f"{setting} {path}: file not found: correct the path or remove it")
    if bot.corpus is not None and not Path(bot.corpus).is_dir():
        raise CommandError(f"bot.corpus {bot.corpus}: folder not found: correct it or remove it")
    try:
        kb = load_kb(bot.kb) if bot.kb is not None else None
    except KnowledgeBaseError as exc:
        raise CommandError(f"bot.kb: {exc}: correct the path or the file") from exc
    load_menu(bot.menu)  # MenuError / PromptsError: one line naming the file and the place
    load_prompts(bot.prompts)
    entries = f"{len(kb.entries)} knowledge-base entries" if kb else "sample knowledge base"
    return f"{entries}; menu and prompts load"
