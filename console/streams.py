"""How many live event streams (``/events``) one login session may hold open.

Each stream holds a Redis subscription and a server task for as long as it is open, so
one session (a stolen cookie, a script) must not open them without end. The count lives in
Redis, not in the process, because any number of consoles serve the same sessions behind
a proxy (docs/deploy.md).

When the session already has its streams, the new one is refused (429) rather than the
oldest closed: a browser's EventSource reconnects by itself, so closing the oldest would
make a user's open tabs evict each other in a loop, while a refused tab just stays quiet
(console.js tries it again later). A stream that ends releases its place; one whose
console died without saying so stops counting once it has not been seen for
``stale_after_s`` (each open stream re-announces itself every ``heartbeat_s``).
"""

from __future__ import annotations

import hashlib
import uuid

import redis.asyncio as aioredis

# KEYS[1] the session's sorted set (member: stream id, score: last seen, Redis clock).
# ARGV: limit, stream id, stale after (s), key lifetime (s). Returns 1 when admitted.
_ADMIT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
_SEEN = """
redis.call('ZADD', KEYS[1], tonumber(redis.call('TIME')[1]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class StreamSlots:
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        per_session: int,
        heartbeat_s: float = 10.0,
        stale_after_s: int = 30,
    ) -> None:
        self.redis, self.prefix, self.per_session = redis, prefix, per_session
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s

    def _key(self, session_token: str) -> str:
        # The token's hash, as the database keeps it: Redis never holds a usable token.
        digest = hashlib.sha256(session_token.encode()).hexdigest()[:32]
        return f"{self.prefix}:streams:{digest}"

    async def admit(self, session_token: str) -> str | None:
        """A new stream's id, or None when the session already has its streams open."""
        stream = uuid.uuid4().hex
        admitted = await self.redis.eval(
            _ADMIT,
            1,
            self._key(session_token),
            self.per_session,
            stream,
            self.stale_after_s,
            self.stale_after_s * 2,
        )
        return stream if admitted == 1 else None

    async def seen(self, session_token: str, stream: str) -> None:
        await self.redis.eval(_SEEN, 1, self._key(session_token), stream, self.stale_after_s * 2)

    async def release(self, session_token: str, stream: str) -> None:
        await self.redis.zrem(self._key(session_token), stream)
