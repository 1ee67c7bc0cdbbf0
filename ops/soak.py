"""``hotline bench soak``: calls driven by sipp for a given time; nothing may be lost.

Every call that the bot turned into a work order must be in the ticket store with its
call id when the run ends: ``lost`` counts those that are not.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from hotline.settings import Settings
from testkit.stack import Stack, clips_from, redis_url_for, stack_settings, tally


async def soak(
    settings: Settings,
    *,
    minutes: float,
    concurrency: int,
    audio: Path,
    kb: Path | None,
    engine: str,
    embedded_redis: bool = False,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hotline-soak-") as tmp:
        work = Path(tmp)
        with redis_url_for(settings, work, embedded_redis) as url:
            stack = Stack(stack_settings(settings, work / "var", url, f"soak{int(time.time())}"),
                          engine_name=engine, kb=kb, max_calls=concurrency + 4)  # fmt: skip
            clips = clips_from(audio, work)
            await stack.start()
            try:
                return await _drive(stack, clips, work, minutes, concurrency)
            finally:
                assert stack.service is not None
                await asyncio.to_thread(stack.service.queue.drop_all)
                await stack.stop()


async def _drive(
    stack: Stack, clips: list[Any], work: Path, minutes: float, concurrency: int
) -> dict[str, Any]:
    deadline = time.monotonic() + minutes * 60
    numbers = (f"1380{i:07d}" for i in itertools.count())
    results: dict[str, int] = {}
    # Mixed from the start: consultations, complaints, transfers in every minute.
    mixed = list(clips)
    random.Random(12345).shuffle(mixed)
    clip_cycle = itertools.cycle(mixed)

    async def caller_loop() -> None:
        while time.monotonic() < deadline:
            number = next(numbers)
            results[number] = await stack.call(next(clip_cycle), number, work)

    loops = []
    for _ in range(concurrency):
        loops.append(asyncio.create_task(caller_loop()))
        await asyncio.sleep(0.1)  # calls arrive spread out, not in one burst
    await asyncio.gather(*loops)
    await stack.settle()
    return await asyncio.to_thread(tally, stack, results)
