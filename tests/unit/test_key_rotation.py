"""Signing-key rotation without a broker: the daemon's key files and a speaker's trusted keys."""

from __future__ import annotations

import asyncio
import json
import stat
from typing import TYPE_CHECKING

import pytest
from support.clock import FakeClock
from support.envelopes import signed_playlist

from broadcastd import protocol
from broadcastd.errors import ProtocolError
from broadcastd.node.keyupdate import KeyUpdates
from broadcastd.node.trust import TRUST_FILE, TrustStore
from broadcastd.transport.signingkeys import RotatingKey, RotationError, SigningKeys

if TYPE_CHECKING:
    from pathlib import Path

T0 = 1_800_000_000
COMMUNE = "sang-moc"


def _keys(tmp_path: Path) -> SigningKeys:
    protocol.generate_private_key(tmp_path / "signing.key")
    return SigningKeys(tmp_path / "signing.key")


def _playlist(key: protocol.Ed25519PrivateKey, pid: str, now: int) -> bytes:
    return signed_playlist(
        key,
        commune=COMMUNE,
        hamlet="ban-a",
        playlist_id=pid,
        play_at=now + 60,
        expires_at=now + 600,
        issued_at=now,
    )


def test_the_active_key_follows_the_clock_across_a_restart_and_retirement(tmp_path):
    keys = _keys(tmp_path)
    old = protocol.public_key_b64(keys.current)
    rotation = keys.rotate(commune=COMMUNE, now=T0, activate_in=60, grace=600)
    assert rotation.retires == old
    assert rotation.activate_at == T0 + 60
    assert rotation.retire_at == T0 + 660
    clock = FakeClock(T0 + 59)
    signer = RotatingKey(keys, clock)
    assert protocol.public_key_b64(signer) == old
    clock.t = T0 + 60
    assert protocol.public_key_b64(signer) == rotation.key
    # A daemon restarted mid-rotation reads the same files and signs with the same key.
    again = SigningKeys(tmp_path / "signing.key")
    assert protocol.public_key_b64(again.active(T0 + 30)) == old
    assert protocol.public_key_b64(again.active(T0 + 61)) == rotation.key
    for path in (again.path, again.next_path, again.rotation_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not again.finish(T0 + 659)
    assert again.finish(T0 + 660)
    assert not again.next_path.exists()  # the old private key is gone from the disk
    finished = SigningKeys(tmp_path / "signing.key")
    assert protocol.public_key_b64(finished.current) == rotation.key
    assert finished.in_progress() is None
    assert finished.wire == keys.wire  # still published retained, for nodes that were away


def test_a_second_rotation_waits_for_the_first_to_retire(tmp_path):
    keys = _keys(tmp_path)
    first = keys.rotate(commune=COMMUNE, now=T0, activate_in=0, grace=100)
    with pytest.raises(RotationError, match="in progress until"):
        keys.rotate(commune=COMMUNE, now=T0 + 50, activate_in=0, grace=100)
    second = keys.rotate(commune=COMMUNE, now=T0 + 100, activate_in=0, grace=100)
    assert second.retires == first.key  # signed by the key the first one brought


def test_a_lost_next_key_is_reported_not_silently_ignored(tmp_path):
    keys = _keys(tmp_path)
    keys.rotate(commune=COMMUNE, now=T0, activate_in=60, grace=600)
    keys.next_path.unlink()
    with pytest.raises(RotationError, match=r"signing\.key\.next: the key rotation"):
        SigningKeys(tmp_path / "signing.key")


def test_a_rotation_verifies_only_with_the_key_it_retires(tmp_path):
    keys = _keys(tmp_path)
    old = keys.current.public_key()
    keys.rotate(commune=COMMUNE, now=T0, activate_in=60, grace=600)
    assert keys.wire is not None
    assert protocol.verify_rotation(keys.wire, [old], commune=COMMUNE).id == f"keys-{T0}"
    stranger = protocol.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ProtocolError) as refused:
        protocol.verify_rotation(keys.wire, [stranger], commune=COMMUNE)
    assert refused.value.reason == "bad_signature"
    with pytest.raises(ProtocolError) as wrong:
        protocol.verify_rotation(keys.wire, [old], commune="other")
    assert wrong.value.reason == "wrong_commune"
    tampered = keys.wire.replace(b'"retire_at":', b'"retire_at":9')
    with pytest.raises(ProtocolError) as forged:
        protocol.verify_rotation(tampered, [old], commune=COMMUNE)
    assert forged.value.reason == "bad_signature"


class _Node:
    """A speaker's trust store and rotation handler, with what it acked and refused."""

    def __init__(self, cache: Path, seed: str, clock: FakeClock) -> None:
        cache.mkdir(parents=True, exist_ok=True)
        self.trust = TrustStore(cache, seed, clock=clock)
        self.trust.open()
        self.acks: list[tuple[str, str, str]] = []
        self.refused: list[tuple[str, str]] = []
        self.updates = KeyUpdates(
            self.trust,
            COMMUNE,
            reject=lambda cid, exc: self.refused.append((cid, exc.reason)),
            ack=lambda pid, status, detail: self.acks.append((pid, status, detail)),
        )

    def receive(self, payload: bytes) -> None:
        asyncio.run(self.updates.on_message(payload))

    def check(self, payload: bytes) -> str:
        try:
            return self.trust.verify(payload, commune=COMMUNE, hamlet="ban-a").id
        except ProtocolError as exc:
            return exc.reason


def test_a_speaker_trusts_the_new_key_and_refuses_the_old_after_retirement(tmp_path):
    keys = _keys(tmp_path / "daemon")
    old_key = keys.current
    clock = FakeClock(T0)
    node = _Node(tmp_path / "node", protocol.public_key_b64(old_key), clock)
    rotation = keys.rotate(commune=COMMUNE, now=T0, activate_in=60, grace=600)
    assert keys.wire is not None
    assert keys.next is not None
    node.receive(keys.wire)
    assert node.acks == [(rotation.id, "received", f"key {protocol.fingerprint(rotation.key)}")]
    # Both keys during the grace period: a playlist signed before activation still plays.
    clock.t = T0 + 300
    assert node.check(_playlist(old_key, "before", T0 + 300)) == "before"
    assert node.check(_playlist(keys.next, "after", T0 + 300)) == "after"
    # The retained copy after a reconnect is quiet.
    node.receive(keys.wire)
    assert len(node.acks) == 1
    assert not node.refused
    # After retirement the old key's signatures are refused, and it stays so after a restart.
    clock.t = T0 + 660
    restarted = _Node(tmp_path / "node", protocol.public_key_b64(old_key), clock)
    assert restarted.check(_playlist(old_key, "forged", T0 + 660)) == "retired_key"
    assert restarted.check(_playlist(keys.next, "genuine", T0 + 660)) == "genuine"
    saved = json.loads((tmp_path / "node" / TRUST_FILE).read_text())
    assert [k["retire_at"] for k in saved["keys"]] == [rotation.retire_at, None]


def _handover(
    signer: protocol.Ed25519PrivateKey, rotation_id: str, at: int, retire_at: int | None = None
) -> bytes:
    """A rotation signed by `signer`, issued and activated at `at`, to a fresh key."""
    return protocol.KeyRotation(
        commune=COMMUNE,
        id=rotation_id,
        key=protocol.public_key_b64(protocol.Ed25519PrivateKey.generate()),
        retires=protocol.public_key_b64(signer),
        activate_at=at,
        retire_at=at if retire_at is None else retire_at,
        issued_at=at,
    ).seal(signer)


def test_forged_replayed_and_retired_rotations_are_refused(tmp_path):
    keys = _keys(tmp_path / "daemon")
    old_key = keys.current
    clock = FakeClock(T0)
    node = _Node(tmp_path / "node", protocol.public_key_b64(old_key), clock)
    # Signed by a key the node never trusted.
    node.receive(_handover(protocol.Ed25519PrivateKey.generate(), "keys-1", T0))
    assert node.refused == [("keys-1", "bad_signature")]
    keys.rotate(commune=COMMUNE, now=T0, activate_in=0, grace=100)
    assert keys.wire is not None
    assert keys.next is not None
    node.receive(keys.wire)
    # An older rotation signed by the same (still trusted) key.
    node.receive(_handover(old_key, "keys-2", T0 - 10))
    assert node.refused[-1] == ("keys-2", "superseded")
    # Signed by the new key but issued before the rotation that brought it: a replay.
    node.receive(_handover(keys.next, "keys-5", T0 - 5))
    assert node.refused[-1] == ("keys-5", "replay")
    # A newer one by the same key (a thief holding it during the grace period): refused too,
    # so the thief can neither add a key nor move the old key's retirement.
    clock.t = T0 + 1
    node.receive(_handover(old_key, "keys-4", T0 + 1, retire_at=T0 + 10**6))
    assert node.refused[-1] == ("keys-4", "superseded")
    assert len(node.trust.trusted(clock.t)) == 2
    # After retirement, the old key cannot start another rotation.
    clock.t = T0 + 100
    node.receive(_handover(old_key, "keys-3", T0 + 100, retire_at=T0 + 200))
    assert node.refused[-1] == ("keys-3", "retired_key")
    assert len(node.trust.trusted(clock.t)) == 1


def test_a_new_node_yaml_key_starts_trust_over(tmp_path):
    clock = FakeClock(T0)
    first = protocol.public_key_b64(protocol.Ed25519PrivateKey.generate())
    node = _Node(tmp_path / "node", first, clock)
    node.trust.note("keys-9", b"x")
    reprovisioned = protocol.public_key_b64(protocol.Ed25519PrivateKey.generate())
    again = _Node(tmp_path / "node", reprovisioned, clock)
    assert [protocol.public_key_b64(k) for k in again.trust.trusted(T0)] == [reprovisioned]
    assert again.trust.rotations == {}


def test_a_speaker_away_past_the_retirement_catches_up_from_the_retained_rotation(tmp_path):
    keys = _keys(tmp_path / "daemon")
    old = protocol.public_key_b64(keys.current)
    rotation = keys.rotate(commune=COMMUNE, now=T0, activate_in=60, grace=600)
    assert keys.wire is not None
    clock = FakeClock(rotation.retire_at + 86400)
    node = _Node(tmp_path / "node", old, clock)
    node.receive(keys.wire)
    assert node.acks == [(rotation.id, "received", f"key {protocol.fingerprint(rotation.key)}")]
    assert [protocol.public_key_b64(k) for k in node.trust.trusted(clock.t)] == [rotation.key]
