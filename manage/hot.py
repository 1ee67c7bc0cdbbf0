"""Hot topics (未诉先办): similar tickets of the last days grouped, growing clusters flagged.

Similar = same topic at the same place. The place is the gazetteer's district, street and
community when the bot recognised them (a blocked fire lane concerns a whole estate, not
one building), else the spoken place, folded; spoken places of one topic that differ only
a little (海甸五西路28号 / 海甸五西路二十八号旁边) are merged by fuzzy similarity (rapidfuzz).
A cluster grows when its tickets of the latest ``recent_hours`` outnumber those of the
``recent_hours`` before: the manager acts before more people call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import select

from tickets.models import TicketRow
from tickets.store import place_key

SIMILAR_PLACE = 80  # rapidfuzz ratio at which two spoken places are taken as one


@dataclass
class Cluster:
    topic: str
    place: str
    key: str
    tickets: list[tuple[str, datetime, str]] = field(default_factory=list)  # number, at, summary
    recent: int = 0
    previous: int = 0

    @property
    def count(self) -> int:
        return len(self.tickets)

    @property
    def growing(self) -> bool:
        return self.recent > self.previous and self.recent >= 2


def _place(elements: dict[str, Any]) -> tuple[str, str]:
    address = elements.get("address") or {}
    parts = [str(address.get(k) or "") for k in ("district", "street", "community")]
    if parts[2] or parts[1]:
        text = "".join(parts)
        return text, "g:" + place_key(text)
    spoken = str(elements.get("where") or address.get("detail") or "")
    return spoken, "s:" + place_key(spoken)


def hot_topics(
    store: Any,
    now: datetime | None = None,
    days: int = 7,
    recent_hours: int = 24,
    min_size: int = 3,
) -> list[Cluster]:
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    with store.reading() as s:
        rows = s.execute(
            select(
                TicketRow.number,
                TicketRow.created_at,
                TicketRow.topic,
                TicketRow.elements,
                TicketRow.summary,
            )
            .where(
                TicketRow.created_at >= since, TicketRow.created_at <= now, TicketRow.topic != ""
            )
            .order_by(TicketRow.created_at)
        ).all()
    clusters: dict[tuple[str, str], Cluster] = {}
    for number, created, topic, elements, summary in rows:
        text, key = _place(elements or {})
        if len(key) <= 2:
            continue  # no place: cannot say where to act
        cluster = clusters.get((topic, key)) or _similar(clusters, topic, key)
        if cluster is None:
            cluster = clusters[(topic, key)] = Cluster(topic, text, key)
        cluster.tickets.append((number, created, summary))
        age = now - created
        if age <= timedelta(hours=recent_hours):
            cluster.recent += 1
        elif age <= timedelta(hours=2 * recent_hours):
            cluster.previous += 1
    found = [c for c in clusters.values() if c.count >= min_size]
    return sorted(found, key=lambda c: (not c.growing, -c.recent, -c.count, c.topic))


def _similar(clusters: dict[tuple[str, str], Cluster], topic: str, key: str) -> Cluster | None:
    if not key.startswith("s:"):
        return None
    for (other_topic, other_key), cluster in clusters.items():
        if (
            other_topic == topic
            and other_key.startswith("s:")
            and fuzz.ratio(key[2:], other_key[2:]) >= SIMILAR_PLACE
        ):
            return cluster
    return None
