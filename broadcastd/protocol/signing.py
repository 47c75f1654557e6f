"""Canonical JSON, Ed25519 sign/verify and chunking of the MQTT contract (DESIGN.md §5).

Everything a speaker receives is hostile until `verify` says otherwise: it bounds sizes, rejects
duplicate JSON keys and non-finite numbers, checks the Ed25519 signature over the canonical JSON,
then every field's type, and hands back a typed `Playlist` or `Control`. The daemon goes the other
way with `seal`: a typed envelope in, its `Signed` wire bytes out. An independent implementation
interoperates by following §5 and the fixed test vector in tests/unit/test_protocol.py.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from cryptography.exceptions import InvalidSignature

from broadcastd.errors import ProtocolError
from broadcastd.protocol.envelopes import Control, Playlist
from broadcastd.protocol.limits import CHUNK_SIZE, VERSION, brief, is_int

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MAX_ENVELOPE_BYTES: Final = 64 * 1024  # a playlist of ~200 items; anything bigger is hostile
REJECT_REASONS: Final = (
    "malformed",
    "unsigned",
    "bad_signature",
    "wrong_commune",
    "wrong_hamlet",
    "expired",
    "replay",
    "unsupported_version",
    "retired_key",
    "superseded",
)

E = TypeVar("E", bound=Playlist | Control)


@dataclass(frozen=True, slots=True)
class Signed(Generic[E]):
    """A signed envelope: what it says, typed, and the exact bytes that carry it.

    `wire` is what is published and journaled; it is never rebuilt from `envelope`, so a
    re-publish after a restart sends the very bytes (and signature) the speakers saw first.
    """

    envelope: E
    wire: bytes


# -- canonical JSON and signatures -----------------------------------------------------------------


def canonical_json(obj: object) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, real UTF-8 (not \\u escapes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode(envelope: Mapping[str, object]) -> bytes:
    """The wire form of a (signed) envelope: canonical JSON, so it is byte-stable."""
    return canonical_json(dict(envelope))


def sign(envelope: Mapping[str, object], key: Ed25519PrivateKey) -> dict[str, object]:
    """A copy of `envelope` with `sig`: base64 Ed25519 over the canonical JSON without `sig`."""
    body = {k: v for k, v in envelope.items() if k != "sig"}
    signature = key.sign(canonical_json(body))
    return {**body, "sig": base64.b64encode(signature).decode("ascii")}


def seal(envelope: E, key: Ed25519PrivateKey) -> Signed[E]:
    """Sign a typed envelope; ProtocolError("malformed") if a node would reject it."""
    return Signed(envelope, encode(sign(envelope.unsigned(), key)))


def signed_playlist(wire: bytes) -> Signed[Playlist]:
    """A playlist signed earlier, typed again from its wire bytes (a journaled one).

    Its fields are validated, its signature is not: the bytes are the daemon's own, from its
    audited journal, and the speakers check the signature whenever they are published again.
    """
    env = decode_json(wire, MAX_ENVELOPE_BYTES)
    env.pop("sig", None)
    return Signed(Playlist.from_envelope(env), wire)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # Two parsers could pick different values for one key: refuse rather than guess.
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def decode_json(payload: bytes, limit: int) -> dict[str, Any]:
    """Parse a JSON object under a size bound; ProtocolError("malformed") otherwise."""
    if len(payload) > limit:
        raise ProtocolError("malformed", f"payload of {len(payload)} bytes exceeds {limit}")
    try:
        text = payload.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError("malformed", f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed", f"expected a JSON object, got: {type(obj).__name__}")
    return obj


def verify(
    payload: bytes, public_key: Ed25519PublicKey, *, commune: str, hamlet: str, now: float
) -> Playlist | Control:
    """Check a playlist or control envelope end to end and return it, typed.

    Raises ProtocolError with reason malformed, unsupported_version, unsigned, bad_signature,
    wrong_commune, wrong_hamlet or expired. Replay is for the caller's store to judge.
    """
    env = decode_json(payload, MAX_ENVELOPE_BYTES)
    version = env.get("v")
    if not is_int(version):
        raise ProtocolError("malformed", f"v must be an integer, got: {brief(version)}")
    if version != VERSION:
        raise ProtocolError("unsupported_version", f"v must be {VERSION}, got: {version}")
    check_signature(env, public_key)
    kind = env.get("kind")
    envelope: Playlist | Control
    if kind == Playlist.kind:
        envelope = Playlist.from_envelope(env)
    elif kind == Control.kind:
        envelope = Control.from_envelope(env)
    else:
        raise ProtocolError("malformed", f"kind must be playlist or control, got: {brief(kind)}")
    if envelope.commune != commune:
        raise ProtocolError("wrong_commune", f"for {envelope.commune!r}, this is {commune!r}")
    if envelope.hamlet != hamlet:
        raise ProtocolError("wrong_hamlet", f"for {envelope.hamlet!r}, this is {hamlet!r}")
    if now >= envelope.expires_at:
        raise ProtocolError("expired", f"expired at {envelope.expires_at}, now {int(now)}")
    return envelope


def check_signature(env: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    """Pop `sig` from `env` and check it over the canonical JSON of the rest."""
    sig = env.pop("sig", None)
    if sig is None or sig == "":
        raise ProtocolError("unsigned", "no sig field")
    raw = _b64(sig, 64, "sig", reason="bad_signature")
    try:
        body = canonical_json(env)
    except UnicodeEncodeError:  # a lone surrogate escaped in the JSON
        raise ProtocolError("malformed", "text is not valid Unicode") from None
    try:
        public_key.verify(raw, body)
    except InvalidSignature:
        raise ProtocolError("bad_signature", "signature does not match the public key") from None


def _b64(value: object, size: int, name: str, *, reason: str) -> bytes:
    if not isinstance(value, str) or len(value) > 4 * size:
        raise ProtocolError(reason, f"{name} must be base64 text, got: {brief(value)}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(reason, f"{name} is not standard base64") from None
    if len(raw) != size:
        raise ProtocolError(reason, f"{name} must decode to {size} bytes, got: {len(raw)}")
    if base64.b64encode(raw).decode("ascii") != value:
        # The spare bits of the last base64 character are ignored by decoding: without this,
        # flipping them yields new message bytes that still verify (signature malleability).
        raise ProtocolError(reason, f"{name} is not canonical base64")
    return raw


# -- chunking (chunk_count lives in limits.py: envelope validation needs it too) --------------


def iter_chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start : start + CHUNK_SIZE]
