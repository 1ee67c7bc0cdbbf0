"""An idle media clock beside the bench: the machine's own share of late ticks.

Why: ``audio_underruns`` counts media-clock ticks more than 5 ms late. On a virtual
machine the host can take a vCPU away for tens of milliseconds, and no code of ours can
prevent that. This process keeps the media process's schedule (``ivr.rtp.TickSchedule``:
20 ms deadlines, the same 5 ms tolerance, the same real-time priority) and does nothing
else, so every tick it sees late is the platform's. ``hotline bench calls`` runs one
beside the calls and reports its count as ``platform_late_ticks``: an underrun count is
read against it (measured here: an idle probe 32.6 ms late in a run where the media
process was on time, and both ~33-37 ms late in another).

Run: ``python -m testkit.clock_probe``; it measures until its standard input closes,
then prints its figures as one JSON object.
"""

from __future__ import annotations

import json
import select
import sys
import time
from dataclasses import asdict

from ivr.rtp import ClockStats, TickSchedule, raise_thread_priority


def measure(stop_fd: int) -> ClockStats:
    """Wake at every 20 ms deadline until ``stop_fd`` becomes readable (closed or written)."""
    stats = ClockStats(scheduling=raise_thread_priority())
    schedule = TickSchedule(stats)
    while True:
        deadline = schedule.next_deadline()
        readable, _, _ = select.select([stop_fd], [], [], max(0.0, deadline - time.monotonic()))
        if readable:
            return stats
        schedule.arrived(active=True)


def main() -> int:
    stats = measure(sys.stdin.fileno())
    print(json.dumps(asdict(stats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
