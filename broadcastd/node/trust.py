"""The signing keys a speaker trusts (DESIGN.md §5, key rotation), kept in `cache_dir/trust.json`.

It starts from node.yaml's `public_key`. A verified key-rotation control adds the new key and
gives the old one a retirement time; from then on the old key's signatures are refused
(`retired_key`), whatever they sign, rotations included. The file keeps retired keys so an old
copy of a rotation cannot bring one back, and the node.yaml key it started from (`seed`): a
node.yaml with another key is a re-provisioned speaker, whose trust starts over from that key.

Blocking file work (`open`, `accept`); one owner, the agent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypeVar

from broadcastd import protocol
from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.localtime import local_time
from broadcastd.transport.privatefiles import private_dir, replace

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from broadcastd.localtime import Zone

log = logging.getLogger(__name__)

TRUST_FILE = "trust.json"
ROTATIONS_KEPT = 16  # only the latest is retained on the broker; a few more cost nothing
_T = TypeVar("_T")


@dataclass(slots=True)
class TrustedKey:
    key: str  # standard base64 of the raw public key
    retire_at: int | None = None  # from then on (this node's clock) its signatures are refused
    rotation: str | None = None  # the rotation that brought it; None: node.yaml


class TrustStore:
    """The keys one speaker verifies envelopes, receipts and rotations with."""

    def __init__(
        self, cache_dir: Path, seed: str, *, clock: Callable[[], float], tz: Zone = None
    ) -> None:
        self.path = cache_dir / TRUST_FILE
        self.seed = _canonical_key(seed)
        self.clock = clock
        self.tz = tz  # for times in log lines and refusals
        self._loaded: dict[str, protocol.Ed25519PublicKey] = {}
        self.keys: list[TrustedKey] = [TrustedKey(self.seed)]
        self.rotations: dict[str, str] = {}  # applied rotation id -> sha256 of its wire bytes
        self.newest_issued = -1  # issued_at of the newest rotation applied

    def open(self) -> None:
        """Read trust.json (after the cache_dir exists); write it when there is none yet."""
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            self._save()
            return
        except (OSError, ValueError) as exc:
            raise BroadcastdError(f"{self.path}: unreadable trusted keys: {exc}") from None
        try:
            seed = str(raw["seed"])
            keys = [TrustedKey(**k) for k in raw["keys"]]
            rotations = {str(k): str(v) for k, v in raw["rotations"].items()}
            newest = int(raw["newest_issued"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BroadcastdError(f"{self.path}: unreadable trusted keys: {exc!r}") from None
        if seed != self.seed:
            # Only a new bundle changes node.yaml's key: the administrator re-provisioned this
            # speaker (a compromised key, a speaker away past a retirement) and starts it over.
            log.warning(
                "node.yaml has a new public key %s: trusted keys start over from it",
                protocol.fingerprint(self.seed),
            )
            self._save()
            return
        self.keys, self.rotations, self.newest_issued = keys, rotations, newest

    def trusted(self, now: float) -> list[protocol.Ed25519PublicKey]:
        return [self._key(k.key) for k in self.keys if not _retired(k, now)]

    def _key(self, b64: str) -> protocol.Ed25519PublicKey:
        key = self._loaded.get(b64)
        if key is None:
            key = self._loaded[b64] = protocol.load_public_key(b64)
        return key

    def when(self, ts: float | None) -> str:
        return "never" if ts is None else local_time(ts, self.tz)

    def trusts(self, key: str, now: float) -> bool:
        """Whether `key` (base64) is trusted now (a speaker provisioned with the new key)."""
        wanted = _canonical_key(key)
        return any(k.key == wanted and not _retired(k, now) for k in self.keys)

    def handed_over(self, key: str) -> TrustedKey | None:
        """The entry of `key` (base64) if a rotation already set its retirement: a key signs
        one rotation, so a thief holding it cannot add a key or move its retirement."""
        wanted = _canonical_key(key)
        return next((k for k in self.keys if k.key == wanted and k.retire_at is not None), None)

    def retired(self, key: str, now: float) -> TrustedKey | None:
        """The entry of `key` (base64) if this node trusted it once and it is retired now."""
        wanted = _canonical_key(key)
        return next((k for k in self.keys if k.key == wanted and _retired(k, now)), None)

    def verify(
        self, payload: bytes, *, commune: str, hamlet: str
    ) -> protocol.Playlist | protocol.Control:
        """An envelope signed by a key trusted now; `retired_key` if a retired one signed it."""
        now = self.clock()
        return self._first(
            lambda key: protocol.verify(payload, key, commune=commune, hamlet=hamlet, now=now),
            now,
        )

    def verify_receipt(self, payload: bytes, *, commune: str, node: str) -> list[int]:
        now = self.clock()
        return self._first(
            lambda key: protocol.verify_receipt(payload, key, commune=commune, node=node), now
        )

    def _first(self, check: Callable[[protocol.Ed25519PublicKey], _T], now: float) -> _T:
        """`check` with each trusted key until one signature matches."""
        failure = ProtocolError("bad_signature", "no key is trusted")
        for key in self.trusted(now):
            try:
                return check(key)
            except ProtocolError as exc:
                if exc.reason != "bad_signature":
                    raise
                failure = exc
        for entry in self.keys:
            if _retired(entry, now) and _signs(check, self._key(entry.key)):
                raise ProtocolError(
                    "retired_key",
                    f"signed by key {protocol.fingerprint(entry.key)}, retired at "
                    f"{self.when(entry.retire_at)}",
                )
        raise failure

    def applied(self, rotation_id: str, payload: bytes) -> bool:
        """Whether exactly these bytes were applied before (the retained copy, delivered again)."""
        return self.rotations.get(rotation_id) == hashlib.sha256(payload).hexdigest()

    def note(self, rotation_id: str, payload: bytes) -> None:
        """Remember these bytes as handled (a rotation to a key trusted already), durably."""
        self._remember(rotation_id, payload)
        self._save()

    def accept(self, rotation: protocol.KeyRotation, payload: bytes) -> None:
        """Trust the new key, retire the old one at `retire_at`, durably."""
        new = _canonical_key(rotation.key)
        for entry in self.keys:
            if entry.key == rotation.retires:
                entry.retire_at = rotation.retire_at
        if all(entry.key != new for entry in self.keys):
            self.keys.append(TrustedKey(new, None, rotation.id))
        self._remember(rotation.id, payload)
        self.newest_issued = max(self.newest_issued, rotation.issued_at)
        self._save()

    def _remember(self, rotation_id: str, payload: bytes) -> None:
        self.rotations[rotation_id] = hashlib.sha256(payload).hexdigest()
        while len(self.rotations) > ROTATIONS_KEPT:
            del self.rotations[next(iter(self.rotations))]  # the oldest: dicts keep order

    def _save(self) -> None:
        doc = {
            "seed": self.seed,
            "keys": [asdict(k) for k in self.keys],
            "rotations": self.rotations,
            "newest_issued": self.newest_issued,
        }
        data = json.dumps(doc, sort_keys=True, indent=1).encode()
        try:
            with private_dir(self.path.parent, fresh=False) as fd:
                replace(fd, TRUST_FILE, data)
                os.fsync(fd)  # the new name must survive a power cut
        except (OSError, BroadcastdError) as exc:
            msg = f"{self.path}: cannot save trusted keys: {exc}"
            raise BroadcastdError(msg) from None


def _signs(
    check: Callable[[protocol.Ed25519PublicKey], object], key: protocol.Ed25519PublicKey
) -> bool:
    try:
        check(key)
    except ProtocolError:
        return False
    return True


def _retired(entry: TrustedKey, now: float) -> bool:
    return entry.retire_at is not None and now >= entry.retire_at


def _canonical_key(key: str) -> str:
    return protocol.public_key_b64(protocol.load_public_key(key))
