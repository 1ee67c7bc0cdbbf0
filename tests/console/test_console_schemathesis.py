"""Property-based API fuzzing from the OpenAPI spec: whatever a client sends, no 500.

Schemathesis generates valid and invalid requests for every operation (wrong types,
missing fields, huge and odd strings, bad path parameters) against the real app over a
real SQLite store and Redis queue, authenticated as an administrator.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.openapi import from_asgi

from tests.console.helpers import ConsoleEnv, make_env
from tests.tickets.support import make_draft


@pytest.fixture
def env(settings, service) -> ConsoleEnv:  # type: ignore[no-untyped-def]
    return make_env(settings, service)


@pytest.fixture
def api_schema(env: ConsoleEnv) -> Iterator[object]:
    # A few tickets, so generated ticket numbers sometimes hit real ones.
    for i in range(3):
        env.service.intake(make_draft(i))
    with TestClient(env.app) as client:
        env.headers = env.token(client, "root")  # type: ignore[attr-defined]
    yield from_asgi("/openapi.json", env.app, headers=env.headers)  # type: ignore[attr-defined]


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_server_fail(case, env: ConsoleEnv) -> None:  # type: ignore[no-untyped-def]
    if case.path == "/api/v1/auth/logout":
        return  # would revoke the token the other cases use
    response = case.call(headers=env.headers)  # type: ignore[attr-defined]
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
