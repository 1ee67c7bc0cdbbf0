"""Console users, roles and login sessions (stored with the tickets, passwords as argon2id)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from tickets.models import SessionRow, UserRow, utcnow
from tickets.store import TicketStore


class Role(StrEnum):
    """What a console user may do.

    ``SERVICE`` is the call controller's service identity, for a controller (or a bridge
    in front of it) that files work orders and screen pops over the REST API instead of
    calling ``TicketService`` in process. It is an ordinary account created by an
    administrator (``hotline users add controller --role service``) that signs in with
    ``POST /api/v1/auth/token`` like any API client. Only this identity may file a draft
    carrying call evidence (call id, transcript, recording, see
    ``hotline.draft.evidence_fields``) and pop a ticket onto any seat; for everything
    else it ranks as an operator, never as a 班长.
    """

    OPERATOR = "operator"
    MANAGER = "manager"
    ADMIN = "admin"
    SERVICE = "service"


ROLE_RANK = {Role.OPERATOR: 1, Role.SERVICE: 1, Role.MANAGER: 2, Role.ADMIN: 3}
ROLE_LABELS = {
    Role.OPERATOR: "话务员",
    Role.MANAGER: "班长",
    Role.ADMIN: "管理员",
    Role.SERVICE: "呼叫中控（系统账号）",
}
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,40}$")


class AccountError(Exception):
    """A user-management request that cannot be done; the message says why."""


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    display_name: str
    role: Role
    extension: str
    skills: list[str] = field(default_factory=list)
    active: bool = True

    def has(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def is_controller(self) -> bool:
        """The call controller's service identity (see :class:`Role`)."""
        return self.role == Role.SERVICE

    @property
    def leads_shift(self) -> bool:
        """班长 and 管理员: they may reassign any ticket and act on it."""
        return self.has(Role.MANAGER)

    @property
    def seat(self) -> str:
        """The seat id used by the queue: the phone extension, or the user name."""
        return self.extension or self.username


@dataclass(frozen=True)
class LoginSession:
    token: str  # only the holder knows it; the database keeps its hash
    account: Account
    csrf_token: str
    expires_at: datetime
    kind: str


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountStore:
    def __init__(self, store: TicketStore, session_lifetime: timedelta) -> None:
        self.store = store
        self.lifetime = session_lifetime
        self.hasher = PasswordHasher()
        # Compared against when the user does not exist, so timing does not reveal names.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(8))

    def add(
        self,
        username: str,
        password: str,
        role: Role,
        *,
        display_name: str = "",
        extension: str = "",
        skills: list[str] | None = None,
    ) -> Account:
        if not USERNAME.match(username):
            raise AccountError("用户名只能用 2-40 个字母、数字、下划线、点或连字符")
        if len(password) < 8:
            raise AccountError("密码至少 8 位")
        with self.store.writing() as session:
            if session.scalar(select(UserRow.id).where(UserRow.username == username)):
                raise AccountError(f"用户 {username} 已存在")
            row = UserRow(
                username=username,
                display_name=display_name or username,
                password_hash=self.hasher.hash(password),
                role=Role(role).value,
                extension=extension,
                skills=list(skills or []),
                active=True,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return _account(row)

    def set_password(self, username: str, password: str) -> None:
        if len(password) < 8:
            raise AccountError("密码至少 8 位")
        with self.store.writing() as session:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
            if row is None:
                raise AccountError(f"没有用户 {username}")
            row.password_hash = self.hasher.hash(password)
            session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))

    def set_seat(self, username: str, seat: str) -> None:
        """The operator's seat phone (its PJSIP endpoint, ``seat-101``): where their
        screen pops arrive and what click-to-call rings. The live console picks it up at
        the next login (the seat is part of the session's account)."""
        with self.store.writing() as session:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
            if row is None:
                raise AccountError(f"没有用户 {username}")
            row.extension = seat
            session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))

    def get(self, username: str) -> Account | None:
        with self.store.reading() as session:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
            return _account(row) if row else None

    def by_seat(self, seat: str) -> Account | None:
        with self.store.reading() as session:
            row = session.scalars(
                select(UserRow)
                .where((UserRow.extension == seat) | (UserRow.username == seat))
                .order_by(UserRow.extension.desc())
            ).first()
            return _account(row) if row else None

    def list(self) -> list[Account]:
        with self.store.reading() as session:
            return [_account(r) for r in session.scalars(select(UserRow).order_by(UserRow.id))]

    def authenticate(self, username: str, password: str) -> Account | None:
        with self.store.reading() as session:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
        if row is None or not row.active:
            self._verify(self._dummy_hash, password)
            return None
        if not self._verify(row.password_hash, password):
            return None
        if self.hasher.check_needs_rehash(row.password_hash):
            self.set_password(username, password)
        return _account(row)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self.hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    # ---- sessions ----

    def open_session(self, account: Account, kind: str = "web") -> LoginSession:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = utcnow()
        with self.store.writing() as session:
            session.add(
                SessionRow(
                    token_hash=_hash_token(token),
                    user_id=account.id,
                    kind=kind,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + self.lifetime,
                )
            )
        return LoginSession(token, account, csrf, now + self.lifetime, kind)

    def session(self, token: str) -> LoginSession | None:
        if not token or len(token) > 200:
            return None
        with self.store.reading() as session:
            row = session.get(SessionRow, _hash_token(token))
            if row is None or row.expires_at <= utcnow():
                return None
            user = session.get(UserRow, row.user_id)
            if user is None or not user.active:
                return None
            return LoginSession(token, _account(user), row.csrf_token, row.expires_at, row.kind)

    def close_session(self, token: str) -> None:
        with self.store.writing() as session:
            session.execute(delete(SessionRow).where(SessionRow.token_hash == _hash_token(token)))

    def purge_expired(self) -> int:
        with self.store.writing() as session:
            result = session.execute(delete(SessionRow).where(SessionRow.expires_at <= utcnow()))
            return int(getattr(result, "rowcount", 0) or 0)


def _account(row: UserRow) -> Account:
    return Account(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        extension=row.extension,
        skills=list(row.skills),
        active=row.active,
    )
