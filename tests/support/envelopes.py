"""Signed playlist and control envelopes as a controller would publish them: the wire bytes."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING

from broadcastd import protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def missing_item() -> protocol.PlaylistItem:
    """A clip nobody publishes: a playlist naming it stays pending and never plays."""
    return protocol.PlaylistItem(
        sha256=uuid.uuid4().hex * 2,
        bytes=1000,
        chunks=1,
        duration_ms=500,
        title="Tin thử",
        lang="vi",
        announcement="ann",
    )


def signed_playlist(  # noqa: PLR0913 - one keyword per envelope field a test varies
    key: Ed25519PrivateKey,
    *,
    commune: str,
    hamlet: str,
    playlist_id: str,
    play_at: int,
    expires_at: int,
    issued_at: int,
    items: Sequence[protocol.PlaylistItem] | None = None,
    slot: str = "noon",
    priority: str = "normal",
    status: str = "live",
    seq: int | None = None,
) -> bytes:
    """A playlist signed with `key`; without `items`, one `missing_item()`."""
    env = protocol.playlist_envelope(
        commune=commune,
        hamlet=hamlet,
        playlist_id=playlist_id,
        slot=slot,
        play_at=play_at,
        expires_at=expires_at,
        priority=priority,
        issued_at=issued_at,
        items=[missing_item()] if items is None else items,
        status=status,
        seq=seq,
    )
    return signed(key, env)


def signed(key: Ed25519PrivateKey, envelope: Mapping[str, object]) -> bytes:
    """The wire bytes of `envelope` signed with `key`, as a controller publishes it."""
    return protocol.encode(protocol.sign(envelope, key))


def journaled_playlist(  # noqa: PLR0913 - one keyword per envelope field a test varies
    playlist_id: str,
    hamlet: str,
    *,
    play_at: int,
    expires_at: int,
    items: Sequence[protocol.PlaylistItem],
    commune: str = "sm",
    slot: str = "noon",
    status: str = "live",
    priority: str = "normal",
    issued_at: int | None = None,
) -> protocol.Signed[protocol.Playlist]:
    """A playlist as the journal keeps it, with a placeholder signature: for journal and report
    tests, which never verify one."""
    playlist = protocol.Playlist(
        commune=commune,
        hamlet=hamlet,
        id=playlist_id,
        slot=slot,
        play_at=play_at,
        expires_at=expires_at,
        priority=priority,
        issued_at=play_at - 1800 if issued_at is None else issued_at,
        items=tuple(items),
        status=status,
        seq=1,
    )
    return protocol.Signed(playlist, protocol.encode({**playlist.unsigned(), "sig": "x"}))


def item(announcement: str, duration_ms: int, lang: str = "vi") -> protocol.PlaylistItem:
    """A clip of `duration_ms` in `lang` (its bytes are never fetched in journal tests)."""
    return protocol.PlaylistItem(
        sha256=hashlib.sha256(announcement.encode()).hexdigest(),
        bytes=10,
        chunks=1,
        duration_ms=duration_ms,
        title=announcement.capitalize(),
        lang=lang,
        announcement=announcement,
    )
