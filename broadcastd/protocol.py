"""The MQTT contract (DESIGN.md §5): topics, signed envelopes, chunking, keys, node payloads.

Everything a speaker receives is hostile until `verify` says otherwise: it bounds sizes, rejects
duplicate JSON keys and non-finite numbers, checks every field's type, then the Ed25519 signature
over the canonical JSON. An independent implementation interoperates by following §5 and the
fixed test vector in tests/unit/test_protocol.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broadcastd.errors import BroadcastdError, ProtocolError

# Node -> daemon payloads live in broadcastd.payloads; re-exported here because they are part of the
# same wire contract and the agent builds them through this module.
from broadcastd.payloads import AckMessage as AckMessage
from broadcastd.payloads import ack_payload as ack_payload
from broadcastd.payloads import heartbeat_payload as heartbeat_payload
from broadcastd.payloads import parse_ack as parse_ack
from broadcastd.payloads import state_payload as state_payload

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

VERSION: Final = 1
CHUNK_SIZE: Final = 64 * 1024
MAX_ENVELOPE_BYTES: Final = 64 * 1024  # a playlist of ~200 items; anything bigger is hostile
MAX_ITEMS: Final = 256
MAX_CLIP_BYTES: Final = 256 * 1024 * 1024
MAX_TIME: Final = 2**40  # Unix seconds; keeps arithmetic on hostile numbers cheap
MAX_ID: Final = 128
MAX_TEXT: Final = 1024
PRIORITIES: Final = ("normal", "priority", "emergency")
STATUSES: Final = ("live", "exercise")
ACTIONS: Final = ("stop", "cancel", "volume")
REJECT_REASONS: Final = (
    "malformed",
    "unsigned",
    "bad_signature",
    "wrong_commune",
    "wrong_hamlet",
    "expired",
    "replay",
    "unsupported_version",
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TOPIC_ID = re.compile(r"^[^/+#\x00]{1,128}$")


class KeyFileExistsError(BroadcastdError):
    """`generate_private_key` refuses to overwrite an existing key file."""

    def __init__(self, path: Path, public_key: str | None) -> None:
        self.path = path
        self.public_key = public_key
        super().__init__(f"{path}: key file exists, not overwritten")


# -- topics ----------------------------------------------------------------------------------------


class Topics:
    """Topic names under `bcast/v1/<commune>/`."""

    def __init__(self, commune: str) -> None:
        self.commune = commune
        self.root = f"bcast/v1/{commune}"

    def controller_state(self) -> str:
        return f"{self.root}/controller/state"

    def playlist(self, hamlet: str) -> str:
        return f"{self.root}/hamlet/{hamlet}/playlist"

    def control(self, hamlet: str) -> str:
        return f"{self.root}/hamlet/{hamlet}/control"

    def audio(self, sha256: str, index: int | str) -> str:
        return f"{self.root}/audio/{sha256}/{index}"

    def audio_clip_filter(self, sha256: str) -> str:
        """Every chunk of one clip: what a node subscribes to while it fetches that clip."""
        return f"{self.root}/audio/{sha256}/+"

    def audio_filter(self) -> str:
        return f"{self.root}/audio/#"

    def node_state(self, node: str) -> str:
        return f"{self.root}/node/{node}/state"

    def node_heartbeat(self, node: str) -> str:
        return f"{self.root}/node/{node}/heartbeat"

    def node_ack(self, node: str) -> str:
        return f"{self.root}/node/{node}/ack"

    def nodes_filter(self) -> str:
        return f"{self.root}/node/+/+"

    def parse(self, topic: str) -> tuple[str, ...] | None:  # noqa: PLR0911 - one return per topic kind
        """Route an inbound topic: ("controller_state",), ("playlist", hamlet), ("control",
        hamlet), ("audio", sha256, index), ("node_state"|"node_heartbeat"|"node_ack", node);
        None for anything else (including malformed ids)."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if any(not _TOPIC_ID.match(p) for p in parts):
            return None
        match parts:
            case ["controller", "state"]:
                return ("controller_state",)
            case ["hamlet", hamlet, ("playlist" | "control") as kind]:
                return (kind, hamlet)
            case ["audio", sha, index] if _SHA256.match(sha) and index.isdecimal():
                return ("audio", sha, index)
            case ["node", node, ("state" | "heartbeat" | "ack") as kind]:
                return (f"node_{kind}", node)
        return None


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
) -> dict[str, Any]:
    """Check a playlist or control envelope end to end and return it (without `sig`).

    Raises ProtocolError with reason malformed, unsupported_version, unsigned, bad_signature,
    wrong_commune, wrong_hamlet or expired. Replay is for the caller's store to judge.
    """
    env = decode_json(payload, MAX_ENVELOPE_BYTES)
    version = env.get("v")
    if not _is_int(version):
        raise ProtocolError("malformed", f"v must be an integer, got: {_brief(version)}")
    if version != VERSION:
        raise ProtocolError("unsupported_version", f"v must be {VERSION}, got: {version}")
    _check_signature(env, public_key)
    kind = env.get("kind")
    if kind == "playlist":
        validate_playlist(env)
    elif kind == "control":
        validate_control(env)
    else:
        raise ProtocolError("malformed", f"kind must be playlist or control, got: {_brief(kind)}")
    if env["commune"] != commune:
        raise ProtocolError("wrong_commune", f"for {env['commune']!r}, this is {commune!r}")
    if env["hamlet"] != hamlet:
        raise ProtocolError("wrong_hamlet", f"for {env['hamlet']!r}, this is {hamlet!r}")
    if now >= env["expires_at"]:
        raise ProtocolError("expired", f"expired at {env['expires_at']}, now {int(now)}")
    return env


def _check_signature(env: dict[str, Any], public_key: Ed25519PublicKey) -> None:
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
        raise ProtocolError(reason, f"{name} must be base64 text, got: {_brief(value)}")
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


# -- envelopes -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaylistItem:
    sha256: str
    bytes: int
    chunks: int
    duration_ms: int
    title: str
    lang: str
    announcement: str


@dataclass(frozen=True, slots=True)
class Playlist:
    """A verified playlist envelope, typed. `seq` is None and `status` "live" when absent."""

    commune: str
    hamlet: str
    id: str
    slot: str
    play_at: int
    expires_at: int
    priority: str
    issued_at: int
    items: tuple[PlaylistItem, ...]
    status: str = "live"
    seq: int | None = None

    @classmethod
    def from_envelope(cls, env: Mapping[str, Any]) -> Playlist:
        validate_playlist(env)
        return cls(
            commune=env["commune"],
            hamlet=env["hamlet"],
            id=env["id"],
            slot=env["slot"],
            play_at=env["play_at"],
            expires_at=env["expires_at"],
            priority=env["priority"],
            issued_at=env["issued_at"],
            items=tuple(PlaylistItem(**{k: i[k] for k in _ITEM_FIELDS}) for i in env["items"]),
            status=env.get("status", "live"),
            seq=env.get("seq"),
        )


@dataclass(frozen=True, slots=True)
class Control:
    """A verified control envelope, typed."""

    commune: str
    hamlet: str
    id: str
    action: str
    target: str | None
    value: int | None
    issued_at: int
    expires_at: int
    status: str = "live"
    seq: int | None = None

    @classmethod
    def from_envelope(cls, env: Mapping[str, Any]) -> Control:
        validate_control(env)
        return cls(
            commune=env["commune"],
            hamlet=env["hamlet"],
            id=env["id"],
            action=env["action"],
            target=env.get("target"),
            value=env.get("value"),
            issued_at=env["issued_at"],
            expires_at=env["expires_at"],
            status=env.get("status", "live"),
            seq=env.get("seq"),
        )


_ITEM_FIELDS = ("sha256", "bytes", "chunks", "duration_ms", "title", "lang", "announcement")


def playlist_envelope(  # noqa: PLR0913 - one keyword per contract field
    *,
    commune: str,
    hamlet: str,
    playlist_id: str,
    slot: str,
    play_at: int,
    expires_at: int,
    priority: str,
    issued_at: int,
    items: Sequence[PlaylistItem],
    status: str = "live",
    seq: int | None = None,
) -> dict[str, object]:
    """An unsigned playlist envelope (pass it to `sign`)."""
    env: dict[str, object] = {
        "v": VERSION,
        "kind": "playlist",
        "commune": commune,
        "hamlet": hamlet,
        "id": playlist_id,
        "slot": slot,
        "play_at": int(play_at),
        "expires_at": int(expires_at),
        "priority": priority,
        "issued_at": int(issued_at),
        "items": [asdict(i) for i in items],
        "status": status,
    }
    if seq is not None:
        env["seq"] = int(seq)
    validate_playlist(env)  # never sign something a node would reject as malformed
    return env


def control_envelope(  # noqa: PLR0913 - one keyword per contract field
    *,
    commune: str,
    hamlet: str,
    control_id: str,
    action: str,
    issued_at: int,
    expires_at: int,
    target: str | None = None,
    value: int | None = None,
    status: str | None = None,
    seq: int | None = None,
) -> dict[str, object]:
    """An unsigned control envelope: stop, cancel (target = playlist id), volume (value 0-100)."""
    env: dict[str, object] = {
        "v": VERSION,
        "kind": "control",
        "commune": commune,
        "hamlet": hamlet,
        "id": control_id,
        "action": action,
        "target": target,
        "value": value,
        "issued_at": int(issued_at),
        "expires_at": int(expires_at),
    }
    if status is not None:
        env["status"] = status
    if seq is not None:
        env["seq"] = int(seq)
    validate_control(env)
    return env


def validate_playlist(env: Mapping[str, Any]) -> None:
    """Strict field types for a playlist; ProtocolError("malformed") naming the field."""
    _common(env, "playlist")
    _text(env, "slot", MAX_ID)
    _time(env, "play_at")
    _choice(env, "priority", PRIORITIES)
    items = env.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise ProtocolError("malformed", f"items must be a list of 1..{MAX_ITEMS} entries")
    for n, item in enumerate(items):
        _item(item, f"items[{n}]")
    if env["play_at"] > env["expires_at"]:
        raise ProtocolError("malformed", "play_at is after expires_at")


def validate_control(env: Mapping[str, Any]) -> None:
    _common(env, "control")
    _choice(env, "action", ACTIONS)
    target, value = env.get("target"), env.get("value")
    if target is not None:
        _text(env, "target", MAX_ID)
    if env["action"] == "cancel" and target is None:
        raise ProtocolError("malformed", "cancel needs a target playlist id")
    if value is not None and (not _is_int(value) or not 0 <= value <= 100):
        raise ProtocolError("malformed", f"value must be an integer 0..100, got: {_brief(value)}")
    if env["action"] == "volume" and value is None:
        raise ProtocolError("malformed", "volume needs a value 0..100")


def _common(env: Mapping[str, Any], kind: str) -> None:
    if env.get("v") != VERSION or not _is_int(env.get("v")):
        raise ProtocolError("unsupported_version", f"v must be {VERSION}")
    if env.get("kind") != kind:
        raise ProtocolError("malformed", f"kind must be {kind!r}, got: {_brief(env.get('kind'))}")
    for name in ("commune", "hamlet", "id"):
        _text(env, name, MAX_ID)
    _time(env, "issued_at")
    _time(env, "expires_at")
    if "status" in env:
        _choice(env, "status", STATUSES)
    seq = env.get("seq")
    if seq is not None and (not _is_int(seq) or not 0 <= seq < 2**63):
        raise ProtocolError("malformed", f"seq must be a non-negative integer, got: {_brief(seq)}")


def _item(item: object, where: str) -> None:
    if not isinstance(item, dict):
        raise ProtocolError("malformed", f"{where} must be an object")
    sha = item.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ProtocolError("malformed", f"{where}.sha256 must be 64 lowercase hex digits")
    size, chunks, duration = item.get("bytes"), item.get("chunks"), item.get("duration_ms")
    if not _is_int(size) or not 1 <= size <= MAX_CLIP_BYTES:
        raise ProtocolError("malformed", f"{where}.bytes must be 1..{MAX_CLIP_BYTES}")
    if not _is_int(chunks) or chunks != chunk_count(size):
        raise ProtocolError("malformed", f"{where}.chunks must be {chunk_count(size)}")
    if not _is_int(duration) or not 0 <= duration <= 24 * 3600 * 1000:
        raise ProtocolError("malformed", f"{where}.duration_ms must be 0..86400000")
    for name in ("title", "lang", "announcement"):
        value = item.get(name)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ProtocolError("malformed", f"{where}.{name} must be text up to {MAX_TEXT}")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(env: Mapping[str, Any], name: str, limit: int) -> None:
    value = env.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ProtocolError("malformed", f"{name} must be text of 1..{limit}, got: {_brief(value)}")


def _time(env: Mapping[str, Any], name: str) -> None:
    value = env.get(name)
    if not _is_int(value) or not 0 <= value < MAX_TIME:
        raise ProtocolError(
            "malformed", f"{name} must be integer Unix seconds, got: {_brief(value)}"
        )


def _choice(env: Mapping[str, Any], name: str, allowed: Sequence[str]) -> None:
    if env.get(name) not in allowed:
        raise ProtocolError(
            "malformed", f"{name} must be one of {', '.join(allowed)}, got: {_brief(env.get(name))}"
        )


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- chunking --------------------------------------------------------------------------------------


def chunk_count(size: int) -> int:
    """How many ≤64 KiB chunks `size` bytes take (0 for 0 bytes)."""
    return -(-size // CHUNK_SIZE)


def iter_chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start : start + CHUNK_SIZE]


# -- keys ------------------------------------------------------------------------------------------


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
        raise BroadcastdError(f"public key must be standard base64, got: {_brief(b64)}") from None
    if len(raw) != 32:
        raise BroadcastdError(f"public key must decode to 32 bytes, got: {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)
