"""Two-person emergencies: pending requests that a second, different operator approves.

Requests live in the daemon's memory only: a restart drops them, which fails closed (nothing is
published without a fresh request). Every open, approval and refusal is journaled by the caller.
Request ids are `req-1`, `req-2`, ...: short enough to read out over the phone, and counted on
from the highest id in the journal, so a restart never hands out an id that named another request.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from broadcastd.config import Config
    from broadcastd.controller.requests import Announce

FORGET_AFTER_S = (
    86400.0  # expired requests are remembered this long, to say "expired", not "unknown"
)
# Ids journaled before short ids were clock milliseconds (13 digits): never matched, never reused.
_REQUEST_ID = re.compile(r"req-([1-9][0-9]{0,8})")


class ApprovalError(BroadcastdError):
    """An emergency request or approval the daemon refuses; the message goes back to the CLI."""


@dataclass(frozen=True, slots=True)
class EmergencyRequest:
    id: str
    operator: str
    request: Announce  # the original request, published as is once approved
    created_at: float
    expires_at: float


def check_operator(config: Config, operator: object, *, required: bool) -> str | None:
    """The operator's name if given and known; ApprovalError if unknown, or missing but required."""
    names = config.emergency.operators
    if operator in (None, ""):
        if required:
            raise ApprovalError(
                "emergencies need two operators (emergency.approvals: 2): "
                f"pass --operator NAME (one of: {', '.join(names)})"
            )
        return None
    name = str(operator)
    if names and name not in names:
        raise ApprovalError(
            f"unknown operator {name!r}: emergency.operators names {', '.join(names)}"
        )
    return name


class Approvals:
    """Pending emergency requests, keyed by request id, with an injected clock."""

    def __init__(self, clock: Callable[[], float], journaled: Iterable[str] = ()) -> None:
        """`journaled`: the details of every request event in the journal (JSON with an id)."""
        self._clock = clock
        self._pending: dict[str, EmergencyRequest] = {}
        self._last = max(map(_number, journaled), default=0)

    def open(self, config: Config, operator: str, request: Announce) -> EmergencyRequest:
        now = self._clock()
        self._forget_old(now)
        ttl = config.emergency.request_ttl.total_seconds()
        self._last += 1
        req = EmergencyRequest(f"req-{self._last}", operator, request, now, now + ttl)
        self._pending[req.id] = req
        return req

    def approve(self, config: Config, request_id: str, operator: object) -> EmergencyRequest:
        """The request, removed from the pending ones; ApprovalError if it cannot be approved."""
        name = check_operator(config, operator, required=True)
        req = self._pending.get(request_id)
        if req is None:
            raise ApprovalError(f"no pending emergency request {request_id!r}")
        now = self._clock()
        if now >= req.expires_at:
            del self._pending[request_id]
            when = dt.datetime.fromtimestamp(req.expires_at, tz=config.commune.tz)
            raise ApprovalError(
                f"request {request_id} expired at {when:%H:%M:%S} "
                f"(emergency.request_ttl); issue the emergency again"
            )
        if name == req.operator:
            raise ApprovalError(
                f"request {request_id} was issued by {name}: a second, different operator "
                "must approve it"
            )
        del self._pending[request_id]
        return req

    def withdraw(self, request_id: str) -> EmergencyRequest | None:
        return self._pending.pop(request_id, None)

    def pending(self) -> list[EmergencyRequest]:
        now = self._clock()
        return [r for r in self._pending.values() if now < r.expires_at]

    def _forget_old(self, now: float) -> None:
        for rid in [r.id for r in self._pending.values() if now - r.expires_at > FORGET_AFTER_S]:
            del self._pending[rid]


def _number(detail: str) -> int:
    """N of the `req-N` a journaled request event names; 0 for anything else."""
    try:
        rid = json.loads(detail).get("id")
    except (ValueError, AttributeError):
        return 0
    m = _REQUEST_ID.fullmatch(rid) if isinstance(rid, str) else None
    return int(m.group(1)) if m else 0
