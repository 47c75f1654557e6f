"""Accounts and API tokens: roles, names, argon2 password hashes, token secrets.

Used by `broadcastd operator ...` and `broadcastd token ...` (cli/) and by the console's login.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from broadcastd.console import accesslog
from broadcastd.console.store import TokenRow
from broadcastd.errors import UsageError

if TYPE_CHECKING:
    from broadcastd.config import Config
    from broadcastd.console.store import ConsoleStore

# Ordered: each role may do what the ones before it may. viewer: look and listen; operator:
# announce, cancel, stop, volume; approver: also issue and approve emergencies.
ROLES: Final = ("viewer", "operator", "approver")
SCOPES: Final = ("read",)
MIN_PASSWORD: Final = 10
MAX_PASSWORD: Final = 1024  # argon2 hashes any length; a megabyte "password" only costs CPU
TOKEN_PREFIX: Final = "bct"  # noqa: S105 - a prefix that marks our tokens, not a secret
_NAME = re.compile(r"^[\w.-]{1,64}$")
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}_([A-Za-z0-9]{{12}})_([A-Za-z0-9_-]{{43}})$")

# argon2id with the library's RFC 9106 "low memory" profile (64 MiB, 3 passes): ~0.15 s on the
# office PC, which is what one login costs and what a guess costs an attacker with the file.
_hasher = PasswordHasher()
# Verified against when the account does not exist, so an unknown name costs as long as a
# wrong password and the response time does not say which names exist.
_DUMMY_HASH: Final = _hasher.hash(secrets.token_urlsafe(16))


def role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else -1


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(f"a name is 1-64 letters, digits, '.', '_' or '-', got: {name[:80]!r}")
    return name


def check_role(config: Config, name: str, role: str) -> str:
    """Whoever may act from the console must be a name the daemon accepts: when the config lists
    `emergency.operators`, the daemon refuses any other operator name on every request, so an
    operator or approver under another name could never do anything. That is refused here,
    where it is fixed."""
    if role not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}, got: {role!r}")
    names = config.emergency.operators
    if role != "viewer" and names and name not in names:
        raise UsageError(
            f"an {role} must be one of emergency.operators in the config "
            f"({', '.join(names)}), got: {name!r}"
        )
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if `password` matches; always costs one argon2 verification."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(store: ConsoleStore, name: str, scope: str, now: float) -> str:
    """A new API token; the returned string is shown once and never stored."""
    if scope not in SCOPES:
        raise UsageError(f"scope must be one of {', '.join(SCOPES)}, got: {scope!r}")
    token_id = "".join(secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(12))
    secret = secrets.token_urlsafe(32)
    store.add_token(TokenRow(token_id, check_name(name), scope, digest(secret), now, None))
    accesslog.record(store, now, "token", name, address="cli", detail=f"created, scope {scope}")
    return f"{TOKEN_PREFIX}_{token_id}_{secret}"


def token_for(store: ConsoleStore, presented: str) -> TokenRow | None:
    """The token row a bearer string names, if its secret matches."""
    m = _TOKEN.match(presented)
    if m is None:
        return None
    row = store.token(m.group(1))
    if row is None or not hmac.compare_digest(row.digest, digest(m.group(2))):
        return None
    return row


def set_operator(  # noqa: PLR0913 - the CLI's arguments, checked here
    store: ConsoleStore,
    config: Config,
    name: str,
    *,
    password: str | None,
    role: str | None,
    now: float,
    create: bool,
) -> None:
    """Add an operator (`create`), or change one's password and/or role (ending its sessions)."""
    check_name(name)
    if role is not None:
        check_role(config, name, role)
    password_hash = hash_password(password) if password is not None else None
    if create:
        if password_hash is None:
            raise UsageError("a new operator needs a password")
        store.add_operator(name, role or "viewer", password_hash, now)
        accesslog.record(
            store, now, "operator", name, address="cli", detail=f"added as {role or 'viewer'}"
        )
        return
    store.update_operator(name, password_hash=password_hash, role=role, now=now)
    what = ", ".join(
        w for w in ("password" if password else "", f"role {role}" if role else "") if w
    )
    accesslog.record(
        store, now, "operator", name, address="cli", detail=f"changed: {what}; sessions ended"
    )


def remove_operator(store: ConsoleStore, name: str, now: float) -> None:
    store.remove_operator(name)
    accesslog.record(store, now, "operator", name, address="cli", detail="removed; sessions ended")
