"""Tổng quan: one card per hamlet (speakers, next slot and its readiness, last slot's households
reached) and the alerts above them. Pure functions of the config, the live picture, the plan and
what the journal holds; pages and the JSON API share them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broadcastd.journal.reports import TARGET, build_report
from broadcastd.plan.slotplan import build_plan
from broadcastd.transport import pki

if TYPE_CHECKING:
    from broadcastd.config import LoadedConfig
    from broadcastd.console.live import Live
    from broadcastd.journal.reports import CoverageRow
    from broadcastd.journal.store import Journal
    from broadcastd.models import SlotPlan

OFFLINE_ALERT_S = 86400.0  # a speaker silent this long needs someone to go and look
NOT_READY_ALERT_S = 600.0  # a slot whose audio is not on the speakers this close to air
CERT_DANGER_DAYS = 7  # a certificate this close to its end is an emergency, not a reminder
# A speaker on battery below this may go silent before the power is back: someone should look.
LOW_BATTERY_PCT = 25.0
EMPTY_BATTERY_PCT = 10.0  # ...and below this it is about to
# Speakers that have not confirmed the new signing key this close to its activation will refuse
# the playlists signed with it; before that, a few minutes of waiting for them is normal.
KEY_SOON_S = 900.0
KEY_NAMES = 5  # speakers named in a key alert; the speakers page lists them all


@dataclass(frozen=True, slots=True)
class NextSlot:
    slot: str
    play_at: dt.datetime
    items: int
    state: str  # nothing | waiting (before publish) | sent | missing (should have been sent)
    ready: int  # speakers that acked ready (or further) for it
    nodes: int


@dataclass(frozen=True, slots=True)
class LastSlot:
    slot: str
    date: str
    reached: int
    households: int
    percent: float
    target_met: bool


@dataclass(frozen=True, slots=True)
class Card:
    id: str
    name: str
    households: int
    online: int
    stale: int
    offline: int
    unknown: int
    total: int
    next: NextSlot | None
    last: LastSlot | None


@dataclass(frozen=True, slots=True)
class Alert:
    level: str  # danger | warning
    # daemon_down | broker_down | tts_fallback | offline_day | not_ready | below_target |
    # cert_expiry | low_battery | key_unconfirmed (before activation) | key_refusing (after)
    kind: str
    subject: str  # a hamlet's or speaker's name, a certificate (ca, server), or ""
    params: dict[str, Any] = field(default_factory=dict)


def overview(
    loaded: LoadedConfig, live: Live, journal: Journal | None, now: float
) -> tuple[list[Card], list[Alert]]:
    config = loaded.config
    tz = config.commune.tz
    today = dt.datetime.fromtimestamp(now, tz=tz).date()
    plans = build_plan(loaded, today - dt.timedelta(days=1), 3)
    last_rows = _last_rows(loaded, journal, today, now)
    cards: list[Card] = []
    for h in config.hamlets:
        counts = live.hamlet(h.id) or {}
        upcoming = [p for p in plans if p.hamlet == h.id and p.play_at.timestamp() > now]
        nxt = _next_slot(upcoming[0], journal, len(h.nodes), now) if upcoming else None
        cards.append(
            Card(
                id=h.id,
                name=str(counts.get("name", h.name)),
                households=h.households,
                online=int(counts.get("nodes_online", 0)),
                stale=int(counts.get("nodes_stale", 0)),
                offline=int(counts.get("nodes_offline", 0)),
                unknown=int(counts.get("nodes_unknown", 0)),
                total=int(counts.get("nodes_total", len(h.nodes))),
                next=nxt,
                last=last_rows.get(h.id),
            )
        )
    return cards, alerts(loaded, live, cards, now)


def _next_slot(plan: SlotPlan, journal: Journal | None, nodes: int, now: float) -> NextSlot:
    if not plan.items:
        state, ready = "nothing", 0
    else:
        rows = [
            r
            for r in (journal.dispatches_for(plan.date, plan.slot) if journal else [])
            if r.hamlet == plan.hamlet and r.cancelled_at is None
        ]
        ready_nodes = {
            a.node
            for r in rows
            for a in (journal.acks_for(r.id) if journal else [])
            if a.status in {"ready", "playing", "played"}
        }
        ready = len(ready_nodes)
        if any(r.published_at is not None for r in rows):
            state = "sent"
        elif now < plan.publish_at.timestamp():
            state = "waiting"
        else:
            state = "missing"
    return NextSlot(plan.slot, plan.play_at, len(plan.items), state, ready, nodes)


def _last_rows(
    loaded: LoadedConfig, journal: Journal | None, today: dt.date, now: float
) -> dict[str, LastSlot]:
    """Per hamlet, the coverage of its latest scheduled live slot that has already aired."""
    if journal is None:
        return {}
    config = loaded.config
    report = build_report(config, journal, today - dt.timedelta(days=1), today)

    def aired_at(row: CoverageRow) -> float:
        slot = config.slots[row.slot]
        at = dt.datetime.combine(dt.date.fromisoformat(row.date), slot.at, tzinfo=config.commune.tz)
        return at.timestamp()

    latest: dict[str, tuple[float, CoverageRow]] = {}
    for row in report.rows:
        if row.status != "live" or row.slot not in config.slots:
            continue
        at = aired_at(row)
        if at <= now and at >= latest.get(row.hamlet, (-1.0, row))[0]:
            latest[row.hamlet] = (at, row)
    return {
        hamlet: LastSlot(
            row.slot,
            row.date,
            row.households_reached,
            row.households,
            round(row.percent, 1),
            row.target_met,
        )
        for hamlet, (_, row) in latest.items()
    }


def alerts(loaded: LoadedConfig, live: Live, cards: list[Card], now: float) -> list[Alert]:
    found: list[Alert] = []
    if not live.daemon:
        found.append(Alert("danger", "daemon_down", "", {"reason": live.reason}))
    elif not live.connected:
        found.append(Alert("danger", "broker_down", ""))
    found += _tts(loaded, live)
    found += _certificates(loaded, now)
    names = {h.id: h.name for h in loaded.config.hamlets}
    found += _key_rotation(live, now)
    found += _batteries(live, names)
    for n in live.nodes:
        since = n.get("since")
        if (
            n["state"] == "offline"
            and isinstance(since, int | float)
            and now - since > OFFLINE_ALERT_S
        ):
            days = int((now - since) // 86400)
            found.append(
                Alert(
                    "warning",
                    "offline_day",
                    n["node"],
                    {"hamlet": names.get(n["hamlet"], ""), "days": days},
                )
            )
    for card in cards:
        nxt = card.next
        soon = nxt is not None and nxt.play_at.timestamp() - now <= NOT_READY_ALERT_S
        if (
            nxt is not None
            and soon
            and nxt.items
            and (nxt.state != "sent" or nxt.ready < card.online)
        ):
            minutes = max(0, int((nxt.play_at.timestamp() - now) // 60))
            found.append(
                Alert(
                    "danger",
                    "not_ready",
                    card.name,
                    {"slot": nxt.slot, "minutes": minutes, "ready": nxt.ready, "nodes": nxt.nodes},
                )
            )
        if card.last is not None and not card.last.target_met and card.last.households:
            found.append(
                Alert(
                    "warning",
                    "below_target",
                    card.name,
                    {
                        "slot": card.last.slot,
                        "percent": card.last.percent,
                        "target": round(TARGET * 100),
                    },
                )
            )
    return found


def _tts(loaded: LoadedConfig, live: Live) -> list[Alert]:
    """The first TTS engine failing while a later one speaks: bulletins use the fallback voice."""
    engines = loaded.config.tts.engines
    if len(engines) < 2:
        return []
    first = live.tts.get(engines[0], {})
    failures = sum(n for result, n in first.items() if result != "ok")
    if not failures:
        return []
    spoken = {e for e in engines[1:] if live.tts.get(e, {}).get("ok")}
    params = {"engine": engines[0], "failures": failures, "fallback": ", ".join(sorted(spoken))}
    return [Alert("warning", "tts_fallback", engines[0], params)] if spoken else []


def _certificates(loaded: LoadedConfig, now: float) -> list[Alert]:
    """The speakers' TLS listener's CA or server certificate near its end or past it, as
    `broadcastd check` warns: speakers refuse an expired one, and the commune goes silent."""
    config = loaded.config
    if config.broker.public is None or config.broker.mode != "embedded":
        return []
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    found = []
    for name, info in pki.status(pki.TlsFiles.for_config(config)).items():
        if isinstance(info, pki.PkiError) or not info.near_expiry(at):
            continue  # a missing one stops the daemon itself; `check` says why
        days = max(0, int(info.days_left(at)))
        params = {
            "days": days,
            "date": f"{info.not_after:%Y-%m-%d}",
            "expired": info.not_after <= at,
        }
        level = "danger" if days < CERT_DANGER_DAYS else "warning"
        found.append(Alert(level, "cert_expiry", name, params))
    return found


def _batteries(live: Live, names: dict[str, str]) -> list[Alert]:
    """A speaker heard lately, on battery and running low (its last telemetry says so)."""
    found = []
    for n in live.nodes:
        reading = n.get("telemetry") or {}
        pct = reading.get("battery_pct")
        if n["state"] not in {"online", "stale"} or reading.get("mains") is not False:
            continue
        if isinstance(pct, int | float) and pct < LOW_BATTERY_PCT:
            level = "danger" if pct < EMPTY_BATTERY_PCT else "warning"
            params = {"hamlet": names.get(n["hamlet"], ""), "percent": round(pct)}
            found.append(Alert(level, "low_battery", n["node"], params))
    return found


def _key_rotation(live: Live, now: float) -> list[Alert]:
    """Speakers without the new signing key (pending, or refused it) while a rotation runs: from
    KEY_SOON_S before its activation they are about to refuse what it signs; from activation
    until the old key retires they do."""
    rotation = live.rotation
    if rotation is None:
        return []
    activate, retire = rotation["activate_at"], rotation["retire_at"]
    if activate is None or retire is None or not activate - KEY_SOON_S <= now < retire:
        return []
    missing = sorted(
        str(n["node"])
        for n in live.nodes
        if isinstance(n.get("key_rotation"), dict) and n["key_rotation"]["status"] != "confirmed"
    )
    if not missing:
        return []
    params = {
        "count": len(missing),
        "nodes": ", ".join(missing[:KEY_NAMES]) + (" …" if len(missing) > KEY_NAMES else ""),
        "activate_at": activate,
        "retire_at": retire,
    }
    if now < activate:
        return [Alert("warning", "key_unconfirmed", rotation["new_key"], params)]
    return [Alert("danger", "key_refusing", rotation["new_key"], params)]
