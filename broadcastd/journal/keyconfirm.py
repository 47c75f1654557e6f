"""Which speakers confirmed the newest signing key (DESIGN.md §5, key rotation), as journaled:
the latest `key_rotation` event and each node's ack of that rotation's id. `broadcastd nodes`
and the web console read it through these functions, so they say the same thing.

The journal's text is the daemon's, but an ack's detail is what a speaker said: callers print it
as inert text (the CLI) or autoescaped (the console).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from broadcastd.journal.store import Journal

PENDING: Final = "pending"
CONFIRMED: Final = "confirmed"
REFUSED: Final = "refused: "  # followed by the speaker's reason


def key_confirmations(journal: Journal) -> tuple[dict[str, object] | None, dict[str, str]]:
    """The latest key rotation journaled (id, fingerprints, times) and node -> what it said of it:
    `confirmed` (it acked the new key) or `refused: <reason>`."""
    details = journal.event_details("key_rotation")
    if not details:
        return None, {}
    try:
        rotation = json.loads(details[-1])
    except ValueError:
        return None, {}
    if not isinstance(rotation, dict):
        return None, {}
    said: dict[str, str] = {}
    for ack in journal.acks_for(str(rotation.get("id"))):
        said[ack.node] = CONFIRMED if ack.status == "received" else f"{REFUSED}{ack.detail}"
    return rotation, said


def key_status(
    rotation: dict[str, object] | None, said: dict[str, str], node: str
) -> dict[str, object] | None:
    """`{"id", "new_key", "status"}` of `node` for the latest rotation (status `confirmed`,
    `pending` or `refused: <reason>`); None before any rotation."""
    if rotation is None:
        return None
    return {
        "id": rotation.get("id"),
        "new_key": rotation.get("new_key"),
        "status": said.get(node, PENDING),
    }
