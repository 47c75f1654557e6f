"""What a playlist says, in a few words for log lines: its announcements' titles, not chimes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broadcastd.models import CHIME_LANG

if TYPE_CHECKING:
    from collections.abc import Iterable

    from broadcastd.protocol.envelopes import PlaylistItem

MAX_TITLE = 120  # a log line stays one readable line


def playlist_title(items: Iterable[PlaylistItem]) -> str:
    """`Tin 0 / Tin 1`: each announcement's title once, in play order."""
    titles = dict.fromkeys(i.title for i in items if i.lang != CHIME_LANG)
    text = " / ".join(titles)
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…"
