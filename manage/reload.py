"""Hot reload for controller nodes: new configuration versions between calls, never mid-call.

A controller process runs one :class:`ConfigWatcher`::

    config = ConfigStore(TicketStore.from_settings(settings), settings)
    watcher = ConfigWatcher.start_for(config, settings)     # materialises, subscribes
    cache = watcher.cache                                    # a bot.brain.BrainCache
    # at each call start:
    dialogue = Dialogue(cache.current())                     # this call keeps this brain
    ...
    watcher.stop()

On every message on ``<key_prefix>:config`` (and every ``sync_every_s`` as a safety net
for messages lost while Redis was away) it writes the newest versions to this node's
files and calls ``cache.refresh()``. ``cache.current()`` then hands the new brain to the
next call; a call in progress holds its own reference to the old brain and its
``Dialogue`` never looks at the cache again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import redis

from bot.brain import BrainCache
from hotline.settings import Settings
from manage.config import ConfigStore, channel

log = logging.getLogger(__name__)


class ConfigWatcher:
    def __init__(
        self,
        config: ConfigStore,
        cache: BrainCache,
        redis_url: str,
        channel_name: str,
        sync_every_s: float = 60.0,
    ) -> None:
        self.config = config
        self.cache = cache
        self.redis_url = redis_url
        self.channel = channel_name
        self.sync_every_s = sync_every_s
        self.reloads = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def start_for(
        cls,
        config: ConfigStore,
        settings: Settings,
        sync_every_s: float = 60.0,
        redis_url: str | None = None,
    ) -> ConfigWatcher:
        """``redis_url``: the Redis the process really uses (an embedded one when the
        configured one does not answer); default ``settings.tickets.redis_url``."""
        config.seed()
        config.materialise()
        cache = BrainCache(config.bot_paths(), check_every=3600.0)  # refreshed on messages
        url = redis_url or settings.tickets.redis_url
        watcher = cls(config, cache, url, channel(settings), sync_every_s)
        watcher.start()
        return watcher

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="config-watcher", daemon=True)
        self._thread.start()

    def wait_subscribed(self, timeout: float = 5.0) -> bool:
        return self._subscribed.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def sync(self) -> None:
        """Materialise the newest versions and let the next call use them."""
        try:
            self.config.materialise()
            before = self.cache.version
            self.cache.refresh()
            if self.cache.version != before:
                self.reloads += 1
                log.info("configuration reloaded (brain version %d)", self.cache.version)
            if self.cache.last_error:
                log.error(
                    "new configuration does not load; keeping the last good one: %s",
                    self.cache.last_error,
                )
        except Exception as exc:  # the database away: calls go on with what they have
            self.last_error = str(exc)
            log.warning("configuration sync failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            client: Any = None
            try:
                client = redis.Redis.from_url(
                    self.redis_url, socket_timeout=None, socket_connect_timeout=5
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self._subscribed.set()
                self.sync()  # anything saved while we were not listening
                waited = 0.0
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    waited += 0.5
                    if message is not None or waited >= self.sync_every_s:
                        waited = 0.0
                        self.sync()
            except redis.RedisError as exc:
                self._subscribed.clear()
                log.warning("configuration channel unavailable (%s); retrying", exc)
                self.sync()
                self._stop.wait(2.0)
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
