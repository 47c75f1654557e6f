"""`broadcastd nodes [--hamlet H] [--json]`: every configured node and its last known state.

The live registry is inside the running daemon; this command reads what the daemon journaled: each
node's latest reachability transition (state, since when, why) and its latest ack. A node the
journal never saw is `unknown`. If the daemon is stopped, states are as of its last transition.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from rich.table import Table

from broadcastd.config import load_config
from broadcastd.errors import UsageError
from broadcastd.journal.nodestates import journaled_nodes
from broadcastd.journal.reporttable import inert, wide_console
from broadcastd.journal.store import Journal

if TYPE_CHECKING:
    import argparse

    from broadcastd.config import Config

STYLE = {"online": "green", "stale": "yellow", "offline": "red", "unknown": "dim"}


def node_states(config: Config, journal: Journal, hamlet: str | None) -> list[dict[str, object]]:
    return [
        n.row()
        | {
            "cause": n.transition.cause if n.transition else None,
            "last_ack": (
                {"playlist": n.ack.playlist, "status": n.ack.status, "ts": n.ack.ts}
                if n.ack
                else None
            ),
        }
        for n in journaled_nodes(config, journal, hamlet)
    ]


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    if args.hamlet is not None and args.hamlet not in {h.id for h in config.hamlets}:
        known = ", ".join(h.id for h in config.hamlets)
        raise UsageError(f"--hamlet must be one of {known}, got: {args.hamlet!r}")
    journal = Journal.open(config.state_dir / "journal.sqlite3", readonly=True)
    try:
        rows = node_states(config, journal, args.hamlet)
    finally:
        journal.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    tz = config.commune.tz
    table = Table(title="Nodes (last journaled state)")
    for name in ("node", "hamlet", "households", "state", "since", "cause", "last ack"):
        table.add_column(name)
    for r in rows:
        since = r["since"]
        when = (
            dt.datetime.fromtimestamp(float(since), tz=tz).strftime("%Y-%m-%d %H:%M:%S")
            if isinstance(since, float | int)
            else "-"
        )
        ack = r["last_ack"]
        ack_text = f"{ack['status']} {ack['playlist']}" if isinstance(ack, dict) else "-"
        state = str(r["state"])
        # Every cell is inert text: a journaled ack or cause may hold markup or escapes.
        table.add_row(
            inert(r["node"]),
            inert(r["hamlet"]),
            inert(r["households"]),
            inert(state, STYLE.get(state, "white")),
            inert(when),
            inert(r["cause"] or "-"),
            inert(ack_text),
        )
    wide_console().print(table)
    return 0
