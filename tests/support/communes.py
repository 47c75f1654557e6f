"""Small commune configs as YAML text, for tests that load or check a config without a daemon."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# Sảng Mộc's speakers: two in Bản Chương, one in Nà Láy; tests of the broker's files use these ids.
SANG_MOC_HAMLETS = """
  - {id: ban-chuong, name: "Bản Chương", households: 87,
     nodes: [{id: bc-01, households: 50}, {id: bc-02, households: 37}]}
  - {id: na-lay, name: "Nà Láy", households: 40, nodes: [{id: nl-01, households: 40}]}
"""


def write_sang_moc(directory: Path, hamlets: str = SANG_MOC_HAMLETS) -> Path:
    """`directory/commune.yaml`: Sảng Mộc with one slot and `hamlets` (a YAML list, indented)."""
    path = directory / "commune.yaml"
    path.write_text(
        'commune: {id: sang-moc, name: "Xã Sảng Mộc"}\n'
        "signing: {private_key_file: ed25519.key}\n"
        "state_dir: state\n"
        'slots: {noon: {at: "11:30"}}\n'
        "hamlets:" + hamlets,
        encoding="utf-8",
    )
    return path


def thu(*, hamlets: int = 2, slots: str = 'noon: {at: "11:30"}') -> str:
    """Xã Thử: `hamlets` nodeless hamlets ban-a, ban-b, ...; `slots` is one YAML mapping line."""
    lines = [
        "commune: {id: thu, name: Xã Thử}",
        "signing: {private_key_file: key}",
        "state_dir: state",
        "slots:",
        f"  {slots}",
        "tts: {engines: [espeak]}",
        "hamlets:",
    ]
    lines += [
        f"  - {{id: ban-{c}, name: Bản {c.upper()}, households: 10}}" for c in "abcdefgh"[:hamlets]
    ]
    return "\n".join(lines) + "\n"


def write_one_hamlet(directory: Path, *, tts: str, rest: str = "") -> Path:
    """`directory/c.yaml`: Xã X, one nodeless hamlet `a`, one slot, `tts: <tts>` on line 8 and
    `rest` (more top-level YAML) from line 9; an empty signing key beside it."""
    (directory / "key").write_bytes(b"")
    path = directory / "c.yaml"
    path.write_text(
        'commune: {id: x, name: "X"}\n'
        "signing: {private_key_file: key}\n"
        "state_dir: state\n"
        "slots:\n"
        '  noon: {at: "11:30"}\n'
        "hamlets:\n"
        "  - {id: a, name: A, households: 1}\n"
        f"tts: {tts}\n" + rest,
        encoding="utf-8",
    )
    return path
