"""Fixtures shared by the ticket and console tests: real SQL databases and a real Redis.

SQLite runs in a temporary file; PostgreSQL in a database created for the test session on
127.0.0.1:5432 (``HOTLINE_TEST_PG`` overrides the server URL). Redis is the machine's
127.0.0.1:6379 (``HOTLINE_TEST_REDIS``) with a key prefix per test, or a private
redis-server when none answers.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from hotline.draft import Address, Caller, FiveElements, RequestType, TicketDraft, TranscriptLine
from hotline.settings import Settings, TicketsSettings
from tickets.db import make_engine
from tickets.models import Base
from tickets.queue import SeatQueue
from tickets.redis_embedded import EmbeddedRedis, reachable
from tickets.service import TicketService
from tickets.store import TicketStore

PG_SERVER = os.environ.get("HOTLINE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_SERVER = os.environ.get("HOTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")
SKILLS = {
    "general": "综合",
    "social_insurance": "社保",
    "real_estate": "不动产",
    "business": "营商环境",
}


_CALLS = itertools.count(1)


def make_draft(i: int = 0, **changes: object) -> TicketDraft:
    draft = TicketDraft(
        type=RequestType.COMPLAINT,
        topic="夜间施工噪音",
        department="市城市管理局",
        elements=FiveElements(
            where=f"美兰区海甸五西路{i}号",
            when="每天晚上十一点以后",
            who_what="建筑工地",
            what_happened="工地夜间施工，噪音很大",
            caller_wants="要求停止夜间施工",
            address=Address(district="美兰区", street="海甸五西路", building=f"{i}号"),
        ),
        caller=Caller(number="13907551234", name="王先生"),
        summary="工地夜间施工扰民",
        handover_reason="投诉需人工登记",
        call_id=f"call-{i}-{next(_CALLS)}",  # each draft its own call (filing is per call)
        menu_path=["main", "complaint"],
        dtmf="2",
        kb_answers=["kb-noise-01"],
        transcript=[TranscriptLine(speaker="caller", text="工地晚上施工太吵了", confidence=0.9)],
    )
    return TicketDraft.model_validate({**dict(draft), **changes})


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"hotline_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}: {exc.orig}")
    url = make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tickets.db'}"
    url: str = request.getfixturevalue("pg_server_url")
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tickets.db'}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if reachable(REDIS_SERVER):
        yield REDIS_SERVER
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def key_prefix(redis_server: str) -> Iterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_server)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def make_settings(
    data_dir: Path, database_url: str, redis_url: str, prefix: str, **tickets: object
) -> Settings:
    cfg = TicketsSettings(
        database_url=database_url,
        redis_url=redis_url,  # type: ignore[call-arg]
        key_prefix=prefix,
        skills=SKILLS,
        embedded_redis="never",
    )
    return Settings(data_dir=data_dir, tickets=cfg.model_copy(update=tickets))  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_server: str, key_prefix: str) -> Settings:
    return make_settings(tmp_path, database_url, redis_server, key_prefix)


@pytest.fixture
def store(settings: Settings) -> Iterator[TicketStore]:
    store = TicketStore.from_settings(settings)
    yield store
    store.dispose()


@pytest.fixture
def queue(redis_server: str, key_prefix: str) -> Iterator[SeatQueue]:
    queue = SeatQueue.from_url(redis_server, SKILLS, prefix=key_prefix, claim_idle_s=0.3)
    yield queue
    queue.redis.close()


@pytest.fixture
def service(store: TicketStore, queue: SeatQueue) -> TicketService:
    return TicketService(store, queue)
