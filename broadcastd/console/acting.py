"""Acting through the daemon, shared by every action route: reading an action's form (session,
CSRF, origin, role, in that order, each refusal journaled), the confirmation page, and sending
the confirmed request to the daemon as the logged-in operator.

The console never signs or publishes anything: an action is one control request to the daemon,
which journals it with the operator (`via: console`). The console's access log keeps, beside
that, which operator did what from which address, and what the daemon answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol

from broadcastd.console.confirm import ConfirmError
from broadcastd.console.drafts import MAX_AUDIO_CHARS, one
from broadcastd.console.web import (
    FORM_LIMIT,
    MAX_FIELDS,
    address,
    checked_fields,
    console,
    page_context,
    render,
    require,
)
from broadcastd.controller.controlsocket import ControlError
from broadcastd.errors import BroadcastdError, DaemonNotRunningError

if TYPE_CHECKING:
    from fastapi import Request
    from fastapi.responses import Response

    from broadcastd.console.auth import Principal
    from broadcastd.console.drafts import Fields

# A 1024-character Vietnamese text is up to 9 KiB once percent-encoded; with a correction and
# the hidden copy of the confirmation page, 32 KiB is ample and still far below the body limit.
ACTION_FORM_LIMIT: Final = 4 * FORM_LIMIT
# Phát ngay's form with a recording: the file in base64url, besides the rest of the form.
AUDIO_FORM_LIMIT: Final = MAX_AUDIO_CHARS + ACTION_FORM_LIMIT
# How an action ended, and the HTTP status its page answers with.
STATUS: Final = {
    "ok": 200,
    "missing": 400,  # no or a forged confirmation: the page was skipped
    "mismatch": 400,
    "stale": 409,
    "spent": 409,  # already sent: a double tap, a reload
    "refused": 409,  # the daemon refused, with its reason
    "down": 503,  # nothing sent: the daemon is not running
    "unknown": 504,  # no answer in time: it may have been sent
    "gone": 409,  # an emergency request no longer pending: approved, withdrawn or expired
    "own": 403,  # approving one's own emergency request
}


class Draft(Protocol):
    def fields(self) -> dict[str, str]: ...
    def payload(self) -> dict[str, Any]: ...


async def action_fields(
    request: Request, me: Principal, role: str, *, limit: int = ACTION_FORM_LIMIT
) -> Fields:
    """An action form's fields, once its session's CSRF token, its origin and `role` pass."""
    hamlets = len(console(request).loaded.config.hamlets)
    fields = await checked_fields(request, me, limit=limit, max_fields=MAX_FIELDS + hamlets)
    await require(request, me, role)
    return fields


async def review(  # noqa: PLR0913 - what a confirmation page shows, named
    request: Request,
    me: Principal,
    *,
    action: str,
    draft: Draft,
    send_to: str,
    edit_to: str | None = None,
    danger: bool = False,
    **context: Any,
) -> Response:
    """The confirmation page: what will happen, and a form that sends exactly that."""
    c = console(request)
    fields = draft.fields()
    return render(
        request,
        "review.html",
        await page_context(
            request,
            me,
            names={h.id: h.name for h in c.loaded.config.hamlets},
            action=action,
            draft=draft,
            fields=fields,
            confirm=c.confirmations.issue(me.csrf, action, fields),
            send_to=send_to,
            edit_to=edit_to,
            danger=danger,
            **context,
        ),
    )


async def send(  # noqa: PLR0913 - the request, who, the form and the action, named
    request: Request,
    me: Principal,
    fields: Fields,
    *,
    action: str,
    draft: Draft,
    what: str,
) -> Response:
    """Redeem the confirmation, ask the daemon, journal the outcome, and show it."""
    c = console(request)
    where = address(request)
    try:
        c.confirmations.redeem(me.csrf, action, draft.fields(), one(fields, "confirm"))
    except ConfirmError as exc:
        await c.auth.refuse(me.name, where, f"{action} {what}: confirmation {exc.reason}")
        return await result(request, me, action, exc.reason)
    try:
        answer = await c.daemon.act(me.name, draft.payload())
    except DaemonNotRunningError:
        outcome, answer, message = "down", {}, ""
    except ControlError as exc:
        outcome, answer, message = "refused", {}, str(exc)
    except BroadcastdError as exc:
        outcome, answer, message = "unknown", {}, str(exc)
    else:
        outcome, message = "ok", ""
    c.live.refresh()
    said = _summary(answer) if outcome == "ok" else f"{outcome} {message}".strip()
    await c.auth.record(me.name, where, f"{action} {what}: {said}")
    return await result(request, me, action, outcome, answer=answer, message=message)


async def result(  # noqa: PLR0913 - how an action ended, named
    request: Request,
    me: Principal,
    action: str,
    outcome: str,
    *,
    answer: dict[str, Any] | None = None,
    message: str = "",
) -> Response:
    return render(
        request,
        "result.html",
        await page_context(
            request, me, action=action, outcome=outcome, answer=answer or {}, message=message
        ),
        status=STATUS[outcome],
    )


def _summary(answer: dict[str, Any]) -> str:
    """The ids the daemon answered with, for the access log."""
    keys = ("request", "id", "control", "withdrawn", "playlists", "acked")
    parts = [f"{k} {answer[k]}" for k in keys if answer.get(k)]
    return "ok " + "; ".join(parts) if parts else "ok"
