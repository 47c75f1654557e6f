"""What staff ask of the running daemon (announce, cancel, stop, volume).

Requests arrive over the local control socket; this module turns them into dispatches and signed
control envelopes (what nodes answer goes to acks.py). Every event a request
causes is journaled with who asked (`Who`): the operator as claimed and the Unix user the socket's
peer credentials prove. With `emergency.approvals: 2`, cancel, stop and volume must name an
operator.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from broadcastd.controller.acks import AckSink
from broadcastd.controller.adhoc import adhoc_plans, check_languages
from broadcastd.controller.approvals import Approvals, check_operator
from broadcastd.controller.controlsocket import Peer
from broadcastd.controller.reads import READ_VERSION, READS, answer_read, tts_counts
from broadcastd.controller.recordings import Recordings
from broadcastd.controller.requests import (
    Announce,
    Approve,
    Cancel,
    Read,
    RequestError,
    Status,
    Stop,
    Volume,
    VolumeSchedule,
    Who,
    parse_request,
    who_asked,
)
from broadcastd.controller.volume import VolumeRequests
from broadcastd.controller.volumeschedule import VolumeSchedules
from broadcastd.errors import BroadcastdError
from broadcastd.models import ADHOC_KINDS
from broadcastd.plan.volume import SCHEDULE_EVENT, schedule_wire

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from broadcastd.config import Config
    from broadcastd.controller.controls import Controls
    from broadcastd.controller.dispatch import Dispatcher
    from broadcastd.controller.registry import NodeRegistry
    from broadcastd.journal.store import DispatchRow, Journal
    from broadcastd.metrics import Metrics
    from broadcastd.render.renderer import Renderer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    """What `broadcastd status` reports of the running daemon besides its requests."""

    connected: bool  # the controller's MQTT link is up
    ready: bool  # start-up (catch-up of missed slots) is done


class Operations:
    """Control-socket handler; its `acks` is the node inbox's ack sink (acks.py)."""

    def __init__(  # noqa: PLR0913 - the collaborators, handed over by the composition root
        self,
        config: Config,
        *,
        dispatcher: Dispatcher,
        controls: Controls,
        journal: Journal,
        registry: NodeRegistry,
        renderer: Renderer,
        metrics: Metrics,
        clock: Callable[[], float],
        health: Callable[[], Health],
        schedules: VolumeSchedules | None = None,
        telemetry: Callable[[], Mapping[str, object]] = dict,
    ) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.controls = controls
        self.journal = journal
        self.registry = registry
        self.renderer = renderer
        self.metrics = metrics
        self.clock = clock
        self._health = health
        self._telemetry = telemetry  # node -> last reading, for the `nodes` read
        self.console_uid = os.geteuid()  # the console runs as the daemon's user (requests.py)
        self.approvals = Approvals(clock, journal.event_details("request"))
        self.volume = VolumeRequests(
            config, controls=controls, registry=registry, event=self._event
        )
        self.recordings = Recordings(config.state_dir / "recordings", renderer)
        self.schedules = schedules or VolumeSchedules()
        self.acks = AckSink(
            config,
            controls=controls,
            journal=journal,
            registry=registry,
            volume=self.volume,
            metrics=metrics,
        )

    def replace_config(self, config: Config) -> None:
        self.config = config
        self.volume.replace_config(config)
        self.acks.replace_config(config)

    async def handle(self, raw: dict[str, Any], peer: Peer | None = None) -> dict[str, Any]:
        """One control-socket request, parsed and checked before anything acts on it; `peer` is
        who connected, as the kernel reports it."""
        request = parse_request(raw)
        if isinstance(request, Status | Read):
            return self._read(request)
        peer = peer or Peer(None, None, None)
        try:
            who = who_asked(raw, request.operator, peer, console_uid=self.console_uid)
        except RequestError as exc:
            self._event("refused", Who(request.operator, peer), cmd=raw.get("cmd"), reason=str(exc))
            raise
        log.info("control %r by %s", raw.get("cmd"), who.describe())
        match request:
            case Announce():
                return await self.announce(request, who) | who.attribution()
            case Cancel():
                return await self.cancel(request, who) | who.attribution()
            case Approve():
                return await self.approve(request.id, who) | who.attribution()
            case Stop():
                return await self.stop(request, who) | who.attribution()
            case Volume() | VolumeSchedule():
                return await self._volume(request, who) | who.attribution()

    def _read(self, request: Status | Read) -> dict[str, Any]:
        if isinstance(request, Read):
            return answer_read(
                request.what, self.config, self.registry, self.clock, self._telemetry()
            )
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

    async def _volume(self, request: Volume | VolumeSchedule, who: Who) -> dict[str, Any]:
        """A level now (a signed control), or the schedule of the playlists made from now on."""
        if isinstance(request, Volume):
            self._operator(who, "volume")
            return await self.volume.handle(request, who)
        self._operator(who, "volume-schedule")
        hamlets, schedule = self._hamlets(request.hamlets), request.schedule
        wire = None if schedule is None else schedule_wire(schedule)
        self._event(SCHEDULE_EVENT, who, hamlets=hamlets, schedule=wire)
        return self.schedules.set(self.config, hamlets, schedule)

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

    def _operator(self, who: Who, action: str) -> None:
        """Refuse (and journal the refusal) unless `who` names a configured operator, when two
        operators must agree on an emergency: whoever may silence the commune must be as
        accountable as whoever may alert it."""
        try:
            if who.operator is None and self.config.emergency.approvals == 2:
                names = ", ".join(self.config.emergency.operators)
                raise RequestError(
                    f"{action} needs --operator NAME when emergency.approvals is 2"
                    + (f" (one of: {names})" if names else "")
                )
            check_operator(self.config, who.operator, required=False)
        except BroadcastdError as exc:
            self._event("refused", who, cmd=action, reason=str(exc))
            raise

    async def announce(self, request: Announce, who: Who) -> dict[str, Any]:
        """An ad-hoc announcement: now (emergency plays at once) or at the next slot.

        Recordings are kept, examined and journaled before anything else (recordings.py). With
        `emergency.approvals: 2` an emergency only opens a pending request (see `approve`).
        """
        two_person = request.priority == "emergency" and self.config.emergency.approvals == 2
        operator = check_operator(self.config, request.operator, required=two_person)
        if request.audio:
            request = await self._accept_recordings(request, who)
        else:
            self._validate(request)
        if not two_person:
            return await self._publish(request, who, approver=None)
        req = self.approvals.open(self.config, str(operator), request)
        hamlets = self._hamlets(request.hamlets)
        audio = {"audio": [r.sha256 for r in request.recordings]} if request.recordings else {}
        self._event("request", who, id=req.id, hamlets=hamlets, text=request.text[:200], **audio)
        await self.journal.flush()  # the id is counted on from the journal after a restart
        expires = dt.datetime.fromtimestamp(req.expires_at, tz=self.config.commune.tz)
        log.warning("emergency request %s by %r awaits a second operator", req.id, req.operator)
        return {
            "request": req.id,
            "operator": req.operator,
            "expires_at": expires.isoformat(),
            "playlists": [],
            "next": f"broadcastd approve {req.id} --operator OTHER",
        }

    async def _accept_recordings(self, request: Announce, who: Who) -> Announce:
        """`request` with its uploads kept in the spool and journaled (sha256 and who sent
        them) before the daemon answers; a refusal is journaled too."""
        uploads = [(u.lang, hashlib.sha256(u.data).hexdigest()) for u in request.audio]
        try:
            self._validate(request)
            limit = self.config.audio.max_recording.total_seconds()
            kept = await self.recordings.accept(request.audio, max_seconds=limit)
        except BroadcastdError as exc:
            self._event("refused", who, cmd="announce", audio=uploads, reason=str(exc))
            await self.journal.flush()
            raise
        for recording in kept:
            self._event("recording", who, **recording.describe(), file=recording.path.name)
        await self.journal.flush()
        return replace(request, audio=(), recordings=kept)

    async def approve(self, request_id: str, who: Who) -> dict[str, Any]:
        """The second operator's confirmation: publish the pending emergency request."""
        operator = who.operator
        try:
            req = self.approvals.approve(self.config, request_id, operator)
        except BroadcastdError as exc:
            self._event("refused", who, id=request_id, reason=str(exc))
            raise
        self._event("approve", who, id=req.id, requested_by=req.operator)
        requester = Who(req.operator, who.peer)
        result = await self._publish(req.request, requester, approver=str(operator))
        return {"request": req.id, "approved_by": str(operator), **result}

    def _validate(self, request: Announce) -> None:
        lang = request.lang or self.config.commune.default_language
        if request.text and lang not in self.config.tts.languages:
            raise RequestError(
                f"no TTS engine speaks {lang!r}; ad-hoc announcements need a TTS language"
            )
        langs = [u.lang for u in request.audio] or [r.lang for r in request.recordings]
        check_languages(self.config, self._hamlets(request.hamlets), langs)

    async def _publish(
        self, request: Announce, who: Who, *, approver: str | None
    ) -> dict[str, Any]:
        priority, status = request.priority, "exercise" if request.exercise else "live"
        now = dt.datetime.fromtimestamp(self.clock(), tz=self.config.commune.tz)
        adhoc = adhoc_plans(
            self.config,
            request,
            self._hamlets(request.hamlets),
            number=self.dispatcher.next_adhoc_number(),
            now=now,
        )
        audio = "".join(f", {r.lang} recording {r.sha256}" for r in request.recordings)
        via = f", via: {who.via}" if who.via else ""  # the operator logged in to the console
        self.journal.record_event(
            "issue",
            f"{priority} {status} announcement {adhoc.id} to {','.join(adhoc.heard)}"
            f" (operator: {who.operator or '-'}, approved by: {approver or '-'},"
            f" Unix user: {who.peer.user or '-'}{audio}{via}): {request.text[:200]}",
        )
        published = await self.dispatcher.dispatch_plans(
            adhoc.plans, priority=priority, status=status, urgent=priority == "emergency"
        )
        for p in published:
            self.acks.sent(p.playlist, p.hamlet, p.slot)
        result: dict[str, Any] = {
            "id": adhoc.id,
            "status": status,
            "playlists": [p.playlist for p in published],
            "play_at": adhoc.play_at.isoformat(),
            "hamlets": adhoc.heard,
            "not_covered": adhoc.silent,
        }
        if request.recordings:
            result["recordings"] = [r.describe() for r in request.recordings]
        return result

    def _event(self, kind: str, who: Who, **detail: object) -> None:
        """Journal and log what a request did, with who asked (`Who.record`)."""
        record = detail | who.record()
        first = {k: record[k] for k in ("id", "operator") if k in record}  # what a reader looks for
        said = ", ".join(f"{k} {_loggable(v)}" for k, v in (first | record).items())
        log.info("operator %s: %s", kind, said)
        self.journal.record_event(kind, json.dumps(record, ensure_ascii=False))

    async def cancel(self, request: Cancel, who: Who) -> dict[str, Any]:
        """Cancel a playlist id, or every playlist of an ad-hoc announcement id (`announce-N`),
        or withdraw a pending emergency request (`req-N`); then say the correction, if any."""
        self._operator(who, "cancel")
        target = request.id
        text = self.config.emergency.correction if request.correction else request.say or ""
        withdrawn = self.approvals.withdraw(target)
        if withdrawn is not None:
            self._event("withdraw", who, id=target, requested_by=withdrawn.operator)
            return {"withdrawn": target}
        rows = self._cancel_rows(target)
        controls = await self.controls.cancel(rows)
        for cid, row in zip(controls, rows, strict=True):
            self._event("cancel", who, id=cid, target=row.id, hamlet=row.hamlet)
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
                operator=who.operator,
            )
            result["correction"] = await self.announce(correction, who)
        return result

    async def stop(self, request: Stop, who: Who) -> dict[str, Any]:
        """Silence hamlets now; what was on air or waiting to play there never plays."""
        self._operator(who, "stop")
        hamlets = self._hamlets(request.hamlets)
        sent = await self.controls.stop(hamlets)
        self._event("stop", who, id=sent.id, hamlets=hamlets, withdrawn=sent.withdrawn)
        return {"control": sent.id, "hamlets": hamlets, "withdrawn": sent.withdrawn}

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


def _adhoc(slot: str) -> bool:
    """An ad-hoc playlist's slot is `announce-N`, `emergency-N` or `exercise-N`."""
    return any(slot == base or slot.startswith(f"{base}-") for base in ADHOC_KINDS)


def _loggable(value: object) -> str:
    """A value as it reads, unless it could forge or garble a log line (then its repr)."""
    text = str(value)
    return text if text.isprintable() else repr(value)
