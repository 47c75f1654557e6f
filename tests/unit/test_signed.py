"""Typed envelopes at the edge: `seal` signs a Playlist/Control, `verify` and `signed_playlist`
read one back; the bytes are those of the dict builders and the fixed test vector."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.vector import NOW, SEED, VECTOR_PLAYLIST, VECTOR_SIG, control_fields, vector_fields

from broadcastd import protocol as p
from broadcastd.errors import ProtocolError

KEY = Ed25519PrivateKey.from_private_bytes(SEED)
PLAYLIST = VECTOR_PLAYLIST
CONTROL = p.Control(
    commune="sang-moc",
    hamlet="ban-chuong",
    id="stop-8",
    action="stop",
    target=None,
    value=None,
    issued_at=1795928400,
    expires_at=1795929000,
    seq=8,
)


def verified(wire: bytes) -> p.Playlist | p.Control:
    return p.verify(wire, KEY.public_key(), commune="sang-moc", hamlet="ban-chuong", now=NOW)


def test_sealing_a_playlist_gives_the_fixed_vector_bytes():
    signed = p.seal(PLAYLIST, KEY)
    assert json.loads(signed.wire)["sig"] == VECTOR_SIG
    by_hand = p.playlist_envelope(**vector_fields())
    assert signed.wire == p.encode(p.sign(by_hand, KEY))
    assert signed.envelope is PLAYLIST
    assert verified(signed.wire) == PLAYLIST


def test_a_live_control_is_signed_without_status_and_reads_back_equal():
    signed = p.seal(CONTROL, KEY)
    body = json.loads(signed.wire)
    assert "status" not in body
    assert (body["target"], body["value"], body["seq"]) == (None, None, 8)
    by_hand = p.control_envelope(**control_fields(control_id="stop-8", action="stop", seq=8))
    assert signed.wire == p.encode(p.sign(by_hand, KEY))
    assert verified(signed.wire) == CONTROL
    exercise = json.loads(p.seal(replace(CONTROL, status="exercise"), KEY).wire)
    assert exercise["status"] == "exercise"


def test_a_journaled_playlist_is_typed_again_with_its_bytes_unchanged():
    signed = p.seal(PLAYLIST, KEY)
    again = p.signed_playlist(signed.wire)
    assert again == signed
    with pytest.raises(ProtocolError, match="kind"):
        p.signed_playlist(p.seal(CONTROL, KEY).wire)
    with pytest.raises(ProtocolError, match="not JSON"):
        p.signed_playlist(b"{")


def test_seal_refuses_what_a_node_would_reject():
    with pytest.raises(ProtocolError, match="priority"):
        p.seal(replace(PLAYLIST, priority="urgent"), KEY)
    with pytest.raises(ProtocolError, match="items"):
        p.seal(replace(PLAYLIST, items=()), KEY)
    with pytest.raises(ProtocolError, match="value"):
        p.seal(replace(CONTROL, action="volume"), KEY)
