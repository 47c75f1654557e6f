"""What staff ask of the running daemon (announce, cancel, stop) and what nodes answer (acks).

Requests arrive over the local control socket; this module turns them into dispatches and signed
control envelopes, and turns acks into the journal and the coverage metrics.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any, cast

from broadcastd import protocol
from broadcastd.controller.approvals import Approvals, check_operator
from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.models import ADHOC_KINDS, Ack, AckStatus, PlanItem, SlotPlan, metric_slot
from broadcastd.plan.exercise import EXERCISE_SLOT, notice_item
from broadcastd.plan.slotplan import estimate_seconds

if TYPE_CHECKING:
    from broadcastd.config import Config
    from broadcastd.controller.daemon import Daemon
    from broadcastd.journal.store import DispatchRow
    from broadcastd.render.renderer import Renderer

log = logging.getLogger(__name__)

ADHOC_SLOT = "announce"


class RequestError(BroadcastdError):
    """A control request the daemon refuses; its message goes back to the CLI."""


class Operations:
    """Control-socket handler and ack sink. Holds no state the journal does not also have."""

    def __init__(self, daemon: Daemon, renderer: Renderer) -> None:
        self._daemon = daemon
        self.renderer = renderer
        self.config = daemon.config
        # playlist id -> (hamlet, slot), and who played it, for households_reached
        self._playlists: dict[str, tuple[str, str]] = {}
        self._played: dict[str, set[str]] = defaultdict(set)
        self.approvals = Approvals(daemon.clock)

    def replace_config(self, config: Config) -> None:
        self.config = config

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "announce":
            return await self.announce(request)
        if cmd == "cancel":
            return await self.cancel(
                str(request.get("id", "")),
                request.get("say"),
                correction=bool(request.get("correction")),
            )
        if cmd == "approve":
            return await self.approve(str(request.get("id", "")), request.get("operator"))
        if cmd == "stop":
            hamlets = self._hamlets(request.get("hamlets", "all"))
            cid = await self._daemon.dispatcher.control(hamlets, "stop")
            return {"control": cid, "hamlets": hamlets}
        if cmd == "status":
            return {
                "commune": self.config.commune.id,
                "connected": self._daemon.link.connected.is_set(),
                "ready": self._daemon.ready.is_set(),
                "pending_requests": [r.id for r in self.approvals.pending()],
            }
        raise RequestError(f"unknown request {cmd!r}")

    def _hamlets(self, spec: object) -> list[str]:
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

    async def announce(self, request: dict[str, Any]) -> dict[str, Any]:
        """An ad-hoc announcement: now (emergency plays at once) or at the next slot.

        With `emergency.approvals: 2` an emergency only opens a pending request (see `approve`).
        """
        priority = str(request.get("priority") or "priority")
        exercise = bool(request.get("exercise"))
        if exercise and priority == "emergency":
            raise RequestError(
                "an exercise is never an emergency: drop --priority emergency or --exercise"
            )
        two_person = priority == "emergency" and self.config.emergency.approvals == 2
        operator = check_operator(self.config, request.get("operator"), required=two_person)
        self._validate(request, priority)
        if not two_person:
            return await self._publish(request, operator=operator, approver=None)
        number = self._daemon.dispatcher.next_adhoc_number()
        req = self.approvals.open(self.config, str(operator), request, number)
        hamlets = self._hamlets(request.get("hamlets", "all"))
        await self._event(
            "request",
            id=req.id,
            operator=req.operator,
            hamlets=hamlets,
            text=str(request.get("text"))[:200],
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

    async def approve(self, request_id: str, operator: object) -> dict[str, Any]:
        """The second operator's confirmation: publish the pending emergency request."""
        try:
            req = self.approvals.approve(self.config, request_id, operator)
        except BroadcastdError as exc:
            await self._event("refused", id=request_id, operator=str(operator), reason=str(exc))
            raise
        await self._event("approve", id=req.id, operator=str(operator), requested_by=req.operator)
        result = await self._publish(req.request, operator=req.operator, approver=str(operator))
        return {"request": req.id, "approved_by": str(operator), **result}

    def _validate(self, request: dict[str, Any], priority: str) -> None:
        text = str(request.get("text") or "").strip()
        lang = str(request.get("lang") or self.config.commune.default_language)
        if not text:
            raise RequestError("announce needs --text")
        if lang not in self.config.tts.languages:
            raise RequestError(
                f"no TTS engine speaks {lang!r}; ad-hoc announcements need a TTS language"
            )
        if priority not in ("normal", "priority", "emergency"):
            raise RequestError(f"priority must be normal, priority or emergency, got: {priority!r}")
        self._hamlets(request.get("hamlets", "all"))

    async def _publish(
        self, request: dict[str, Any], *, operator: str | None, approver: str | None
    ) -> dict[str, Any]:
        text = str(request.get("text") or "").strip()
        lang = str(request.get("lang") or self.config.commune.default_language)
        priority = str(request.get("priority") or "priority")
        exercise = bool(request.get("exercise"))
        hamlets = self._hamlets(request.get("hamlets", "all"))
        now = dt.datetime.fromtimestamp(self._daemon.clock(), tz=self.config.commune.tz)
        if request.get("now") or priority == "emergency":
            play_at, catch_up = now, max(s.catch_up for s in self.config.slots.values())
        else:
            play_at, catch_up = self._next_slot(now)
        seq = self._daemon.dispatcher.next_adhoc_number()
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
        self._daemon.journal.record_event(
            "issue",
            f"{priority} {status} announcement {item.announcement} to {','.join(hamlets)}"
            f" (operator: {operator or '-'}, approved by: {approver or '-'}): {text[:200]}",
        )
        published = await self._daemon.dispatcher.dispatch_plans(
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

    async def _event(self, kind: str, **detail: object) -> None:
        self._daemon.journal.record_event(kind, json.dumps(detail, ensure_ascii=False))

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

    async def cancel(self, target: str, say: object, *, correction: bool = False) -> dict[str, Any]:
        """Cancel a playlist id, or every playlist of an ad-hoc announcement id (`announce-N`),
        or withdraw a pending emergency request (`req-N`); then say the correction, if any."""
        if say and correction:
            raise RequestError("give either --say TEXT or --correction, not both")
        text = self.config.emergency.correction if correction else str(say) if say else ""
        withdrawn = self.approvals.withdraw(target)
        if withdrawn is not None:
            await self._event("withdraw", id=target, requested_by=withdrawn.operator)
            return {"withdrawn": target}
        rows = self._cancel_rows(target)
        # One signed cancel per playlist: each hamlet got its own id, and nodes match on it.
        controls = [
            await self._daemon.dispatcher.control([row.hamlet], "cancel", target=row.id)
            for row in rows
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
            result["correction"] = await self.announce(
                {"text": text, "hamlets": ",".join(hamlets), "priority": "priority", "now": True}
            )
        return result

    def _cancel_rows(self, target: str) -> list[DispatchRow]:
        journal = self._daemon.journal
        row = journal.dispatch(target)
        if row is not None:
            return [row]
        today = dt.datetime.fromtimestamp(self._daemon.clock(), tz=self.config.commune.tz).date()
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
        metrics = self._daemon.metrics
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
        self._daemon.journal.record_ack(ack, hamlet.id)
        self.registry_ack(node, ack)
        if ack.status == "played":
            self._count_played(ack, hamlet.id)

    def registry_ack(self, node: str, ack: Ack) -> None:
        self._daemon.registry.on_ack(node, ack.playlist, ack.status)

    def _count_played(self, ack: Ack, hamlet_id: str) -> None:
        where = self._playlists.get(ack.playlist)
        if where is None:
            row = self._daemon.journal.dispatch(ack.playlist)
            if row is None:
                return
            where = (row.hamlet, row.slot)
            self._playlists[ack.playlist] = where
        self._played[ack.playlist].add(ack.node)
        hamlet = self.config.hamlet(hamlet_id)
        households = {n.id: n.households for n in hamlet.nodes}
        reached = sum(households.get(n, 0) for n in self._played[ack.playlist])
        label = metric_slot(where[1])
        self._daemon.metrics.households_reached.labels(hamlet=where[0], slot=label).set(reached)


def _adhoc(slot: str) -> bool:
    """An ad-hoc playlist's slot is `announce-N`, `emergency-N` or `exercise-N`."""
    return any(slot == base or slot.startswith(f"{base}-") for base in ADHOC_KINDS)
