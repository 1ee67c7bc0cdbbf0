"""Reconnect back-off (hotline.backoff): doubling up to a cap, jittered, reset on success."""

from __future__ import annotations

import random

from hotline.backoff import Backoff


def test_delays_double_up_to_the_cap_with_half_of_each_random() -> None:
    backoff = Backoff(first_s=1.0, cap_s=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base / 2 <= delay <= base
    assert len({round(d, 6) for d in delays[3:]}) == 3  # jittered: not all the same


def test_two_controllers_do_not_retry_in_the_same_instant() -> None:
    first = Backoff(rng=random.Random(1))
    second = Backoff(rng=random.Random(2))
    assert first.next_delay() != second.next_delay()


def test_a_connection_that_worked_starts_the_next_failure_from_the_first_delay() -> None:
    backoff = Backoff(first_s=1.0, cap_s=60.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0
