"""What staff ask of the running daemon (announce, cancel, stop) and what nodes answer (acks).

Requests arrive over the local control socket; this module turns them into dispatches and signed
control envelopes, and turns acks into the journal and the coverage metrics.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any, cast

from broadcastd import protocol
from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.models import Ack, AckStatus, PlanItem, SlotPlan
from broadcastd.schedule import estimate_seconds

if TYPE_CHECKING:
    from broadcastd.config import Config
    from broadcastd.daemon import Daemon
    from broadcastd.render import Renderer

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

    def replace_config(self, config: Config) -> None:
        self.config = config

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "announce":
            return await self.announce(request)
        if cmd == "cancel":
            return await self.cancel(str(request.get("id", "")), request.get("say"))
        if cmd == "stop":
            hamlets = self._hamlets(request.get("hamlets", "all"))
            cid = await self._daemon.dispatcher.control(hamlets, "stop")
            return {"control": cid, "hamlets": hamlets}
        if cmd == "status":
            return {
                "commune": self.config.commune.id,
                "connected": self._daemon.link.connected.is_set(),
                "ready": self._daemon.ready.is_set(),
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
        """An ad-hoc announcement: now (emergency plays at once) or at the next slot."""
        text = str(request.get("text") or "").strip()
        lang = str(request.get("lang") or self.config.commune.default_language)
        priority = str(request.get("priority") or "priority")
        if not text:
            raise RequestError("announce needs --text")
        if lang not in self.config.tts.languages:
            raise RequestError(
                f"no TTS engine speaks {lang!r}; ad-hoc announcements need a TTS language"
            )
        if priority not in ("normal", "priority", "emergency"):
            raise RequestError(f"priority must be normal, priority or emergency, got: {priority!r}")
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
        plans = [
            SlotPlan(
                date=play_at.date(),
                slot=ADHOC_SLOT if priority != "emergency" else "emergency",
                hamlet=h,
                play_at=play_at,
                expires_at=play_at + catch_up,
                publish_at=now,
                items=(item,),
            )
            for h in hamlets
        ]
        await self._daemon.journal.record_event(
            "issue", f"{priority} announcement to {','.join(hamlets)}: {text[:200]}"
        )
        published = await self._daemon.dispatcher.dispatch_plans(
            plans, priority=priority, urgent=priority == "emergency"
        )
        for p in published:
            self._playlists[p.playlist] = (p.hamlet, p.slot)
        return {"playlists": [p.playlist for p in published], "play_at": play_at.isoformat()}

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

    async def cancel(self, target: str, say: object) -> dict[str, Any]:
        row = self._daemon.journal.dispatch(target)
        if row is None:
            raise RequestError(f"no playlist with id {target!r} in the journal")
        cid = await self._daemon.dispatcher.control([row.hamlet], "cancel", target=target)
        result: dict[str, Any] = {"control": cid, "hamlet": row.hamlet}
        if say:
            result["correction"] = await self.announce(
                {"text": str(say), "hamlets": row.hamlet, "priority": "priority", "now": True}
            )
        return result

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
        await self._daemon.journal.record_ack(ack, hamlet.id)
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
        self._daemon.metrics.households_reached.labels(hamlet=where[0], slot=where[1]).set(reached)
