"""What speakers send the daemon (DESIGN.md §5): `state`, `heartbeat`, `ack`; built and parsed.

The parsers treat every payload as hostile: bounded size, a JSON object without duplicate keys,
finite numbers in range, typed fields. They raise `ProtocolError` whose short `reason` is the
`bad_messages_total{reason}` label, so a technician sees *what* was wrong, not just that it was.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from broadcastd.errors import ProtocolError
from broadcastd.models import ACK_STATUSES
from broadcastd.protocol.limits import brief, is_wire_id

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_NODE_PAYLOAD_BYTES: Final = 4 * 1024  # a heartbeat is ~80 bytes; far beyond is not an agent
MAX_TS: Final = 1e11  # year ~5138: beyond it a "timestamp" is garbage, not a clock
MAX_FIELD: Final = 1024  # playlist ids and details
MAX_VERSION: Final = 64
MAX_ACK_NUMBER: Final = 2**53
STATES: Final = ("online", "offline")


@dataclass(frozen=True, slots=True)
class AckMessage:
    playlist: str
    status: str
    ts: int
    detail: str = ""
    n: int | None = None  # the node's own ack number, for receipts (receipts.py)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    ts: float
    uptime_s: float | None
    rssi: float | None
    volume: float | None
    clock_offset: float | None = None  # controller minus node clock as the node estimates it, s


@dataclass(frozen=True, slots=True)
class StateMessage:
    state: str
    ts: float
    version: str | None


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def ack_payload(
    playlist: str, status: str, ts: float, detail: str = "", *, n: int | None = None
) -> bytes:
    if status not in ACK_STATUSES:
        raise ValueError(f"unknown ack status {status!r}")
    ack: dict[str, object] = {
        "playlist": playlist,
        "status": status,
        "ts": int(ts),
        "detail": detail[:MAX_FIELD],
    }
    if n is not None:
        ack["n"] = n
    return _canonical(ack)


def heartbeat_payload(
    ts: float,
    uptime_s: float,
    rssi: int | None,
    volume: int,
    extra: Mapping[str, object] | None = None,
) -> bytes:
    """`extra` adds optional fields (`clock_offset_ms`, `telemetry`); the four above are fixed."""
    beat = {"ts": int(ts), "uptime_s": round(uptime_s, 1), "rssi": rssi, "volume": volume}
    return _canonical({**(extra or {}), **beat})


def state_payload(
    state: str, ts: float, version: str | None = None, *, beacon_s: float | None = None
) -> bytes:
    """`beacon_s`: the controller's `online` says it sends time beacons this often."""
    extra = {} if beacon_s is None else {"beacon_s": beacon_s}
    return _canonical({**extra, "state": state, "ts": int(ts), "version": version})


# -- parsing -------------------------------------------------------------------------------------


def _reject_constant(_name: str) -> float:
    raise ProtocolError("not_finite", "NaN or Infinity")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ProtocolError("duplicate_key", key[:40])
        out[key] = value
    return out


def _object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_NODE_PAYLOAD_BYTES:
        raise ProtocolError("oversize", f"{len(payload)} bytes")
    try:
        value = json.loads(
            payload, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
        )
    except ProtocolError:
        raise
    except (ValueError, RecursionError):  # includes invalid UTF-8 and over-long integers
        raise ProtocolError("not_json") from None
    if not isinstance(value, dict):
        raise ProtocolError("not_object")
    return value


def _number(obj: dict[str, Any], key: str, lo: float, hi: float, *, required: bool) -> float | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError(f"missing_{key}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"bad_{key}")
    number = float(value) if isinstance(value, float) or abs(value) < 2**53 else math.inf
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ProtocolError(f"bad_{key}")
    return number


def _timestamp(obj: dict[str, Any]) -> float:
    ts = _number(obj, "ts", 0, MAX_TS, required=True)
    if ts is None:  # unreachable: required=True raises instead
        raise ProtocolError("missing_ts")
    return ts


def parse_ack(payload: bytes) -> AckMessage:
    """`{"playlist","status","ts","detail"}` and optional `n`; status one of DESIGN.md §5's ack
    statuses, playlist an id in the id grammar (`is_wire_id`)."""
    obj = _object(payload)
    playlist, status, detail = obj.get("playlist"), obj.get("status"), obj.get("detail")
    if not is_wire_id(playlist):
        raise ProtocolError("bad_playlist", brief(playlist))
    if status not in ACK_STATUSES:
        raise ProtocolError("bad_status")
    if detail is not None and not isinstance(detail, str):
        raise ProtocolError("bad_detail")
    n = _number(obj, "n", 1, MAX_ACK_NUMBER, required=False)
    if n is not None and n != int(n):
        raise ProtocolError("bad_n")
    return AckMessage(
        playlist,
        str(status),
        int(_timestamp(obj)),
        (detail or "")[:MAX_FIELD],
        None if n is None else int(n),
    )


def ack_number(payload: bytes) -> int | None:
    """The `n` of an ack, None when it has none or is no valid ack (then `parse_ack` says why)."""
    try:
        return parse_ack(payload).n
    except ProtocolError:
        return None


def parse_heartbeat(payload: bytes) -> Heartbeat:
    """`{"ts","uptime_s","rssi","volume","clock_offset_ms"}`; ts required, the others may be
    null or absent."""
    obj = _object(payload)
    offset_ms = _number(obj, "clock_offset_ms", -MAX_TS * 1000, MAX_TS * 1000, required=False)
    return Heartbeat(
        ts=_timestamp(obj),
        uptime_s=_number(obj, "uptime_s", 0, 1e10, required=False),
        rssi=_number(obj, "rssi", -200, 0, required=False),
        volume=_number(obj, "volume", 0, 100, required=False),
        clock_offset=None if offset_ms is None else offset_ms / 1000,
    )


def parse_state(payload: bytes) -> StateMessage:
    """`{"state":"online"|"offline","ts",...,"version"}`."""
    obj = _object(payload)
    state = obj.get("state")
    if state not in STATES:
        raise ProtocolError("bad_state")
    version = obj.get("version")
    if version is not None and not (isinstance(version, str) and len(version) <= MAX_VERSION):
        raise ProtocolError("bad_version")
    return StateMessage(state=str(state), ts=_timestamp(obj), version=version)


TELEMETRY_RANGES: Final = {
    "battery_pct": (0, 100),
    "temperature_c": (-50, 125),
    "signal_dbm": (-150, 0),
}


def parse_telemetry(payload: bytes) -> dict[str, float | bool] | None:
    """A heartbeat's `telemetry` object: its known fields within range (`mains` a boolean), the
    rest dropped; None if the heartbeat has none."""
    telemetry = _object(payload).get("telemetry")
    if not isinstance(telemetry, dict):
        return None
    out: dict[str, float | bool] = {}
    for name, (low, high) in TELEMETRY_RANGES.items():
        try:
            value = _number(telemetry, name, low, high, required=False)
        except ProtocolError:
            continue  # one bad sensor reading does not hide the others
        if value is not None:
            out[name] = round(value, 1)
    if isinstance(telemetry.get("mains"), bool):
        out["mains"] = telemetry["mains"]
    return out
