"""Confirmation tokens: every action the console asks of the daemon goes through a page that
shows exactly what will happen, and the server, not only the page, insists on it.

A confirmation page carries `confirm`: when it was shown, a random nonce and an HMAC, keyed with
the session's CSRF secret, over the action and exactly the values the page shows. The action's
POST is refused unless the token matches those values, is younger than CONFIRM_TTL_S and its
nonce was never used: a forged form cannot skip the page, a page left open over lunch does not
send this morning's "now" in the afternoon, and a double tap on a phone or a reload of the
result sends nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import TYPE_CHECKING, Final

from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

CONFIRM_TTL_S: Final = 900.0
MAX_REMEMBERED: Final = 10_000  # spent nonces kept (each for CONFIRM_TTL_S at most)


class ConfirmError(BroadcastdError):
    """The confirmation is missing, stale, spent or for other values; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # missing | stale | spent | mismatch


def _mac(key: str, action: str, issued: int, nonce: str, fields: Mapping[str, str]) -> str:
    message = json.dumps(
        [action, issued, nonce, sorted(fields.items())], ensure_ascii=False, separators=(",", ":")
    )
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


class Confirmations:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._spent: dict[str, float] = {}  # nonce -> when its token was issued

    def issue(self, key: str, action: str, fields: Mapping[str, str]) -> str:
        """The token a confirmation page carries for `action` with exactly `fields`."""
        issued, nonce = int(self._clock()), secrets.token_urlsafe(12)
        return f"{issued}.{nonce}.{_mac(key, action, issued, nonce, fields)}"

    def redeem(self, key: str, action: str, fields: Mapping[str, str], token: str | None) -> None:
        """Spend a token; ConfirmError unless it confirms `action` with exactly `fields`."""
        issued_s, _, rest = (token or "").partition(".")
        nonce, _, mac = rest.partition(".")
        if not issued_s.isdigit() or not nonce or len(mac) != 64 or len(nonce) > 32:
            raise ConfirmError("missing")
        issued = int(issued_s)
        if not hmac.compare_digest(mac, _mac(key, action, issued, nonce, fields)):
            raise ConfirmError("mismatch")
        now = self._clock()
        if not 0 <= now - issued <= CONFIRM_TTL_S:
            raise ConfirmError("stale")
        self._forget(now)
        if nonce in self._spent:
            raise ConfirmError("spent")
        self._spent[nonce] = issued

    def _forget(self, now: float) -> None:
        if len(self._spent) < MAX_REMEMBERED // 2:
            return
        # Past the TTL a token is refused as stale anyway, so its nonce need not be kept.
        self._spent = {n: t for n, t in self._spent.items() if now - t <= CONFIRM_TTL_S}
        while len(self._spent) >= MAX_REMEMBERED:  # a flood within one TTL: drop the oldest
            del self._spent[next(iter(self._spent))]
