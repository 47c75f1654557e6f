"""Small pieces of the MQTT contract (DESIGN.md §5) that protocol, envelopes and keys all use.

It imports none of them, so they can share these without importing each other in a cycle.
"""

from __future__ import annotations

import re
from typing import Final, TypeGuard

VERSION: Final = 1
CHUNK_SIZE: Final = 64 * 1024
SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")


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
