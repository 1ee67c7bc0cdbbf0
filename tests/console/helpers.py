"""Shared set-up for the console tests: an app over the real store and queue, with users."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hotline.settings import Settings
from tickets.accounts import AccountStore, Role
from tickets.dialer import RecordingDialer
from tickets.service import TicketService

PASSWORD = "correct-horse-9"
USERS = {"op": Role.OPERATOR, "boss": Role.MANAGER, "root": Role.ADMIN}


@dataclass
class ConsoleEnv:
    app: FastAPI
    service: TicketService
    accounts: AccountStore
    dialer: RecordingDialer

    def token(self, client: TestClient, user: str) -> dict[str, str]:
        response = client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}


def make_env(settings: Settings, service: TicketService) -> ConsoleEnv:
    from console.app import create_app

    dialer = RecordingDialer()
    app = create_app(settings, service=service, dialer=dialer)
    accounts: AccountStore = app.state.console.accounts
    # Real argon2id, with cheap parameters: the tests log in hundreds of times.
    accounts.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    for i, (name, role) in enumerate(USERS.items()):
        accounts.add(name, PASSWORD, role, display_name=f"{name}-名", extension=f"80{i + 1:02d}")
    return ConsoleEnv(app, service, accounts, dialer)


# 承办单位 users (tickets.departments' default codes): 城管 leads, 水务 assists, 住建 is
# another unit that must see none of their work.
DEPARTMENT_USERS = {"cgj-user": "cgj", "swj-user": "swj", "zjj-user": "zjj"}
CLERKS = {"cgj": "城管局办件员", "swj": "水务局办件员", "zjj": "住建局办件员"}


def add_department_users(env: ConsoleEnv) -> None:
    for name, code in DEPARTMENT_USERS.items():
        env.accounts.add(
            name, PASSWORD, Role.DEPARTMENT, display_name=CLERKS[code], department=code
        )


def web_client(app: FastAPI, username: str) -> TestClient:
    """A browser session logged in through the login form, with its CSRF cookie (use it as
    a context manager); the login must succeed (303 to the user's start page)."""
    client = TestClient(app)
    client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD,
            "csrf_token": client.cookies["hotline_login_csrf"],
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client
