"""The key-rotation control (DESIGN.md §5): the daemon's signing key hands over to a new one.

Signed by the key it retires (`retires`), it names the new public key (`key`), when the daemon
starts signing with it (`activate_at`) and when nodes stop trusting the old one (`retire_at`).
It is published retained on `keys`, so a node offline during the rotation gets it when it comes
back. Like every envelope it is hostile until `verify_rotation` has checked the signature with
a key the node trusts and then every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.protocol.envelopes import MAX_ID, MAX_TIME
from broadcastd.protocol.keys import load_public_key, public_key_b64
from broadcastd.protocol.limits import VERSION, brief, is_int, is_wire_id
from broadcastd.protocol.signing import check_signature, decode_json, encode, sign

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MAX_ROTATION_BYTES: Final = 4 * 1024  # ~400 bytes in practice


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """A key-rotation control, typed; `key` and `retires` are base64 public keys."""

    kind: ClassVar[str] = "key_rotation"

    commune: str
    id: str
    key: str
    retires: str
    activate_at: int
    retire_at: int
    issued_at: int

    @classmethod
    def from_envelope(cls, env: Mapping[str, Any]) -> KeyRotation:
        validate_rotation(env)
        return cls(
            commune=env["commune"],
            id=env["id"],
            key=env["key"],
            retires=env["retires"],
            activate_at=env["activate_at"],
            retire_at=env["retire_at"],
            issued_at=env["issued_at"],
        )

    def unsigned(self) -> dict[str, object]:
        env: dict[str, object] = {
            "v": VERSION,
            "kind": self.kind,
            "commune": self.commune,
            "id": self.id,
            "key": self.key,
            "retires": self.retires,
            "activate_at": self.activate_at,
            "retire_at": self.retire_at,
            "issued_at": self.issued_at,
        }
        validate_rotation(env)
        return env

    def seal(self, key: Ed25519PrivateKey) -> bytes:
        """The wire bytes, signed by `key`, which must be the key this rotation retires."""
        if public_key_b64(key) != self.retires:
            raise ProtocolError("malformed", "a rotation is signed by the key it retires")
        return encode(sign(self.unsigned(), key))


def validate_rotation(env: Mapping[str, Any]) -> None:
    """Strict field types; ProtocolError("malformed") naming the field."""
    if env.get("v") != VERSION or not is_int(env.get("v")):
        raise ProtocolError("unsupported_version", f"v must be {VERSION}")
    kind = env.get("kind")
    if kind != KeyRotation.kind:
        raise ProtocolError("malformed", f"kind must be 'key_rotation', got: {brief(kind)}")
    commune = env.get("commune")
    if not isinstance(commune, str) or not 1 <= len(commune) <= MAX_ID:
        raise ProtocolError("malformed", f"commune must be text of 1..{MAX_ID}")
    if not is_wire_id(env.get("id")):
        raise ProtocolError("malformed", f"id must be an id, got: {brief(env.get('id'))}")
    _public_keys(env)
    for name in ("issued_at", "activate_at", "retire_at"):
        value = env.get(name)
        if not is_int(value) or not 0 <= value < MAX_TIME:
            raise ProtocolError("malformed", f"{name} must be Unix seconds, got: {brief(value)}")
    if not env["issued_at"] <= env["activate_at"] <= env["retire_at"]:
        raise ProtocolError("malformed", "issued_at <= activate_at <= retire_at must hold")


def _public_keys(env: Mapping[str, Any]) -> None:
    for name in ("key", "retires"):
        value = env.get(name)
        try:
            load_public_key(value if isinstance(value, str) else "")
        except BroadcastdError:
            raise ProtocolError(
                "malformed", f"{name} must be a base64 Ed25519 public key, got: {brief(value)}"
            ) from None
    if env["key"] == env["retires"]:
        raise ProtocolError("malformed", "key and retires must differ")


def read_rotation(payload: bytes) -> KeyRotation:
    """A rotation's fields, its signature unchecked: for the daemon's own record on disk."""
    env = decode_json(payload, MAX_ROTATION_BYTES)
    env.pop("sig", None)
    return KeyRotation.from_envelope(env)


def verify_rotation(
    payload: bytes, trusted: Sequence[Ed25519PublicKey], *, commune: str
) -> KeyRotation:
    """A rotation signed by the key it retires, which is one of `trusted`, for this commune.

    ProtocolError: malformed, unsupported_version, unsigned, bad_signature (not signed by the
    key it names, or that key is not trusted here), wrong_commune."""
    env = decode_json(payload, MAX_ROTATION_BYTES)
    sig = env.get("sig")
    body = {k: v for k, v in env.items() if k != "sig"}
    rotation = KeyRotation.from_envelope(body)
    if rotation.retires not in {public_key_b64(k) for k in trusted}:
        raise ProtocolError("bad_signature", "signed by a key this node does not trust")
    check_signature({**body, "sig": sig}, load_public_key(rotation.retires))
    if rotation.commune != commune:
        raise ProtocolError("wrong_commune", f"for {rotation.commune!r}, this is {commune!r}")
    return rotation
