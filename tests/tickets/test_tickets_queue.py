"""The seat queue against a real Redis: order, no duplicates, abandoned claims come back."""

from __future__ import annotations

import threading
import time

import pytest

from tickets.queue import SeatQueue


def test_enqueue_is_idempotent_and_ack_removes(queue: SeatQueue) -> None:
    assert queue.enqueue("20261122-0001", "general")
    assert not queue.enqueue("20261122-0001", "general")
    assert not queue.enqueue("20261122-0001", "real_estate", urgent=True)
    assert [e.ticket for e in queue.waiting()] == ["20261122-0001"]
    entry = queue.claim("seat-1")
    assert entry is not None and entry.ticket == "20261122-0001"
    assert queue.claim("seat-2") is None
    assert queue.ack("20261122-0001")
    assert not queue.ack("20261122-0001")
    assert queue.entries() == [] and not queue.is_queued("20261122-0001")
    assert queue.enqueue("20261122-0001", "general")  # may come back after being handled


def test_urgent_first_then_oldest_first_within_the_seat_skills(queue: SeatQueue) -> None:
    queue.enqueue("n1", "general")
    queue.enqueue("n2", "social_insurance")
    queue.enqueue("n3", "general")
    queue.enqueue("u1", "general", urgent=True)
    order = []
    while (entry := queue.claim("seat-1", ["general"])) is not None:
        order.append(entry.ticket)
    assert order == ["u1", "n1", "n3"]
    social = queue.claim("seat-2", ["social_insurance"])
    assert social is not None and social.ticket == "n2"


def test_unknown_skill_is_refused(queue: SeatQueue) -> None:
    from tickets.queue import QueueError

    with pytest.raises(QueueError):
        queue.enqueue("x", "astrology")


def test_two_seats_claiming_at_once_never_share_a_ticket(queue: SeatQueue) -> None:
    numbers = [f"20261122-{i:04d}" for i in range(200)]
    for n in numbers:
        queue.enqueue(n, "general", urgent=n.endswith("7"))
    got: dict[str, list[str]] = {"a": [], "b": []}

    def seat(name: str) -> None:
        other = SeatQueue.from_url(_url(queue), queue.skills, prefix=queue.prefix, claim_idle_s=60)
        while (entry := other.claim(name)) is not None:
            got[name].append(entry.ticket)

    threads = [threading.Thread(target=seat, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == numbers


def _url(queue: SeatQueue) -> str:
    kw = queue.redis.connection_pool.connection_kwargs
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def test_a_silent_seat_loses_its_claim_and_a_live_one_keeps_it(queue: SeatQueue) -> None:
    queue.enqueue("silent", "general")
    queue.enqueue("alive", "general")
    assert queue.claim("seat-a").ticket == "silent"  # type: ignore[union-attr]
    assert queue.claim("seat-b").ticket == "alive"  # type: ignore[union-attr]
    assert queue.claim("seat-c") is None  # both are held
    for _ in range(4):
        time.sleep(0.12)
        assert queue.touch("seat-b", ["alive"]) == 1
    # 0.48 s later: seat-a said nothing for longer than claim_idle (0.3 s), seat-b kept touching.
    assert [e.ticket for e in queue.waiting()] == ["silent"]
    taken = queue.claim("seat-c")
    assert taken is not None and taken.ticket == "silent"
    assert queue.claim("seat-c") is None
    assert {e.ticket: e.seat for e in queue.entries()} == {"silent": "seat-c", "alive": "seat-b"}


def test_release_gives_the_ticket_to_the_next_seat_at_once(queue: SeatQueue) -> None:
    queue.enqueue("t1", "general")
    assert queue.claim("seat-a").ticket == "t1"  # type: ignore[union-attr]
    assert queue.release("t1")
    entry = queue.claim("seat-b")
    assert entry is not None and entry.ticket == "t1"


def test_take_over_hands_one_ticket_to_a_seat_without_later_redelivery(queue: SeatQueue) -> None:
    for n in ("a", "b", "c"):
        queue.enqueue(n, "general")
    assert queue.take_over("seat-9", "b")
    assert [e.ticket for e in queue.held_by("seat-9")] == ["b"]
    claimed = []
    while (entry := queue.claim("seat-1")) is not None:
        claimed.append(entry.ticket)
    assert claimed == ["a", "c"]  # b is never handed out twice
    assert queue.ack("a") and queue.ack("c")
    assert queue.touch("seat-9", ["b"]) == 1
    assert queue.return_abandoned() == []
    time.sleep(0.4)
    assert queue.return_abandoned() == ["b"]  # seat-9 went silent
    again = queue.claim("seat-1")
    assert again is not None and again.ticket == "b"
    assert queue.ack("b") and not queue.is_queued("b")


def test_lost_consumer_groups_are_recreated(queue: SeatQueue) -> None:
    queue.enqueue("t1", "general")
    queue.redis.delete(queue.stream("general", "normal"))  # as if Redis lost the stream
    queue.redis.hdel(f"{queue.prefix}:queued", "t1")
    assert queue.claim("seat-1") is None
    assert queue.enqueue("t1", "general")
    assert queue.claim("seat-1").ticket == "t1"  # type: ignore[union-attr]
