"""The read-only JSON API, `/api/v1/`, for the district's or province's systems.

Every route needs an API token (`Authorization: Bearer bct_...`, from `broadcastd token create`)
or a console session; without one it answers 401. The OpenAPI description is served at
`/api/v1/openapi.json` under the same rule. Nothing here changes state.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from broadcastd.console.schedule import MAX_DAYS, week
from broadcastd.console.web import api_user, console
from broadcastd.journal.reports import build_report

router = APIRouter(prefix="/api/v1", tags=["v1"], dependencies=[Depends(api_user)])


class HamletState(BaseModel):
    id: str
    name: str
    households: int
    nodes_total: int
    nodes_online: int
    nodes_stale: int
    nodes_offline: int
    nodes_unknown: int
    households_live: int = Field(description="households in earshot of an online speaker")


class DaemonState(BaseModel):
    running: bool = Field(description="the daemon answered the console just now")
    connected: bool = Field(description="the daemon's link to the MQTT broker is up")
    reason: str = Field(description="why the daemon did not answer, when it did not")


class Status(BaseModel):
    commune: str
    name: str
    time: float = Field(description="Unix seconds when this state was taken")
    daemon: DaemonState
    live: bool = Field(description="false: speaker states are the last the daemon journaled")
    hamlets: list[HamletState]


class Telemetry(BaseModel):
    ts: float | None = Field(None, description="Unix seconds of the reading")
    battery_pct: float | None = Field(None, description="battery charge, 0-100")
    mains: bool | None = Field(None, description="true: on mains power; false: on battery")
    temperature_c: float | None = Field(None, description="the speaker's box, in °C")
    signal_dbm: float | None = Field(None, description="its modem's signal, in dBm")


class KeyConfirmation(BaseModel):
    id: str | None = Field(description="the latest signing-key rotation's id")
    new_key: str | None = Field(description="the new key's fingerprint")
    status: str = Field(description="confirmed | pending | refused: <the speaker's reason>")


class NodeState(BaseModel):
    node: str
    hamlet: str
    households: int
    state: str = Field(description="online | stale | offline | unknown")
    since: float | None
    last_seen: float | None
    rssi: float | None
    volume: float | None
    version: str | None
    uptime_s: float | None
    last_ack: str | None
    telemetry: Telemetry | None = Field(
        None, description="the speaker's last hardware reading, each field as far as it reports"
    )
    key_rotation: KeyConfirmation | None = Field(
        None, description="what it said of the newest signing key; null before any rotation"
    )


class Nodes(BaseModel):
    live: bool
    nodes: list[NodeState]


class ScheduleItem(BaseModel):
    announcement: str
    title: str
    lang: str
    kind: str = Field(description="tts | recording")
    priority: str
    duration_s: float
    text: str | None = Field(description="what text-to-speech reads, for tts items")
    sha256: str | None = Field(description="the clip sent to the speakers, once dispatched")


class ScheduleEntry(BaseModel):
    date: dt.date
    slot: str
    hamlet: str
    play_at: dt.datetime
    playlist: str | None
    items: list[ScheduleItem]
    dropped: list[ScheduleItem]


@router.get("/status", summary="The commune, the daemon and every hamlet's speakers")
async def status(request: Request) -> Status:
    c = console(request)
    live = await c.live.current()
    commune = c.loaded.config.commune
    return Status(
        commune=commune.id,
        name=commune.name,
        time=live.taken_at,
        daemon=DaemonState(running=live.daemon, connected=live.connected, reason=live.reason),
        live=live.daemon,
        hamlets=[HamletState.model_validate(h) for h in live.hamlets],
    )


@router.get("/hamlets", summary="Every hamlet's speakers by state")
async def hamlets(request: Request) -> list[HamletState]:
    live = await console(request).live.current()
    return [HamletState.model_validate(h) for h in live.hamlets]


@router.get(
    "/nodes",
    summary="Every speaker: state, last heard, signal, volume, version, telemetry, newest key",
)
async def nodes(request: Request, hamlet: str | None = None) -> Nodes:
    live = await console(request).live.current()
    rows = [n for n in live.nodes if hamlet is None or n["hamlet"] == hamlet]
    return Nodes(live=live.daemon, nodes=[NodeState.model_validate(n) for n in rows])


def _day(value: str | None, request: Request) -> dt.date:
    c = console(request)
    if not value:
        return dt.datetime.fromtimestamp(c.clock(), tz=c.loaded.config.commune.tz).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(status_code=422, detail="date must be YYYY-MM-DD") from None


@router.get("/schedule", summary="What plays where, per date, slot and hamlet")
async def schedule(
    request: Request,
    date: Annotated[str | None, Query(max_length=10, description="first date, YYYY-MM-DD")] = None,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 1,
    hamlet: Annotated[str | None, Query(max_length=64)] = None,
) -> list[ScheduleEntry]:
    c = console(request)
    if hamlet is not None and hamlet not in {h.id for h in c.loaded.config.hamlets}:
        raise HTTPException(status_code=404, detail="no such hamlet")
    start = _day(date, request)
    slots = await c.journal.read(
        lambda journal, _: week(c.loaded, journal, start, days, hamlet),
        week(c.loaded, None, start, days, hamlet),
    )
    return [
        ScheduleEntry(
            date=s.date,
            slot=s.slot,
            hamlet=h.hamlet,
            play_at=s.play_at,
            playlist=h.playlist,
            items=[ScheduleItem.model_validate(i, from_attributes=True) for i in h.items],
            dropped=[ScheduleItem.model_validate(i, from_attributes=True) for i in h.dropped],
        )
        for s in slots
        for h in s.hamlets
    ]


@router.get(
    "/coverage",
    summary="Households reached per slot and hamlet: exactly `broadcastd report --json`",
)
async def coverage(
    request: Request,
    date: Annotated[str | None, Query(max_length=10)] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 1,
) -> dict[str, Any]:
    c = console(request)
    start = _day(date, request)
    end = start + dt.timedelta(days=days - 1)
    report = await c.journal.read(
        lambda journal, _: build_report(c.loaded.config, journal, start, end), None
    )
    if report is None:
        raise HTTPException(status_code=404, detail="no journal yet: the daemon has not run")
    return report.as_json()


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "a token from `broadcastd token create NAME --scope read`",
    }
    schema["security"] = [{"bearer": []}]
    return schema
