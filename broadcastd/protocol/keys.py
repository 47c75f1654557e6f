"""Ed25519 keys: the daemon's signing key file and the public key every speaker is given."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broadcastd.errors import BroadcastdError
from broadcastd.protocol.limits import brief

if TYPE_CHECKING:
    from pathlib import Path


class KeyFileExistsError(BroadcastdError):
    """`generate_private_key` refuses to overwrite an existing key file."""

    def __init__(self, path: Path, public_key: str | None) -> None:
        self.path = path
        self.public_key = public_key
        super().__init__(f"{path}: key file exists, not overwritten")


def generate_private_key(path: Path) -> Ed25519PrivateKey:
    """Create a key file (PKCS#8 PEM, mode 0600); KeyFileExistsError if `path` exists."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: two keygens racing, or a key written between check and write, never clobber.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing: str | None
        try:
            existing = public_key_b64(load_private_key(path))
        except BroadcastdError:
            existing = None
        raise KeyFileExistsError(path, existing) from None
    except OSError as exc:
        raise BroadcastdError(f"{path}: cannot create key file: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM (PKCS#8) or raw 32-byte Ed25519 private key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BroadcastdError(
            f"{path}: signing key file is missing (create it with `broadcastd keygen`)"
        ) from None
    except OSError as exc:
        raise BroadcastdError(f"{path}: cannot read signing key: {exc.strerror}") from None
    if len(data) == 32:  # a raw Ed25519 seed
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BroadcastdError(f"{path}: not a PEM Ed25519 private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BroadcastdError(f"{path}: key is not Ed25519, got: {type(key).__name__}")
    return key


def public_key_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Standard base64 of the raw 32-byte public key (what node.yaml holds)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public_key(b64: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BroadcastdError(f"public key must be standard base64, got: {brief(b64)}") from None
    if len(raw) != 32:
        raise BroadcastdError(f"public key must decode to 32 bytes, got: {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def fingerprint(key: str | Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """A short name for a public key in logs, the journal and `broadcastd nodes`: the first 16
    hex digits of the sha256 of its raw 32 bytes (`key` as base64, or a key object)."""
    raw = base64.b64decode(key if isinstance(key, str) else public_key_b64(key))
    return hashlib.sha256(raw).hexdigest()[:16]
