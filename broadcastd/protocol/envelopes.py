"""Playlist and control envelopes (DESIGN.md §5): typed forms, builders and strict validators.

`Playlist` and `Control` are what the daemon builds and what a speaker acts on; the JSON object
form exists only at the edge: `unsigned()` makes it for signing, `from_envelope` reads it back. A
validator names the offending field in ProtocolError("malformed"); `unsigned()` runs it too, so
the daemon never signs an envelope a node would reject. Signing and verifying live in signing.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from broadcastd.errors import ProtocolError
from broadcastd.models import PRIORITIES
from broadcastd.protocol.limits import SHA256_RE, VERSION, brief, chunk_count, is_int

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

MAX_ITEMS: Final = 256
MAX_CLIP_BYTES: Final = 256 * 1024 * 1024
MAX_TIME: Final = 2**40  # Unix seconds; keeps arithmetic on hostile numbers cheap
MAX_ID: Final = 128
MAX_TEXT: Final = 1024
STATUSES: Final = ("live", "exercise")
ACTIONS: Final = ("stop", "cancel", "volume")
MAX_NODES: Final = 256  # node ids one volume control may name


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
    """A playlist envelope, typed. `seq` is None and `status` "live" when absent."""

    kind: ClassVar[str] = "playlist"

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
    # The level to play at, from the hamlet's schedule (or emergency.volume); None: the node's
    # own. A volume control issued at or after `volume_since` overrides a scheduled level.
    volume: int | None = None
    volume_since: int | None = None

    @classmethod
    def from_envelope(cls, env: Mapping[str, Any]) -> Playlist:
        validate_playlist(env)
        return cls(
            **_read_header(env),
            slot=env["slot"],
            play_at=env["play_at"],
            priority=env["priority"],
            items=tuple(PlaylistItem(**{k: i[k] for k in _ITEM_FIELDS}) for i in env["items"]),
            volume=env.get("volume"),
            volume_since=env.get("volume_since"),
        )

    def unsigned(self) -> dict[str, object]:
        """The JSON object to sign (see `seal`); ProtocolError if a node would reject it."""
        env = _header(self) | {
            "slot": self.slot,
            "play_at": self.play_at,
            "priority": self.priority,
            "items": [asdict(i) for i in self.items],
            "status": self.status,
        }
        # Optional fields stay out when unset: the bytes of older envelopes do not change.
        optional = {"seq": self.seq, "volume": self.volume, "volume_since": self.volume_since}
        env.update({name: value for name, value in optional.items() if value is not None})
        validate_playlist(env)
        return env


@dataclass(frozen=True, slots=True)
class Control:
    """A control envelope, typed: stop, cancel (target = playlist id), volume (value 0-100;
    `nodes`, if given, names the only nodes of the hamlet it is for)."""

    kind: ClassVar[str] = "control"

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
    nodes: tuple[str, ...] | None = None

    @classmethod
    def from_envelope(cls, env: Mapping[str, Any]) -> Control:
        validate_control(env)
        return cls(
            **_read_header(env),
            action=env["action"],
            target=env.get("target"),
            value=env.get("value"),
            nodes=None if env.get("nodes") is None else tuple(env["nodes"]),
        )

    def for_node(self, node_id: str) -> bool:
        """Whether this control is for `node_id` (every node of its hamlet without `nodes`)."""
        return self.nodes is None or node_id in self.nodes

    def unsigned(self) -> dict[str, object]:
        """The JSON object to sign (see `seal`); ProtocolError if a node would reject it."""
        env = _header(self) | {"action": self.action, "target": self.target, "value": self.value}
        # Controls have always been signed without `status` when live; the field stays out so
        # their bytes do not change (a node reads an absent status as "live").
        if self.status != "live":
            env["status"] = self.status
        if self.seq is not None:
            env["seq"] = self.seq
        if self.nodes is not None:  # absent unless set: older controls keep their bytes
            env["nodes"] = list(self.nodes)
        validate_control(env)
        return env


def _header(envelope: Playlist | Control) -> dict[str, object]:
    """The fields every envelope carries, as signed (`status` and `seq` are each kind's own:
    a live control leaves its status out)."""
    return {
        "v": VERSION,
        "kind": envelope.kind,
        "commune": envelope.commune,
        "hamlet": envelope.hamlet,
        "id": envelope.id,
        "issued_at": envelope.issued_at,
        "expires_at": envelope.expires_at,
    }


def _read_header(env: Mapping[str, Any]) -> dict[str, Any]:
    """The common fields of a validated envelope, as keywords of its dataclass."""
    return {
        "commune": env["commune"],
        "hamlet": env["hamlet"],
        "id": env["id"],
        "issued_at": env["issued_at"],
        "expires_at": env["expires_at"],
        "status": env.get("status", "live"),
        "seq": env.get("seq"),
    }


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
    volume: int | None = None,
    volume_since: int | None = None,
) -> dict[str, object]:
    """An unsigned playlist envelope as a JSON object (for tests and tools that sign by hand)."""
    return Playlist(
        commune=commune,
        hamlet=hamlet,
        id=playlist_id,
        slot=slot,
        play_at=int(play_at),
        expires_at=int(expires_at),
        priority=priority,
        issued_at=int(issued_at),
        items=tuple(items),
        status=status,
        seq=None if seq is None else int(seq),
        volume=volume,
        volume_since=volume_since,
    ).unsigned()


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
    nodes: Sequence[str] | None = None,
) -> dict[str, object]:
    """An unsigned control envelope as a JSON object (for tests and tools that sign by hand)."""
    return Control(
        commune=commune,
        hamlet=hamlet,
        id=control_id,
        action=action,
        target=target,
        value=value,
        issued_at=int(issued_at),
        expires_at=int(expires_at),
        status="live" if status is None else status,
        seq=None if seq is None else int(seq),
        nodes=None if nodes is None else tuple(nodes),
    ).unsigned()


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
    volume = env.get("volume")
    if volume is not None:
        _level(volume, "volume")
    if env.get("volume_since") is not None:
        _time(env, "volume_since")
        if volume is None:
            raise ProtocolError("malformed", "volume_since needs a volume")


def validate_control(env: Mapping[str, Any]) -> None:
    _common(env, "control")
    _choice(env, "action", ACTIONS)
    target, value = env.get("target"), env.get("value")
    if target is not None:
        _text(env, "target", MAX_ID)
    if env["action"] == "cancel" and target is None:
        raise ProtocolError("malformed", "cancel needs a target playlist id")
    if value is not None:
        _level(value, "value")
    if env["action"] == "volume" and value is None:
        raise ProtocolError("malformed", "volume needs a value 0..100")
    nodes = env.get("nodes")
    if nodes is not None:
        if env["action"] != "volume":
            raise ProtocolError("malformed", "only a volume control may name nodes")
        if not isinstance(nodes, list) or not 1 <= len(nodes) <= MAX_NODES:
            raise ProtocolError("malformed", f"nodes must be a list of 1..{MAX_NODES} node ids")
        for node in nodes:
            if not isinstance(node, str) or not 1 <= len(node) <= MAX_ID:
                raise ProtocolError("malformed", f"nodes must hold node ids, got: {brief(node)}")


def _level(value: object, name: str) -> None:
    if not is_int(value) or not 0 <= value <= 100:
        raise ProtocolError("malformed", f"{name} must be an integer 0..100, got: {brief(value)}")


def _common(env: Mapping[str, Any], kind: str) -> None:
    if env.get("v") != VERSION or not is_int(env.get("v")):
        raise ProtocolError("unsupported_version", f"v must be {VERSION}")
    if env.get("kind") != kind:
        raise ProtocolError("malformed", f"kind must be {kind!r}, got: {brief(env.get('kind'))}")
    for name in ("commune", "hamlet", "id"):
        _text(env, name, MAX_ID)
    _time(env, "issued_at")
    _time(env, "expires_at")
    if "status" in env:
        _choice(env, "status", STATUSES)
    seq = env.get("seq")
    if seq is not None and (not is_int(seq) or not 0 <= seq < 2**63):
        raise ProtocolError("malformed", f"seq must be a non-negative integer, got: {brief(seq)}")


def _item(item: object, where: str) -> None:
    if not isinstance(item, dict):
        raise ProtocolError("malformed", f"{where} must be an object")
    sha = item.get("sha256")
    if not isinstance(sha, str) or not SHA256_RE.fullmatch(sha):
        raise ProtocolError("malformed", f"{where}.sha256 must be 64 lowercase hex digits")
    size, chunks, duration = item.get("bytes"), item.get("chunks"), item.get("duration_ms")
    if not is_int(size) or not 1 <= size <= MAX_CLIP_BYTES:
        raise ProtocolError("malformed", f"{where}.bytes must be 1..{MAX_CLIP_BYTES}")
    if not is_int(chunks) or chunks != chunk_count(size):
        raise ProtocolError("malformed", f"{where}.chunks must be {chunk_count(size)}")
    if not is_int(duration) or not 0 <= duration <= 24 * 3600 * 1000:
        raise ProtocolError("malformed", f"{where}.duration_ms must be 0..86400000")
    for name in ("title", "lang", "announcement"):
        value = item.get(name)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ProtocolError("malformed", f"{where}.{name} must be text up to {MAX_TEXT}")


def _text(env: Mapping[str, Any], name: str, limit: int) -> None:
    value = env.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ProtocolError("malformed", f"{name} must be text of 1..{limit}, got: {brief(value)}")


def _time(env: Mapping[str, Any], name: str) -> None:
    value = env.get(name)
    if not is_int(value) or not 0 <= value < MAX_TIME:
        raise ProtocolError(
            "malformed", f"{name} must be integer Unix seconds, got: {brief(value)}"
        )


def _choice(env: Mapping[str, Any], name: str, allowed: Sequence[str]) -> None:
    if env.get(name) not in allowed:
        raise ProtocolError(
            "malformed", f"{name} must be one of {', '.join(allowed)}, got: {brief(env.get(name))}"
        )
