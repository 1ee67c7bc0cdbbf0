"""Re-render prompts in the background (between calls, never while a caller waits).

:class:`RenderJob` renders, in one thread, every text a call may say whose cached audio
is missing (changed wording, new knowledge-base answers, menu levels); the console polls
``progress()``. One job at a time per process; starting another while one runs returns
the running one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from voice.prompts import PromptLibrary, content_key


@dataclass
class RenderProgress:
    total: int = 0
    done: int = 0
    rendered: int = 0
    errors: list[str] = field(default_factory=list)
    running: bool = False
    started: float = 0.0
    finished: float = 0.0

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.done / self.total)


def missing_texts(library: PromptLibrary, texts: list[str]) -> list[str]:
    """Texts whose audio is not cached for the engine in use."""
    engine = library.fixed_engine()
    out = []
    for text in dict.fromkeys(t for t in texts if t.strip()):
        key = content_key(engine.name, engine.voice, text)
        if not (library.cache_dir / f"{key}.wav").is_file():
            out.append(text)
    return out


class RenderJob:
    def __init__(self, library: PromptLibrary) -> None:
        self.library = library
        self.progress = RenderProgress()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, texts: list[str]) -> RenderProgress:
        with self._lock:
            if self.progress.running:
                return self.progress
            todo = missing_texts(self.library, texts)
            self.progress = RenderProgress(total=len(todo), running=True, started=time.time())
            self._thread = threading.Thread(
                target=self._run, args=(todo, self.progress), name="prompt-render", daemon=True
            )
            self._thread.start()
            return self.progress

    def wait(self, timeout: float = 60.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, todo: list[str], progress: RenderProgress) -> None:
        for text in todo:
            try:
                self.library.render_public(text)
                progress.rendered += 1
            except Exception as exc:  # one failed prompt must not stop the others
                progress.errors.append(f"{text[:30]}: {exc}")
            progress.done += 1
        progress.running = False
        progress.finished = time.time()


def spoken_texts(prompts: dict[str, str], menu: Any, kb_answers: list[str]) -> list[str]:
    """Everything a call may say that can be rendered ahead: fixed prompts (without
    placeholders), every menu level, the menu's ask prompts, knowledge-base answers."""
    texts = [t for t in prompts.values() if "{" not in t]
    if menu is not None:
        texts.append(menu.spoken(menu.options))
        for option in menu.options:
            if option.submenu:
                texts.append(menu.spoken(option.submenu))
            if option.action == "ask":
                texts.append(option.value)
    return [*texts, *kb_answers]
