"""What one node may cost the controller: per-node rate limits, and refusals counted and logged.

A speaker's login can be stolen (README "Security"); the broker then lets the thief publish on
that node's own topics as fast as it likes. Every ack is a journal row and an audit row, and a
state message can be a journaled transition: 10,000 acks in 8 s grew the journal by 107 MB. So
each node gets a token bucket per kind of message, sized far above what a real agent sends, and
whatever is refused is counted in `bad_messages_total{reason}` and logged once per node and reason.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.metrics import Metrics

log = logging.getLogger(__name__)

# An agent sends received, ready, playing and played per playlist: a burst of 60 is fifteen
# playlists at once (an emergency series, an outbox flushed after a day offline); one ack per 5 s
# after that is more than any commune dispatches.
ACK_BURST: Final = 60.0
ACK_RATE: Final = 0.2
# State and heartbeat: one heartbeat per interval and a state per (re)connect, with room for a
# flapping 3G link; the rate scales with the configured heartbeat.
STATUS_BURST: Final = 30.0
STATUS_PER_HEARTBEAT: Final = 4.0
MAX_LOGGED: Final = 10_000  # remembered (node, reason) pairs, against a flood of invented ids


class TokenBucket:
    """`take()` is true while tokens last; they come back at `rate` per second up to `burst`."""

    __slots__ = ("_stamp", "_tokens")

    def __init__(self, burst: float, now: float) -> None:
        self._tokens = burst
        self._stamp = now

    def take(self, rate: float, burst: float, now: float) -> bool:
        elapsed = max(0.0, now - self._stamp)  # a clock that steps back refills nothing
        self._tokens = min(burst, self._tokens + elapsed * rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class NodeLimits:
    """One bucket per (node, "ack" | "status"); callers pass only configured node ids."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def allow(self, node: str, kind: str, heartbeat_s: float) -> bool:
        if kind == "ack":
            rate, burst = ACK_RATE, ACK_BURST
        else:
            rate, burst = STATUS_PER_HEARTBEAT / max(heartbeat_s, 0.05), STATUS_BURST
        now = self._clock()
        bucket = self._buckets.get((node, kind))
        if bucket is None:
            bucket = self._buckets[(node, kind)] = TokenBucket(burst, now)
        return bucket.take(rate, burst, now)


class Refusals:
    """Counts a refused node message by reason; logs the first one per (node, reason). `verb`
    says what became of it in the log ("refused" before parsing, "ignored" once parsed)."""

    def __init__(self, metrics: Metrics | None, *, verb: str = "refused") -> None:
        self._metrics = metrics
        self._verb = verb
        self._logged: set[tuple[str, str]] = set()

    def __call__(self, node: str, reason: str, detail: str = "") -> None:
        if self._metrics is not None:
            self._metrics.bad_messages_total.labels(reason=reason).inc()
        key = (node[:64], reason)
        if key in self._logged or len(self._logged) > MAX_LOGGED:
            return
        self._logged.add(key)
        if len(self._logged) > MAX_LOGGED:
            log.warning(
                "too many %s node messages: further ones are counted, not logged", self._verb
            )
            return
        # %r: a node id or detail from the wire must not forge or colour a log line.
        said = f" {detail!r}" if detail else ""
        log.warning("node %r: %s message %s%s (logged once)", node[:64], reason, self._verb, said)
