"""The controller's time, as a speaker without a good clock knows it.

A board on 3G often has no real-time clock and bad NTP, and a playlist's `play_at` is the
controller's time: a speaker ten minutes off would play ten minutes off. The controller's time
beacons (protocol.beacon) each say "the controller's clock read T when this was sent"; received
at local time r, T - r is the offset plus nothing less than the beacon's delay on the way, so
each is a lower bound of the true offset and the largest of the recent ones, the one that
travelled fastest, is the estimate (as NTP's clock filter keeps its least-delayed sample). Its
error is the fastest one-way delay seen: a fraction of a second on 3G. Only recent beacons count,
so a drifting crystal or a stepped local clock is followed within WINDOW_S.

Until the first beacon the local clock is used as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.node.settings import NodeConfig

log = logging.getLogger(__name__)

WINDOW_S = 600.0  # beacons older than this (local time) no longer count
MAX_SAMPLES = 64
NOTICE_S = 1.0  # an offset beyond this is logged when it first appears or changes by as much
MAX_DEFERRED = 16  # envelopes kept for the controller's time: the retained ones a connect brings
# How long they wait for a first beacon (the daemon sends one 0.2 s after a node's `online`);
# after that they are judged by the board's clock, as without a controller that sends beacons.
DEFER_S = 5.0


class ControllerClock:
    """Callable like `time.time`, returning the controller's time; `local` is the board's.
    Beacons are checked against `public_key` and `commune` (`on_beacon`)."""

    def __init__(
        self,
        local: Callable[[], float],
        *,
        public_key: protocol.Ed25519PublicKey | None = None,
        commune: str = "",
        on_settle: Callable[[], None] | None = None,
    ) -> None:
        self.local = local
        self.on_settle = on_settle  # deferred envelopes may be judged now (`settled`)
        self.public_key = public_key
        self.commune = commune
        self.rejected = 0  # beacons that failed verification
        self._samples: deque[tuple[float, float]] = deque(maxlen=MAX_SAMPLES)  # (at, offset)
        self._logged = 0.0
        self._expected: tuple[float, float] | None = None  # (since, every): beacons announced
        self._deferred: list[bytes] = []
        self._deferred_at: float | None = None  # time.monotonic() of the first deferral

    @classmethod
    def for_config(
        cls,
        config: NodeConfig,
        local: Callable[[], float],
        on_settle: Callable[[], None] | None = None,
    ) -> ControllerClock:
        """The clock of the speaker `config` describes: beacons checked with its commune's key."""
        key = protocol.load_public_key(config.public_key)
        return cls(local, public_key=key, commune=config.node.commune, on_settle=on_settle)

    def on_state(self, payload: bytes) -> bool:
        """A message on `controller/state`: True when it is the controller's retained `online`
        (a restarted daemon), False for a beacon or anything else."""
        self.on_beacon(payload)
        return not protocol.is_beacon(payload) and b'"online"' in payload

    def unsure(self) -> bool:
        """Whether the board's clock is all there is yet and the controller's time is coming:
        no beacon so far, the controller's retained `online` announced them (the node
        subscribes to it first, so it comes before the retained playlists), and less than
        DEFER_S since the first envelope deferred."""
        if self._samples or self._expected is None:
            return False
        return self._deferred_at is None or time.monotonic() - self._deferred_at < DEFER_S

    def defer(self, payload: bytes) -> None:
        """Keep an envelope that looked expired by the board's clock, to be judged again by
        the controller's time (`settled`, at the latest DEFER_S from now): a board ten minutes
        ahead must not drop a bulletin whose `catch_up` is shorter."""
        if self._deferred_at is None:
            self._deferred_at = time.monotonic()
            if self.on_settle is not None:
                # A hair late: the loop may run a timer up to its clock's resolution early.
                asyncio.get_running_loop().call_later(DEFER_S + 0.1, self.on_settle)
        if len(self._deferred) < MAX_DEFERRED:
            log.info("an envelope looks expired by this board's clock: judged again by the time")
            self._deferred.append(payload)

    def settled(self) -> list[bytes]:
        """The deferred envelopes, once the time is known (or known not to come)."""
        if not self._deferred or self.unsure():
            return []
        deferred, self._deferred = self._deferred, []
        self._deferred_at = None
        return deferred

    def _expect(self, payload: bytes) -> None:
        try:
            state = protocol.decode_json(payload, protocol.MAX_ENVELOPE_BYTES)
        except ProtocolError:
            return
        every = state.get("beacon_s")
        if state.get("state") == "online" and isinstance(every, int | float) and every > 0:
            self._expected = (self.local(), float(every))

    def __call__(self) -> float:
        return self.local() + (self.offset or 0.0)

    @property
    def offset(self) -> float | None:
        """Controller time minus local time, seconds; None before the first beacon."""
        if not self._samples:
            return None
        return max(offset for _, offset in self._samples)

    def heartbeat_fields(self) -> dict[str, object]:
        """What a heartbeat says of it: the offset the registry reports as this node's skew."""
        offset = self.offset
        return {} if offset is None else {"clock_offset_ms": round(offset * 1000)}

    def waiting(self) -> bool:
        """Whether the controller has said it sends beacons and none has come yet (for at most
        two of its periods): a bulletin due by the board's own clock waits for the time."""
        if self._expected is None or self._samples:
            return False
        since, every = self._expected
        return self.local() < since + 2 * every

    def on_beacon(self, payload: bytes) -> None:
        """A message on `controller/state`: a beacon is verified and counted (a forged one is
        counted and ignored); the retained state says whether beacons are coming."""
        if self.public_key is None:
            return
        if not protocol.is_beacon(payload):
            self._expect(payload)
            return
        try:
            sent = protocol.verify_beacon(payload, self.public_key, commune=self.commune)
        except ProtocolError as exc:
            self.rejected += 1
            log.warning("time beacon rejected: %s", exc)
            return
        self.beacon(sent)

    def beacon(self, controller_time: float) -> None:
        """A beacon saying the controller's clock read `controller_time`, just received."""
        now = self.local()
        while self._samples and (self._samples[0][0] < now - WINDOW_S or self._samples[0][0] > now):
            self._samples.popleft()  # too old, or from before the local clock was stepped back
        self._samples.append((now, controller_time - now))
        offset = self.offset or 0.0
        if abs(offset - self._logged) >= NOTICE_S:
            log.warning(
                "local clock is %.1f s off the controller's: playing by the latter", -offset
            )
            self._logged = offset
