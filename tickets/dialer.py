"""Click-to-call: how the console asks the phone system to ring a seat, then the citizen.

The telephony side implements :class:`Dialer` over Asterisk AMI (Originate the seat's
extension first, then bridge to the citizen's number). ``console.dialer`` in the settings
names a factory ``module:attribute`` that returns one, called with the settings.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class DialerError(Exception):
    """The call could not be placed; the message is shown to the operator."""


@runtime_checkable
class Dialer(Protocol):
    def originate(self, seat_extension: str, number: str, ticket_number: str) -> None:
        """Ring ``seat_extension``; when answered, call ``number``. Raise DialerError on failure."""


@dataclass
class RecordingDialer:
    """A dialer that places no call and remembers the requests.

    For tests and demos without a phone system: it is what the console uses when no
    dialer is configured and ``record_only`` was asked for explicitly.
    """

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def originate(self, seat_extension: str, number: str, ticket_number: str) -> None:
        with self._lock:
            self.calls.append((seat_extension, number, ticket_number))


def load_dialer(spec: str, settings: Any) -> Dialer | None:
    """Build the configured dialer (``package.module:factory``); None when none is set."""
    if not spec:
        return None
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise DialerError(f"console.dialer must be 'module:attribute', got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise DialerError(f"console.dialer {spec!r} cannot be loaded: {exc}") from exc
    dialer = factory(settings)
    if not isinstance(dialer, Dialer):
        raise DialerError(f"console.dialer {spec!r} did not return a Dialer")
    return dialer
