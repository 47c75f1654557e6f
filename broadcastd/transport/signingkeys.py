"""The daemon's signing keys on disk, and which of them signs now (DESIGN.md §5, key rotation).

`signing.private_key_file` (P) holds the key in use. `broadcastd keygen --rotate` adds `P.next`,
the new key (0600), and `P.rotation`, the signed rotation control announcing it (its exact wire
bytes, published retained). P signs until `activate_at`, P.next from then on. At `retire_at` the
rotation is finished: P.next is renamed over P, so the old private key is gone from the disk;
P.rotation stays, so a node that was away still catches up from the retained copy. The key that
signs is chosen by the clock at every signature (`RotatingKey`): a daemon restarted in the middle
of a rotation signs with the right one, and a daemon that was down at `retire_at` finishes the
rotation when it loads the files again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.localtime import local_time
from broadcastd.protocol.keys import fingerprint, generate_private_key, load_private_key
from broadcastd.protocol.keys import public_key_b64 as b64
from broadcastd.protocol.rotation import KeyRotation, read_rotation
from broadcastd.transport.privatefiles import private_dir, replace

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

log = logging.getLogger(__name__)


class RotationError(BroadcastdError):
    """A rotation cannot start (one is in progress) or its files disagree."""


class SigningKeys:
    """P, and during a rotation P.next and P.rotation. Blocking file work; one owner (the
    daemon, or `keygen --rotate` when the daemon is not running)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_path = path.with_name(path.name + ".next")
        self.rotation_path = self.rotation_file(path)
        self.current = load_private_key(path)
        self.next: Ed25519PrivateKey | None = None
        self.rotation: KeyRotation | None = None  # the latest rotation, finished or not
        self.wire: bytes | None = None  # its signed bytes, published as they are
        self._load_rotation()

    @staticmethod
    def rotation_file(path: Path) -> Path:
        """Where the rotation announcing the next key of the key file `path` is kept."""
        return path.with_name(path.name + ".rotation")

    def _load_rotation(self) -> None:
        try:
            wire = self.rotation_path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise RotationError(f"{self.rotation_path}: cannot read: {exc.strerror}") from None
        try:
            rotation = read_rotation(wire)
        except ProtocolError as exc:
            raise RotationError(f"{self.rotation_path}: not a key rotation: {exc}") from None
        self.rotation, self.wire = rotation, wire
        current = b64(self.current)
        if rotation.key == current:
            return  # finished: P is the key it announced
        if rotation.retires != current:
            raise RotationError(
                f"{self.rotation_path}: rotation {rotation.id} is neither from nor to the key in "
                f"{self.path} ({fingerprint(current)}); restore the key files from a backup"
            )
        try:
            upcoming = load_private_key(self.next_path)
        except BroadcastdError:
            upcoming = None
        if upcoming is None or b64(upcoming) != rotation.key:
            # The nodes learn the new key from the retained rotation and will refuse the old
            # one at retire_at: without the new private key nothing could be signed for them.
            raise RotationError(
                f"{self.next_path}: the key rotation {rotation.id} announced "
                f"({fingerprint(rotation.key)}) is missing or different; restore it from a "
                "backup, or re-provision the speakers with `broadcastd node-config`"
            )
        self.next = upcoming

    def active(self, now: float) -> Ed25519PrivateKey:
        """The key that signs at `now`: the new one from its activation on."""
        if self.next is not None and self.rotation is not None and now >= self.rotation.activate_at:
            return self.next
        return self.current

    def in_progress(self) -> KeyRotation | None:
        """The rotation whose old key is still on the disk (not yet retired here), if any."""
        return self.rotation if self.next is not None else None

    def finish(self, now: float) -> bool:
        """At or after `retire_at`: the new key replaces the old in P. True if it did."""
        rotation = self.in_progress()
        if rotation is None or self.next is None or now < rotation.retire_at:
            return False
        try:
            with private_dir(self.path.parent, fresh=False) as fd:
                os.replace(self.next_path.name, self.path.name, src_dir_fd=fd, dst_dir_fd=fd)
                os.fsync(fd)  # the rename must survive a power cut
        except OSError as exc:
            raise RotationError(f"{self.path}: cannot retire the old key: {exc.strerror}") from None
        self.current, self.next = self.next, None
        log.warning(
            "signing key rotation %s finished: key %s retired and deleted, %s in %s",
            rotation.id,
            fingerprint(rotation.retires),
            fingerprint(rotation.key),
            self.path,
        )
        return True

    def rotate(self, *, commune: str, now: int, activate_in: int, grace: int) -> KeyRotation:
        """Make the next key and the rotation announcing it, signed by the current key.

        RotationError while another rotation is in progress: a node that missed both could not
        follow (the retained topic holds one rotation), and its new key is not yet the only one.
        """
        self.finish(now)
        running = self.in_progress()
        if running is not None:
            raise RotationError(
                f"rotation {running.id} to key {fingerprint(running.key)} is in progress until "
                f"{local_time(running.retire_at)}; start the next one after that"
            )
        with contextlib.suppress(FileNotFoundError):
            # Left by a rotation that died before announcing it: no node ever heard of it.
            self.next_path.unlink()
        upcoming = generate_private_key(self.next_path)
        activate_at = now + max(0, activate_in)
        rotation = KeyRotation(
            commune=commune,
            id=f"keys-{now}",
            key=b64(upcoming),
            retires=b64(self.current),
            activate_at=activate_at,
            retire_at=activate_at + max(0, grace),
            issued_at=now,
        )
        wire = rotation.seal(self.current)
        # Durable before anything is published: a daemon that lost it after the speakers learnt
        # the new key would keep signing with the old one past its retirement.
        with private_dir(self.rotation_path.parent, fresh=False) as fd:
            replace(fd, self.rotation_path.name, wire)
            os.fsync(fd)  # both new names: the next key's and the rotation's
        self.next, self.rotation, self.wire = upcoming, rotation, wire
        return rotation


class RotatingKey(Ed25519PrivateKey):
    """The daemon's signing key as everything that signs sees it: the key `SigningKeys` says is
    active at the clock's time, looked up at every call. A subclass, not a new type, so the
    dispatcher, controls and receipts sign with it unchanged."""

    def __init__(self, keys: SigningKeys, clock: Callable[[], float]) -> None:
        self._keys = keys
        self._clock = clock

    def _now(self) -> Ed25519PrivateKey:
        return self._keys.active(self._clock())

    def sign(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._now().sign(data)

    def public_key(self) -> Ed25519PublicKey:
        return self._now().public_key()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,  # noqa: A002 - the name of the overridden parameter
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        return self._now().private_bytes(encoding, format, encryption_algorithm)

    def private_bytes_raw(self) -> bytes:
        return self._now().private_bytes_raw()

    def __copy__(self) -> RotatingKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> RotatingKey:
        return self
