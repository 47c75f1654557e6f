"""The contract's fixed test vector (DESIGN.md §5): an independent speaker or controller must
produce exactly these bytes and this signature from this seed and playlist."""

from __future__ import annotations

from typing import Any

from broadcastd import protocol

SEED = bytes(range(32))
VECTOR_PUBLIC = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
VECTOR_CANONICAL = (
    '{"commune":"sang-moc","expires_at":1795931400,"hamlet":"ban-chuong",'
    '"id":"2026-11-24-noon-ban-chuong","issued_at":1795928400,"items":[{"announcement":'
    '"vaccine-2026-11","bytes":70000,"chunks":2,"duration_ms":12500,"lang":"vi","sha256":'
    '"abababababababababababababababababababababababababababababababab",'
    '"title":"Tiêm phòng cho gia súc"}],"kind":"playlist","play_at":1795930200,'
    '"priority":"normal","seq":7,"slot":"noon","status":"live","v":1}'
).encode()
VECTOR_SIG = (
    "9WWGQAscfA7/aMp6Yr+3ChJXuYacxpG8lNo9n4fGBM44DYokk6+qapgVskIQMnwIhgwR/sAj5GPwY+ZSRlyNCg=="
)
NOW = 1795928500.0  # between issued_at and play_at: the vector verifies

VECTOR_PLAYLIST = protocol.Playlist(
    commune="sang-moc",
    hamlet="ban-chuong",
    id="2026-11-24-noon-ban-chuong",
    slot="noon",
    play_at=1795930200,
    expires_at=1795931400,
    priority="normal",
    issued_at=1795928400,
    items=(
        protocol.PlaylistItem(
            sha256="ab" * 32,
            bytes=70000,
            chunks=2,
            duration_ms=12500,
            title="Tiêm phòng cho gia súc",
            lang="vi",
            announcement="vaccine-2026-11",
        ),
    ),
    status="live",
    seq=7,
)


def vector_fields() -> dict[str, Any]:
    """The vector as keyword arguments of `protocol.playlist_envelope`."""
    pl = VECTOR_PLAYLIST
    return {
        "commune": pl.commune,
        "hamlet": pl.hamlet,
        "playlist_id": pl.id,
        "slot": pl.slot,
        "play_at": pl.play_at,
        "expires_at": pl.expires_at,
        "priority": pl.priority,
        "issued_at": pl.issued_at,
        "items": list(pl.items),
        "status": pl.status,
        "seq": pl.seq,
    }


def control_fields(**fields: Any) -> dict[str, Any]:
    """A control for the vector's commune and hamlet, issued with it and valid ten minutes, as
    keyword arguments of `protocol.control_envelope`; `fields` adds the rest (id, action...)."""
    return {
        "commune": VECTOR_PLAYLIST.commune,
        "hamlet": VECTOR_PLAYLIST.hamlet,
        "issued_at": VECTOR_PLAYLIST.issued_at,
        "expires_at": VECTOR_PLAYLIST.issued_at + 600,
        **fields,
    }
