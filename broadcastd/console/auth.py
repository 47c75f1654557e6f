"""Logins, sessions, CSRF tokens, login throttling and API bearer tokens.

- A login always creates a new random session id (the old cookie, if any, is ended), so a
  session id planted before login is worthless after it. The cookie holds the id; the console's
  file holds only its SHA-256.
- A session ends after `console.session_idle` without a request, and at most MAX_SESSION_S after
  login; a password or role change or a removal ends all of the operator's sessions.
- Every session has its own CSRF token, checked on every form POST; the login form, which has no
  session yet, uses a double-submit token (a cookie and a hidden field that must match).
- Throttling: after ACCOUNT_FAILURES wrong passwords for one account within THROTTLE_WINDOW_S,
  or ADDRESS_FAILURES from one address, further attempts are refused without being checked
  until the window has passed. A throttled attempt does not extend the window.
Every login, logout and refusal goes to the access log.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from broadcastd.console import accesslog
from broadcastd.console.accounts import digest, role_rank, token_for, verify_password
from broadcastd.console.store import SessionRow

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.console.store import ConsoleStore

THROTTLE_WINDOW_S: Final = 60.0
ACCOUNT_FAILURES: Final = 5  # the 6th attempt within a minute is throttled
ADDRESS_FAILURES: Final = 20
MAX_SESSION_S: Final = 12 * 3600.0  # one working day, whatever the activity
MAX_CONCURRENT_VERIFIES: Final = 2  # argon2 takes 64 MiB and a core for ~0.15 s each
SEEN_GRANULARITY_S: Final = 15.0  # a session's last-seen time is written at most this often


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: an operator's session, or an API token (`role` is then the token's scope)."""

    name: str
    role: str
    via: str  # "session" | "token"
    csrf: str = ""
    session: str = ""  # the session id's digest

    def may(self, role: str) -> bool:
        return self.via == "session" and role_rank(self.role) >= role_rank(role)


@dataclass(frozen=True, slots=True)
class LoginResult:
    ok: bool
    reason: str  # "ok" | "wrong" | "throttled"
    session_id: str = ""
    principal: Principal | None = None


class Auth:
    def __init__(self, store: ConsoleStore, *, clock: Callable[[], float], idle_s: float) -> None:
        self.store = store
        self.clock = clock
        self.idle_s = idle_s
        self._verifies = asyncio.Semaphore(MAX_CONCURRENT_VERIFIES)

    async def login(self, username: str, password: str, address: str) -> LoginResult:
        now = self.clock()
        name = username.strip()[:64]
        store = self.store
        since = now - THROTTLE_WINDOW_S
        throttled = await asyncio.to_thread(
            lambda: (
                store.failures_since(since, account=name) >= ACCOUNT_FAILURES
                or store.failures_since(since, address=address) >= ADDRESS_FAILURES
            )
        )
        if throttled:
            await self._log(now, "refused", name, address, "login throttled")
            return LoginResult(ok=False, reason="throttled")
        row = await asyncio.to_thread(store.operator, name) if name else None
        async with self._verifies:
            ok = await asyncio.to_thread(
                verify_password, row.hash if row is not None else None, password
            )
        if not ok or row is None:
            await asyncio.to_thread(store.add_failure, now, name, address)
            why = "wrong password" if row is not None else "unknown account"
            await self._log(now, "refused", name, address, f"login: {why}")
            return LoginResult(ok=False, reason="wrong")
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        session = SessionRow(digest(session_id), row.name, csrf, now, now, address)
        await asyncio.to_thread(store.add_session, session)
        await asyncio.to_thread(store.forget_failures, now - 24 * 3600)
        await asyncio.to_thread(store.end_stale_sessions, now - self.idle_s, now - MAX_SESSION_S)
        await self._log(now, "login", row.name, address, f"role {row.role}")
        principal = Principal(row.name, row.role, "session", csrf, session.digest)
        return LoginResult(ok=True, reason="ok", session_id=session_id, principal=principal)

    async def session(self, session_id: str | None, address: str) -> Principal | None:
        """The operator behind a session cookie, if the session is still alive (it is touched)."""
        if not session_id or len(session_id) > 128:
            return None
        now = self.clock()
        key = digest(session_id)
        row = await asyncio.to_thread(self.store.session, key)
        if row is None:
            return None
        if now - row.seen > self.idle_s or now - row.created > MAX_SESSION_S:
            await asyncio.to_thread(self.store.end_session, key)
            await self._log(now, "expired", row.operator, address, "session expired")
            return None
        operator = await asyncio.to_thread(self.store.operator, row.operator)
        if operator is None:  # removed while logged in (removal also ends sessions)
            return None
        if now - row.seen >= SEEN_GRANULARITY_S:
            await asyncio.to_thread(self.store.session_seen, key, now)
        return Principal(operator.name, operator.role, "session", row.csrf, key)

    async def peek(self, principal: Principal) -> bool:
        """Whether a session is still alive, without touching it (the live stream's check)."""
        row = await asyncio.to_thread(self.store.session, principal.session)
        now = self.clock()
        return (
            row is not None and now - row.seen <= self.idle_s and now - row.created <= MAX_SESSION_S
        )

    async def logout(self, principal: Principal, address: str) -> None:
        await asyncio.to_thread(self.store.end_session, principal.session)
        await self._log(self.clock(), "logout", principal.name, address, "")

    async def end(self, session_digest: str, operator: str, *, by: str, address: str) -> None:
        """End someone's session from the account page (a lost phone, a shared PC)."""
        await asyncio.to_thread(self.store.end_session, session_digest)
        await self._log(self.clock(), "logout", operator, address, f"session ended by {by}")

    async def bearer(self, header: str | None, address: str) -> Principal | None:
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        row = await asyncio.to_thread(token_for, self.store, value.strip())
        if row is None:
            await self._log(self.clock(), "refused", "-", address, "API: unknown or wrong token")
            return None
        now = self.clock()
        if row.last_used is None or now - row.last_used >= SEEN_GRANULARITY_S:
            await asyncio.to_thread(self.store.token_used, row.id, now)
        return Principal(row.name, row.scope, "token")

    async def record(self, who: str, address: str, what: str) -> None:
        """Record an action asked of the daemon and what it answered."""
        await self._log(self.clock(), "action", who, address, what)

    async def refuse(self, who: str, address: str, why: str) -> None:
        """Record a refusal the web layer decided (CSRF, role)."""
        await self._log(self.clock(), "refused", who, address, why)

    async def _log(self, now: float, kind: str, who: str, address: str, detail: str) -> None:
        await asyncio.to_thread(
            lambda: accesslog.record(
                self.store, now, kind, who or "-", address=address, detail=detail
            )
        )


def csrf_matches(expected: str, presented: str | None) -> bool:
    return (
        bool(expected)
        and presented is not None
        and hmac.compare_digest(expected.encode(), presented.encode())
    )
