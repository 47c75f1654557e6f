"""`broadcastd audit verify`: check the journal's hash chain; exit 1 at the first altered row."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from broadcastd.config import load_config
from broadcastd.errors import EX_FAILURE, EX_OK
from broadcastd.journal.audit import verify

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    path = config.state_dir / "journal.sqlite3"
    finding = verify(path)
    if finding is not None:
        print(f"ALTERED: {path}: {finding}")
        return EX_FAILURE
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    finally:
        conn.close()
    print(f"ok: {rows} audit rows, chain intact")
    return EX_OK
