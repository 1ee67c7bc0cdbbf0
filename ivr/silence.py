"""The silence timer of a call: after the bot's ``Listen``, no speech or key for its
timeout becomes ``SilenceTimeout`` for the bot to decide on (re-prompt, menu, goodbye)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class _Handle(Protocol):
    def cancel(self) -> None: ...


class _Clock(Protocol):
    """What the timer needs of the event loop (a fake clock in tests)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Handle: ...


class SilenceTimer:
    def __init__(self, clock: _Clock, cap_s: float, on_silence: Callable[[], None]) -> None:
        self.clock = clock
        self.cap_s = cap_s  # the deployment's ivr.silence_timeout_s
        self.on_silence = on_silence
        self._handle: _Handle | None = None

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def arm(self, asked_s: float | None = None) -> None:
        """Start over: the bot asks for its timeout, the deployment's setting caps it."""
        self.cancel()
        timeout = self.cap_s if asked_s is None else min(self.cap_s, asked_s)
        self._handle = self.clock.call_later(timeout, self._expired)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expired(self) -> None:
        self._handle = None
        self.on_silence()
