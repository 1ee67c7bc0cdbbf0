"""Password logins that guessing cannot wear down: back-off, locks, an audit trail.

Every wrong password counts against the account and against the client's address. Past
a few free attempts each further failure locks the account (or the address) for twice as
long as the last, up to ``console.login_lock_max_s``; while locked, logins are refused
with 429 without looking at the password, so a guess made during a lock is worth nothing
even when it is right. A successful login clears the account's count (not the address's:
an attacker with one valid account must not be able to wipe the count of its guesses).

The counts live in Redis with an expiry, so every console worker behind the proxy sees the
same ones. While Redis is away each worker counts on its own and says so in the log:
throttling weakens, it never silently stops.

Argon2 is slow on purpose (about 0.1 s of CPU a check). It runs on a few threads of its own,
with a short queue in front, so a flood of logins waits there (or is turned away with 503)
instead of taking the threads that serve every page.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.requests import Request

from hotline.logs import mask_name
from hotline.settings import ConsoleSettings
from tickets.accounts import Account, AccountStore

log = logging.getLogger("console.login")

# Entries the in-process fallback keeps at most: a flood from many addresses while Redis
# is down must not grow the console's memory without bound.
MEMORY_ENTRIES_MAX = 50_000
# Logins a hashing thread may have in hand (checking or queued) before new ones get 503.
WAITING_PER_WORKER = 8


class LoginLocked(Exception):
    """Too many wrong passwords for this account or from this address: try again later."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))

    @property
    def message(self) -> str:
        return f"登录失败次数过多，已暂时锁定，请在{wait_in_words(self.retry_after_s)}后重试"


class LoginBusy(Exception):
    """More logins are waiting for a password check than the console takes at once."""

    message = "登录请求过多，请稍后重试"


def wait_in_words(seconds: float) -> str:
    if seconds < 60:
        return f" {max(1, math.ceil(seconds))} 秒"
    return f" {math.ceil(seconds / 60)} 分钟"


@dataclass(frozen=True)
class Policy:
    account_free: int
    address_free: int
    base_s: float
    max_s: float
    window_s: float

    @classmethod
    def from_settings(cls, console: ConsoleSettings) -> Policy:
        return cls(
            account_free=console.login_free_attempts,
            address_free=console.login_address_free_attempts,
            base_s=console.login_lock_base_s,
            max_s=console.login_lock_max_s,
            window_s=console.login_window_s,
        )

    def lock_s(self, failures: int, free: int) -> float:
        """0 for the free attempts, then base, 2 x base, 4 x base ... up to the maximum."""
        beyond = failures - free
        if beyond <= 0:
            return 0.0
        return min(self.base_s * 2 ** min(beyond - 1, 40), self.max_s)


@dataclass(frozen=True)
class Counter:
    """One thing whose failures are counted: an account or a client address."""

    kind: str  # "account" | "address"
    key: str  # hashed: Redis holds no user names or addresses
    free: int


class MemoryCounters:
    """The same counts inside this process, for while Redis cannot be reached."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, forget at)
        self._locks: dict[str, float] = {}  # key -> locked until
        self._lock = threading.Lock()

    def locked_for(self, keys: list[str]) -> float:
        now = self.clock()
        with self._lock:
            return max((self._locks.get(k, now) - now for k in keys), default=0.0)

    def add_failure(self, key: str, window_s: float) -> int:
        now = self.clock()
        with self._lock:
            count, forget_at = self._failures.get(key, (0, now))
            count = count + 1 if forget_at > now else 1
            self._failures[key] = (count, now + window_s)
            self._bound(now)
            return count

    def lock(self, key: str, seconds: float) -> None:
        with self._lock:
            self._locks[key] = self.clock() + seconds

    def clear(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
                self._locks.pop(key, None)

    def _bound(self, now: float) -> None:
        if len(self._failures) + len(self._locks) <= MEMORY_ENTRIES_MAX:
            return
        self._failures = {k: v for k, v in self._failures.items() if v[1] > now}
        self._locks = {k: v for k, v in self._locks.items() if v > now}
        while len(self._failures) > MEMORY_ENTRIES_MAX // 2:  # oldest first (insertion order)
            self._failures.pop(next(iter(self._failures)))


class LoginThrottle:
    """Failure counts and locks per account and per address, shared through Redis."""

    def __init__(self, client: redis.Redis, prefix: str, policy: Policy) -> None:
        self.redis = client
        self.prefix = prefix
        self.policy = policy
        self.memory = MemoryCounters()
        self._redis_down = False

    @classmethod
    def beside(cls, queue_redis: redis.Redis, prefix: str, policy: Policy) -> LoginThrottle:
        """On the queue's Redis, with short timeouts and no retries: a login never waits
        long for Redis, it falls back to this process's counts instead."""
        pool = queue_redis.connection_pool
        own_pool = redis.ConnectionPool(  # same server, TLS or socket as the queue's
            connection_class=pool.connection_class,
            **{
                **pool.connection_kwargs,
                "socket_timeout": 0.5,
                "socket_connect_timeout": 0.5,
                "retry": Retry(NoBackoff(), 0),
            },
        )
        return cls(redis.Redis(connection_pool=own_pool), prefix, policy)

    def counters(self, username: str, address: str) -> list[Counter]:
        return [
            Counter("account", _digest(username.lower()), self.policy.account_free),
            Counter("address", _digest(address), self.policy.address_free),
        ]

    def _fail_key(self, counter: Counter) -> str:
        return f"{self.prefix}:login:fail:{counter.kind}:{counter.key}"

    def _lock_key(self, counter: Counter) -> str:
        return f"{self.prefix}:login:lock:{counter.kind}:{counter.key}"

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until this account may try from this address; 0 when it may now."""
        locks = [self._lock_key(c) for c in self.counters(username, address)]
        waits = [self.memory.locked_for(locks)]
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in locks:
                pipe.pttl(key)
            waits += [ms / 1000 for ms in pipe.execute() if ms > 0]
            self._redis_back()
        except redis.RedisError as exc:
            self._redis_lost(exc)
        return max(0.0, *waits)

    def failed(self, username: str, address: str) -> dict[str, tuple[int, float]]:
        """Counts one wrong password; per counter kind: (failures so far, lock set in s)."""
        outcome: dict[str, tuple[int, float]] = {}
        counters = self.counters(username, address)
        counts = self._count_in_redis(counters)
        for counter, count in zip(counters, counts, strict=True):
            seconds = self.policy.lock_s(count, counter.free)
            if seconds > 0:
                self._lock(counter, seconds)
            outcome[counter.kind] = (count, seconds)
        return outcome

    def succeeded(self, username: str) -> None:
        account = self.counters(username, "")[0]
        keys = [self._fail_key(account), self._lock_key(account)]
        self.memory.clear(keys)
        try:
            self.redis.delete(*keys)
        except redis.RedisError as exc:
            self._redis_lost(exc)

    def _count_in_redis(self, counters: list[Counter]) -> list[int]:
        window_ms = int(self.policy.window_s * 1000)
        try:
            pipe = self.redis.pipeline(transaction=True)
            for counter in counters:
                pipe.incr(self._fail_key(counter))
                pipe.pexpire(self._fail_key(counter), window_ms)
            replies = pipe.execute()
            self._redis_back()
            return [int(n) for n in replies[::2]]
        except redis.RedisError as exc:
            self._redis_lost(exc)
            return [
                self.memory.add_failure(self._fail_key(c), self.policy.window_s) for c in counters
            ]

    def _lock(self, counter: Counter, seconds: float) -> None:
        key = self._lock_key(counter)
        try:
            self.redis.set(key, "1", px=max(1, int(seconds * 1000)))
        except redis.RedisError as exc:
            self._redis_lost(exc)
            self.memory.lock(key, seconds)

    def _redis_lost(self, exc: Exception) -> None:
        if not self._redis_down:
            self._redis_down = True
            log.error(
                "login throttling: Redis unreachable (%s); counting failed logins in this "
                "process only until it returns",
                type(exc).__name__,
                extra={"event": "login_throttle_degraded"},
            )

    def _redis_back(self) -> None:
        if self._redis_down:
            self._redis_down = False
            log.warning(
                "login throttling: Redis reachable again; counts are shared again",
                extra={"event": "login_throttle_restored"},
            )


class PasswordChecks:
    """Argon2 on its own few threads with a short queue in front of them."""

    def __init__(self, accounts: AccountStore, workers: int) -> None:
        self.accounts = accounts
        self.workers = workers
        self.max_waiting = workers * WAITING_PER_WORKER
        self._executor: ThreadPoolExecutor | None = None
        self._waiting = 0
        self._lock = threading.Lock()

    async def authenticate(self, username: str, password: str) -> Account | None:
        """The account when the password is right; every name costs one argon2 check."""
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise LoginBusy
            self._waiting += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="login-hash")
            executor = self._executor
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                executor, self.accounts.authenticate, username, password
            )
        finally:
            with self._lock:
                self._waiting -= 1

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class LoginGuard:
    """The one way in by password, for the login page and the API's token alike."""

    def __init__(self, throttle: LoginThrottle, passwords: PasswordChecks) -> None:
        self.throttle = throttle
        self.passwords = passwords

    async def sign_in(self, username: str, password: str, address: str) -> Account | None:
        """The account, or None for a wrong name or password.

        Raises LoginLocked (nothing was checked) or LoginBusy (too many checks waiting).
        """
        who = {"user_name": mask_name(username), "client": address}
        wait = await asyncio.to_thread(self.throttle.retry_after, username, address)
        if wait > 0:
            log.info(
                "login refused while locked: %s from %s, %.0f s left",
                who["user_name"],
                address,
                wait,
                extra={"event": "login_refused", **who},
            )
            raise LoginLocked(wait)
        account = await self.passwords.authenticate(username, password)
        if account is None:
            await asyncio.to_thread(self._record_failure, username, address, who)
            return None
        await asyncio.to_thread(self.throttle.succeeded, username)
        log.info(
            "login: %s from %s",
            who["user_name"],
            address,
            extra={"event": "login_ok", **who},
        )
        return account

    def _record_failure(self, username: str, address: str, who: dict[str, str]) -> None:
        outcome = self.throttle.failed(username, address)
        account_failures, account_lock = outcome["account"]
        address_failures, address_lock = outcome["address"]
        log.warning(
            "login failed: %s from %s (%d wrong for the account, %d from the address)",
            who["user_name"],
            address,
            account_failures,
            address_failures,
            extra={"event": "login_failed", **who},
        )
        lock = max(account_lock, address_lock)
        if lock > 0:
            locked = "account" if account_lock >= address_lock else "address"
            log.warning(
                "login locked: %s from %s, %s locked for %.0f s",
                who["user_name"],
                address,
                locked,
                lock,
                extra={"event": "login_locked", "locked": locked, **who},
            )

    def close(self) -> None:
        self.passwords.close()
        self.throttle.redis.connection_pool.disconnect()  # reconnects if the app restarts


def client_address(host: str | None) -> str:
    """The address counted for throttling; IPv6 by its /64, which one subscriber holds."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def request_address(request: Request) -> str:
    """The browser's address: the proxy's X-Forwarded-For is already applied when the
    proxy is trusted (see console.security)."""
    return client_address(request.client.host if request.client else None)
