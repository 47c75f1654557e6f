"""Speakers' last telemetry as the daemon saves it, `state_dir/telemetry.json`: its one writer
(the daemon's TelemetryBook) and its readers (`broadcastd nodes`, the web console while the
daemon does not answer) share the file's name and shape here.

The file is `{node: {"hamlet", "ts", "battery_pct", "mains", "temperature_c", "signal_dbm"}}`,
each reading field optional. A reader trusts nothing in it: `public_reading` keeps only the known
fields with the type and range a heartbeat may carry.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final

from broadcastd.protocol.payloads import TELEMETRY_RANGES

FILE_NAME: Final = "telemetry.json"


def save_readings(path: Path, readings: dict[str, dict[str, Any]]) -> None:
    """Replace `path` atomically with `readings`; OSError if it cannot."""
    fd, tmp = tempfile.mkstemp(prefix=".telemetry-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(readings, f, ensure_ascii=False, sort_keys=True)
    Path(tmp).replace(path)


def load_readings(state_dir: Path) -> dict[str, dict[str, Any]]:
    """What the daemon last saved (empty if nothing, or unreadable)."""
    try:
        data = json.loads((state_dir / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def public_reading(reading: object) -> dict[str, float | bool] | None:
    """One node's reading as shown (`ts` and the telemetry fields, no `hamlet`), each field only
    if it is what a heartbeat may carry; None if nothing is left."""
    if not isinstance(reading, dict):
        return None
    shown: dict[str, float | bool] = {}
    ranges = {**TELEMETRY_RANGES, "ts": (0, 2**40)}
    for name, (low, high) in ranges.items():
        value = reading.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high:
            shown[name] = value
    if isinstance(reading.get("mains"), bool):
        shown["mains"] = reading["mains"]
    return shown if set(shown) - {"ts"} else None
