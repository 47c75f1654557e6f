"""Small pieces of the MQTT contract (DESIGN.md §5) that protocol, envelopes and keys all use.

It imports none of them, so they can share these without importing each other in a cycle.
"""

from __future__ import annotations

import re
from typing import Final, TypeGuard

VERSION: Final = 1
CHUNK_SIZE: Final = 64 * 1024
SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
# Every id the daemon issues (playlists `20261124-noon-ban-a-0123456789`, controls `stop-N`) is
# built from config slugs, dates, digits and lowercase hex joined by '-'. An id from the wire that
# is not one (markup, escapes, control characters) is refused before it is stored or shown.
WIRE_ID_MAX: Final = 200
_WIRE_ID: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def is_wire_id(value: object) -> TypeGuard[str]:
    """A string in the id grammar: lowercase letters, digits and inner '-', 1..200 characters."""
    return (
        isinstance(value, str)
        and len(value) <= WIRE_ID_MAX
        and _WIRE_ID.fullmatch(value) is not None
    )


def chunk_count(size: int) -> int:
    """How many ≤64 KiB chunks `size` bytes take (0 for 0 bytes)."""
    return -(-size // CHUNK_SIZE)


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool (JSON `true` parses to a Python bool, which is an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def brief(value: object) -> str:
    """`repr(value)` cut to 40 characters, for error messages about hostile input."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
