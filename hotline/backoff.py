"""Reconnect back-off with jitter, shared by the SIP registration and the AMI client.

Hand-written rather than tenacity: those loops run for the life of the process and start
over after every connection that lasted (``reset``), which a retry decorator around one
call does not express. Jitter ("equal jitter": half the delay fixed, half random) keeps a
site's controllers from reconnecting to a restarted Asterisk in the same instant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    first_s: float = 1.0
    cap_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    _next_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._next_s = self.first_s

    def next_delay(self) -> float:
        """The delay before the next attempt; each failure doubles it, up to ``cap_s``."""
        base = self._next_s
        self._next_s = min(self._next_s * 2, self.cap_s)
        return base / 2 + self.rng.uniform(0, base / 2)

    def reset(self) -> None:
        """The connection worked: the next failure starts from ``first_s`` again."""
        self._next_s = self.first_s
