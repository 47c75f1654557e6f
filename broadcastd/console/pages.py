"""The pages: Tổng quan, Lịch phát, Loa (and one speaker), Báo cáo (with its downloads), Nhật ký.
Every one of them needs a session and shows whether the daemon is running."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response

from broadcastd.console import accesslog, charts
from broadcastd.console.auth import Principal
from broadcastd.console.overview import overview
from broadcastd.console.schedule import MAX_DAYS, week
from broadcastd.console.web import console, page_context, page_user, render
from broadcastd.journal.reports import TARGET, build_report, to_csv, to_json

if TYPE_CHECKING:
    from broadcastd.journal.history import History
    from broadcastd.journal.store import Journal
    from broadcastd.models import Transition

router = APIRouter(include_in_schema=False)
User = Annotated[Principal, Depends(page_user)]
PAGE_ROWS = 100
MAX_REPORT_DAYS = 366
AVAILABILITY_DAYS = 30


async def _context(request: Request, me: Principal, active: str, **extra: Any) -> dict[str, Any]:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return await page_context(request, me, active=active, path=path, **extra)


def today(request: Request) -> dt.date:
    c = console(request)
    return dt.datetime.fromtimestamp(c.clock(), tz=c.loaded.config.commune.tz).date()


@router.get("/")
async def home(request: Request, me: User) -> Response:
    c = console(request)
    live = await c.live.current()
    now = c.clock()
    cards, alerts = await c.journal.read(
        lambda journal, _: overview(c.loaded, live, journal, now),
        overview(c.loaded, live, None, now),
    )
    return render(
        request,
        "overview.html",
        await _context(request, me, "overview", cards=cards, alerts=alerts),
    )


def _date(value: str | None, fallback: dt.date, name: str) -> dt.date:
    if value in (None, ""):
        return fallback
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise HTTPException(status_code=400, detail=f"{name} must be YYYY-MM-DD") from None


def _hamlet(request: Request, hamlet: str | None) -> str | None:
    if hamlet in (None, ""):
        return None
    if hamlet not in {h.id for h in console(request).loaded.config.hamlets}:
        raise HTTPException(status_code=404, detail="no such hamlet")
    return hamlet


@router.get("/schedule")
async def schedule(
    request: Request,
    me: User,
    date: str | None = None,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 7,
    hamlet: str | None = None,
) -> Response:
    c = console(request)
    start = _date(date, today(request), "date")
    only = _hamlet(request, hamlet)
    slots = await c.journal.read(
        lambda journal, _: week(c.loaded, journal, start, days, only),
        week(c.loaded, None, start, days, only),
    )
    hamlets = [(h.id, h.name) for h in c.loaded.config.hamlets]
    return render(
        request,
        "schedule.html",
        await _context(
            request,
            me,
            "schedule",
            slots=slots,
            start=start,
            days=days,
            hamlet=only,
            hamlets=hamlets,
        ),
    )


@router.get("/speakers")
async def speakers(request: Request, me: User) -> Response:
    c = console(request)
    names = {h.id: h.name for h in c.loaded.config.hamlets}
    return render(request, "speakers.html", await _context(request, me, "speakers", names=names))


@router.get("/speakers/{node}")
async def speaker(request: Request, me: User, node: str) -> Response:
    c = console(request)
    hamlet = c.loaded.config.node_hamlets().get(node)
    if hamlet is None:
        raise HTTPException(status_code=404, detail="no such speaker")
    now = c.clock()
    since = now - AVAILABILITY_DAYS * 86400.0
    nothing: tuple[Transition | None, list[Transition]] = (None, [])
    before, transitions = await c.journal.read(
        lambda _, history: history.transitions(node, since), nothing
    )
    series = charts.availability(
        before, transitions, days=AVAILABILITY_DAYS, now=now, tz=c.loaded.config.commune.tz
    )
    context = await _context(
        request,
        me,
        "speakers",
        node=node,
        hamlet=hamlet,
        bars=charts.availability_bars(series),
        transitions=list(reversed(transitions))[:50],
    )
    context["view"] = context["live"].node(node) or {"node": node, "state": "unknown"}
    return render(request, "speaker.html", context)


def report_period(
    request: Request,
    date: Annotated[str | None, Query(max_length=10)] = None,
    month: Annotated[str | None, Query(max_length=10)] = None,
    first: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    last: Annotated[str | None, Query(alias="to", max_length=10)] = None,
) -> tuple[dt.date, dt.date] | None:
    """One day (`date`), a month (`month=YYYY-MM`), a range (`from`, `to`), or None if none."""
    if month:
        try:
            start = dt.datetime.strptime(month, "%Y-%m").date()  # noqa: DTZ007 - a calendar month
        except ValueError:
            raise HTTPException(status_code=400, detail="month must be YYYY-MM") from None
        following = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return start, following - dt.timedelta(days=1)
    if first or last:
        end = _date(last, today(request), "to")
        start = _date(first, end, "from")
        if not start <= end or (end - start).days >= MAX_REPORT_DAYS:
            raise HTTPException(
                status_code=400, detail=f"from..to must be 1 to {MAX_REPORT_DAYS} days"
            )
        return start, end
    if date:
        day = _date(date, today(request), "date")
        return day, day
    return None


Period = Annotated[tuple[dt.date, dt.date] | None, Depends(report_period)]


@router.get("/report")
async def report(request: Request, me: User, period: Period) -> Response:
    """Without a period: the last seven days."""
    c = console(request)
    start, end = period or (today(request) - dt.timedelta(days=6), today(request))
    data = await c.journal.read(
        lambda journal, _: build_report(c.loaded.config, journal, start, end), None
    )
    names = {h.id: h.name for h in c.loaded.config.hamlets}
    return render(
        request,
        "report.html",
        await _context(
            request,
            me,
            "report",
            report=data,
            start=start,
            end=end,
            names=names,
            coverage=charts.coverage_bars(data, TARGET) if data else [],
            minutes={s: charts.minutes_bars(m) for s, m in (data.minutes.items() if data else [])},
            target=round(TARGET * 100),
        ),
    )


async def _download(
    request: Request, kind: str, period: tuple[dt.date, dt.date] | None
) -> Response:
    """Exactly what `broadcastd report --csv/--json` prints for the same period (default: today,
    as there)."""
    c = console(request)
    start, end = period or (today(request), today(request))
    data = await c.journal.read(
        lambda journal, _: build_report(c.loaded.config, journal, start, end), None
    )
    if data is None:
        raise HTTPException(status_code=404, detail="no journal yet: the daemon has not run")
    name = f"report-{start.isoformat()}" + ("" if start == end else f"-{end.isoformat()}")
    if kind == "csv":
        body, media = to_csv(data), "text/csv; charset=utf-8"
    else:
        body, media = to_json(data) + "\n", "application/json"  # `report --json` ends a line
    return PlainTextResponse(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'},
    )


@router.get("/report.csv", dependencies=[Depends(page_user)])
async def report_csv(request: Request, period: Period) -> Response:
    return await _download(request, "csv", period)


@router.get("/report.json", dependencies=[Depends(page_user)])
async def report_json(request: Request, period: Period) -> Response:
    return await _download(request, "json", period)


@router.get("/journal")
async def journal_page(
    request: Request,
    me: User,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    access_kind: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    c = console(request)

    def read(_: Journal, history: History) -> dict[str, Any]:
        return {
            "events": history.events(limit=PAGE_ROWS, before=before, kind=kind or None),
            "kinds": history.event_kinds(),
            "reloads": history.reloads(limit=20),
            "audit": history.audit(limit=20),
            "head": history.audit_head(),
        }

    empty: dict[str, Any] = {"events": [], "kinds": [], "reloads": [], "audit": [], "head": None}
    data = await c.journal.read(read, empty)
    chain = await c.chain.current(c.journal.path, c.clock()) if c.journal.path.exists() else None
    access = await _access(request, access_kind)
    return render(
        request,
        "journal.html",
        await _context(
            request,
            me,
            "journal",
            kind=kind,
            access_kind=access_kind,
            chain=chain,
            page_rows=PAGE_ROWS,
            access=access[0],
            access_chain=access[1],
            access_kinds=accesslog.KINDS,
            **data,
        ),
    )


async def _access(
    request: Request, kind: str | None
) -> tuple[list[accesslog.AccessEntry], accesslog.ChainStatus]:
    store = console(request).store
    rows = await asyncio.to_thread(
        accesslog.entries, store, limit=PAGE_ROWS, kind=kind if kind in accesslog.KINDS else None
    )
    return rows, await asyncio.to_thread(accesslog.verify, store)
