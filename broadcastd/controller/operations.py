"""What staff ask of the running daemon (announce, cancel, stop) and what nodes answer (acks).

Requests arrive over the local control socket; this module turns them into dispatches and signed
control envelopes, and turns acks into the journal and the coverage metrics.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from broadcastd import protocol
from broadcastd.controller.approvals import Approvals, check_operator
from broadcastd.controller.reads import READ_VERSION, READS, answer_read, tts_counts
from broadcastd.controller.requests import (
    Announce,
    Approve,
    Cancel,
    Read,
    RequestError,
    Status,
    Stop,
    parse_request,
)
from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.models import ADHOC_KINDS, Ack, AckStatus, PlanItem, SlotPlan, metric_slot
from broadcastd.plan.exercise import EXERCISE_SLOT, notice_item
from broadcastd.plan.slotplan import estimate_seconds

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.config import Config
    from broadcastd.controller.dispatch import Dispatcher
    from broadcastd.controller.registry import NodeRegistry
    from broadcastd.journal.store import DispatchRow, Journal
    from broadcastd.metrics import Metrics
    from broadcastd.render.renderer import Renderer

log = logging.getLogger(__name__)

ADHOC_SLOT = "announce"


@dataclass(frozen=True, slots=True)
class Health:
    """What `broadcastd status` reports of the running daemon besides its requests."""

    connected: bool  # the controller's MQTT link is up
    ready: bool  # start-up (catch-up of missed slots) is done


class Operations:
    """Control-socket handler and ack sink. Holds no state the journal does not also have."""

    def __init__(  # noqa: PLR0913 - the collaborators, handed over by the composition root
        self,
        config: Config,
        *,
        dispatcher: Dispatcher,
        journal: Journal,
        registry: NodeRegistry,
        renderer: Renderer,
        metrics: Metrics,
        clock: Callable[[], float],
        health: Callable[[], Health],
    ) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.journal = journal
        self.registry = registry
        self.renderer = renderer
        self.metrics = metrics
        self.clock = clock
        self._health = health
        # playlist id -> (hamlet, slot), and who played it, for households_reached
        self._playlists: dict[str, tuple[str, str]] = {}
        self._played: dict[str, set[str]] = defaultdict(set)
        self.approvals = Approvals(clock)

    def replace_config(self, config: Config) -> None:
        self.config = config

    async def handle(self, raw: dict[str, Any]) -> dict[str, Any]:
        """One control-socket request, parsed and checked before anything acts on it."""
        request = parse_request(raw)
        match request:
            case Announce():
                return await self.announce(request)
            case Cancel():
                return await self.cancel(request)
            case Approve():
                return await self.approve(request.id, request.operator)
            case Stop():
                hamlets = self._hamlets(request.hamlets)
                cid = await self.dispatcher.control(hamlets, "stop")
                return {"control": cid, "hamlets": hamlets}
            case Status():
                health = self._health()
                return {
                    "commune": self.config.commune.id,
                    "connected": health.connected,
                    "ready": health.ready,
                    "pending_requests": [r.id for r in self.approvals.pending()],
                    "v": min(request.v, READ_VERSION),
                    "reads": list(READS),
                    "tts": tts_counts(self.metrics),
                }
            case Read():
                return answer_read(request.what, self.config, self.registry, self.clock)

    def _hamlets(self, spec: str | None) -> list[str]:
        known = [h.id for h in self.config.hamlets]
        if spec in (None, "", "all"):
            return known
        wanted = [s.strip() for s in str(spec).split(",") if s.strip()]
        unknown = [h for h in wanted if h not in known]
        if unknown:
            raise RequestError(
                f"unknown hamlet(s): {', '.join(unknown)} (known: {', '.join(known)})"
            )
        return wanted

    async def announce(self, request: Announce) -> dict[str, Any]:
        """An ad-hoc announcement: now (emergency plays at once) or at the next slot.

        With `emergency.approvals: 2` an emergency only opens a pending request (see `approve`).
        """
        two_person = request.priority == "emergency" and self.config.emergency.approvals == 2
        operator = check_operator(self.config, request.operator, required=two_person)
        self._validate(request)
        if not two_person:
            return await self._publish(request, operator=operator, approver=None)
        number = self.dispatcher.next_adhoc_number()
        req = self.approvals.open(self.config, str(operator), request, number)
        hamlets = self._hamlets(request.hamlets)
        self._event(
            "request",
            id=req.id,
            operator=req.operator,
            hamlets=hamlets,
            text=request.text[:200],
        )
        expires = dt.datetime.fromtimestamp(req.expires_at, tz=self.config.commune.tz)
        log.warning("emergency request %s by %s awaits a second operator", req.id, req.operator)
        return {
            "request": req.id,
            "operator": req.operator,
            "expires_at": expires.isoformat(),
            "playlists": [],
            "next": f"broadcastd approve {req.id} --operator OTHER",
        }

    async def approve(self, request_id: str, operator: str | None) -> dict[str, Any]:
        """The second operator's confirmation: publish the pending emergency request."""
        try:
            req = self.approvals.approve(self.config, request_id, operator)
        except BroadcastdError as exc:
            self._event("refused", id=request_id, operator=str(operator), reason=str(exc))
            raise
        self._event("approve", id=req.id, operator=str(operator), requested_by=req.operator)
        result = await self._publish(req.request, operator=req.operator, approver=str(operator))
        return {"request": req.id, "approved_by": str(operator), **result}

    def _lang(self, request: Announce) -> str:
        return request.lang or self.config.commune.default_language

    def _validate(self, request: Announce) -> None:
        lang = self._lang(request)
        if lang not in self.config.tts.languages:
            raise RequestError(
                f"no TTS engine speaks {lang!r}; ad-hoc announcements need a TTS language"
            )
        self._hamlets(request.hamlets)

    async def _publish(
        self, request: Announce, *, operator: str | None, approver: str | None
    ) -> dict[str, Any]:
        text, lang, priority, exercise = (
            request.text,
            self._lang(request),
            request.priority,
            request.exercise,
        )
        hamlets = self._hamlets(request.hamlets)
        now = dt.datetime.fromtimestamp(self.clock(), tz=self.config.commune.tz)
        if request.now or priority == "emergency":
            play_at, catch_up = now, max(s.catch_up for s in self.config.slots.values())
        else:
            play_at, catch_up = self._next_slot(now)
        seq = self.dispatcher.next_adhoc_number()
        item = PlanItem(
            announcement=f"announce-{seq}",
            title=text[:60],
            category="announcement" if priority != "emergency" else "emergency",
            lang=lang,
            kind="tts",
            priority=priority,
            duration_s=estimate_seconds(text),
            text=text,
        )
        # An exercise says so first, before anything else is heard.
        items = (notice_item(lang), item) if exercise else (item,)
        # Each ad-hoc announcement is its own slot: two warnings issued seconds apart must not
        # supersede each other on a node that has not finished fetching the first.
        kind = EXERCISE_SLOT if exercise else ADHOC_SLOT if priority != "emergency" else "emergency"
        slot = f"{kind}-{seq}"
        plans = [
            SlotPlan(
                date=play_at.date(),
                slot=slot,
                hamlet=h,
                play_at=play_at,
                expires_at=play_at + catch_up,
                publish_at=now,
                items=items,
            )
            for h in hamlets
        ]
        status = "exercise" if exercise else "live"
        self.journal.record_event(
            "issue",
            f"{priority} {status} announcement {item.announcement} to {','.join(hamlets)}"
            f" (operator: {operator or '-'}, approved by: {approver or '-'}): {text[:200]}",
        )
        published = await self.dispatcher.dispatch_plans(
            plans, priority=priority, status=status, urgent=priority == "emergency"
        )
        for p in published:
            self._playlists[p.playlist] = (p.hamlet, p.slot)
        return {
            "id": item.announcement,
            "status": status,
            "playlists": [p.playlist for p in published],
            "play_at": play_at.isoformat(),
        }

    def _event(self, kind: str, **detail: object) -> None:
        self.journal.record_event(kind, json.dumps(detail, ensure_ascii=False))

    def _next_slot(self, now: dt.datetime) -> tuple[dt.datetime, dt.timedelta]:
        best: tuple[dt.datetime, dt.timedelta] | None = None
        for offset in (0, 1):
            day = now.date() + dt.timedelta(days=offset)
            for slot in self.config.slots.values():
                at = dt.datetime.combine(day, slot.at, tzinfo=self.config.commune.tz)
                if at > now and (best is None or at < best[0]):
                    best = (at, slot.catch_up)
        if best is None:  # unreachable: a config has at least one slot, so tomorrow has one
            raise RequestError("no slot is configured")
        return best

    async def cancel(self, request: Cancel) -> dict[str, Any]:
        """Cancel a playlist id, or every playlist of an ad-hoc announcement id (`announce-N`),
        or withdraw a pending emergency request (`req-N`); then say the correction, if any."""
        target = request.id
        text = self.config.emergency.correction if request.correction else request.say or ""
        withdrawn = self.approvals.withdraw(target)
        if withdrawn is not None:
            self._event("withdraw", id=target, requested_by=withdrawn.operator)
            return {"withdrawn": target}
        rows = self._cancel_rows(target)
        # One signed cancel per playlist: each hamlet got its own id, and nodes match on it.
        controls = [
            await self.dispatcher.control([row.hamlet], "cancel", target=row.id) for row in rows
        ]
        hamlets = sorted({row.hamlet for row in rows})
        result: dict[str, Any] = {
            "control": controls[0],
            "hamlet": rows[0].hamlet,
            "controls": controls,
            "cancelled": [row.id for row in rows],
            "hamlets": hamlets,
        }
        if text:
            correction = Announce(
                text=text,
                lang=None,
                hamlets=",".join(hamlets),
                priority="priority",
                now=True,
                exercise=False,
                operator=None,
            )
            result["correction"] = await self.announce(correction)
        return result

    def _cancel_rows(self, target: str) -> list[DispatchRow]:
        journal = self.journal
        row = journal.dispatch(target)
        if row is not None:
            return [row]
        today = dt.datetime.fromtimestamp(self.clock(), tz=self.config.commune.tz).date()
        rows = [
            r
            for r in journal.dispatches_between(
                today - dt.timedelta(days=1), today + dt.timedelta(days=1)
            )
            if _adhoc(r.slot) and any(i.get("announcement") == target for i in r.item_list())
        ]
        if not rows:
            raise RequestError(
                f"no playlist, announcement or pending request with id {target!r} in the journal"
            )
        return rows

    async def on_ack(self, node: str, payload: bytes) -> None:
        metrics = self.metrics
        hamlet = self.config.node_hamlets().get(node)
        if hamlet is None:
            metrics.bad_messages_total.labels(reason="unknown_node").inc()
            return
        try:
            parsed = protocol.parse_ack(payload)
        except ProtocolError as exc:
            metrics.bad_messages_total.labels(reason=exc.reason).inc()
            return
        ack = Ack(
            node=node,
            playlist=parsed.playlist,
            status=cast("AckStatus", parsed.status),  # parse_ack admits only ACK_STATUSES
            ts=parsed.ts,
            detail=parsed.detail,
        )
        metrics.playlist_acks_total.labels(hamlet=hamlet.id, status=ack.status).inc()
        self.journal.record_ack(ack, hamlet.id)
        self.registry.on_ack(node, ack.playlist, ack.status)
        if ack.status == "played":
            self._count_played(ack, hamlet.id)

    def _count_played(self, ack: Ack, hamlet_id: str) -> None:
        where = self._playlists.get(ack.playlist)
        if where is None:
            row = self.journal.dispatch(ack.playlist)
            if row is None:
                return
            where = (row.hamlet, row.slot)
            self._playlists[ack.playlist] = where
        self._played[ack.playlist].add(ack.node)
        hamlet = self.config.hamlet(hamlet_id)
        households = {n.id: n.households for n in hamlet.nodes}
        reached = sum(households.get(n, 0) for n in self._played[ack.playlist])
        label = metric_slot(where[1])
        self.metrics.households_reached.labels(hamlet=where[0], slot=label).set(reached)


def _adhoc(slot: str) -> bool:
    """An ad-hoc playlist's slot is `announce-N`, `emergency-N` or `exercise-N`."""
    return any(slot == base or slot.startswith(f"{base}-") for base in ADHOC_KINDS)
