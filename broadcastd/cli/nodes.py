"""`broadcastd nodes [--hamlet H] [--json]`: every configured node and its last known state.

The live registry is inside the running daemon; this command reads what the daemon journaled: each
node's latest reachability transition (state, since when, why) and its latest ack. A node the
journal never saw is `unknown`. If the daemon is stopped, states are as of its last transition.
After a `keygen --rotate`, the `key` column says which nodes confirmed the new signing key.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from rich.table import Table

from broadcastd.config import load_config
from broadcastd.errors import UsageError
from broadcastd.journal.keyconfirm import key_confirmations, key_status
from broadcastd.journal.nodestates import journaled_nodes
from broadcastd.journal.reporttable import inert, wide_console
from broadcastd.journal.store import Journal
from broadcastd.journal.telemetry import load_readings, public_reading

if TYPE_CHECKING:
    import argparse

    from broadcastd.config import Config

STYLE = {"online": "green", "stale": "yellow", "offline": "red", "unknown": "dim"}
KEY_STYLE = {"confirmed": "green", "pending": "yellow", "-": "dim"}


def node_states(config: Config, journal: Journal, hamlet: str | None) -> list[dict[str, object]]:
    rotation, said = key_confirmations(journal)
    telemetry = load_readings(config.state_dir)  # the daemon's last saved readings
    return [
        n.row()
        | {
            "cause": n.transition.cause if n.transition else None,
            "last_ack": (
                {"playlist": n.ack.playlist, "status": n.ack.status, "ts": n.ack.ts}
                if n.ack
                else None
            ),
            # None: no rotation ever; else whether this node confirmed the newest key.
            "key_rotation": key_status(rotation, said, n.node),
            "telemetry": public_reading(telemetry.get(n.node)),
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
    columns = (
        "node",
        "hamlet",
        "households",
        "state",
        "since",
        "cause",
        "last ack",
        "key",
        "power",
    )
    for name in columns:
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
        key = r["key_rotation"]
        key_text = "-" if not isinstance(key, dict) else f"{key['new_key']}: {key['status']}"
        # Every cell is inert text: a journaled ack or cause may hold markup or escapes.
        table.add_row(
            inert(r["node"]),
            inert(r["hamlet"]),
            inert(r["households"]),
            inert(state, STYLE.get(state, "white")),
            inert(when),
            inert(r["cause"] or "-"),
            inert(ack_text),
            inert(key_text, KEY_STYLE.get(str(key_text).rpartition(": ")[2], "red")),
            inert(_power_text(r["telemetry"])),
        )
    wide_console().print(table)
    return 0


def _power_text(reading: object) -> str:
    """`mains` / `battery 62%`, then temperature and signal, as far as the node reports them."""
    if not isinstance(reading, dict):
        return "-"
    parts = []
    if reading.get("mains") is True:
        parts.append("mains")
    elif reading.get("mains") is False:
        parts.append("battery")
    if "battery_pct" in reading:
        parts.append(f"{reading['battery_pct']:.0f}%")
    if "temperature_c" in reading:
        parts.append(f"{reading['temperature_c']:.0f}°C")
    if "signal_dbm" in reading:
        parts.append(f"{reading['signal_dbm']:.0f} dBm")
    return " ".join(parts) or "-"
