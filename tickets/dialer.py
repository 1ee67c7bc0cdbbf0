"""Click-to-call: how the console asks the phone system to ring a seat, then the citizen.

:class:`ivr.dialer.AmiDialer` implements :class:`Dialer` over Asterisk AMI: Originate rings the
operator's seat phone (``PJSIP/seat-101``), and when it answers the dialplan's
``[hotline-callback]`` dials the citizen. ``console.dialer`` in the settings names a
factory ``module:attribute`` called with the settings; ``ivr.dialer:ami_dialer``
builds an AmiDialer from ``ami.url`` alone, with an AMI connection of its own (the AMI
client is telephony, ``ivr``: tickets only define what a dialer is).

The seat: an operator's account holds their phone's PJSIP endpoint name (``hotline users
add NAME --seat seat-101``), the same name the queue's AgentConnect screen pop carries.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hotline.settings import Settings

log = logging.getLogger(__name__)


class DialerError(Exception):
    """The call could not be placed; the message is shown to the operator."""


@runtime_checkable
class Dialer(Protocol):
    def originate(self, seat: str, number: str, ticket_number: str) -> None:
        """Ring the operator's ``seat``; when answered, call ``number``. Raise DialerError
        (its message is shown to the operator) on failure."""


@dataclass
class RecordingDialer:
    """A dialer that places no call and remembers the requests.

    For tests and demos without a phone system: it is what the console uses when no
    dialer is configured and ``record_only`` was asked for explicitly.
    """

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def originate(self, seat: str, number: str, ticket_number: str) -> None:
        with self._lock:
            self.calls.append((seat, number, ticket_number))


def load_dialer(spec: str, settings: Settings) -> Dialer | None:
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


def seat_channel(seat: str) -> str:
    """The channel Originate rings for an operator's seat: ``seat-101`` -> ``PJSIP/seat-101``;
    a full channel (``PJSIP/x``, ``SIP/x``) as given; an account made with the old
    ``--extension 101`` (digits only) -> ``PJSIP/seat-101``, telephony_config's naming."""
    if "/" in seat:
        return seat
    return f"PJSIP/seat-{seat}" if seat.isdigit() else f"PJSIP/{seat}"
