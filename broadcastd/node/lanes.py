"""The speaker's two lanes to the broker and how much audio it asks for at once.

A weak 3G link is one queue: whatever the broker has queued for a connection arrives before what
it queues next. A node that subscribed to `audio/<sha>/+` had every remaining chunk of a clip
queued ahead of the next playlist, control or PUBACK on its one connection; an emergency issued
15 s into a 1.2 MB download at 256 kbit/s played 26.6 s late (issue 18). So:

- the **control lane** is the node's own connection (playlists, controls, acks, heartbeats,
  and the audio of a live emergency), and no routine audio ever travels on it;
- the **bulk lane** is a second connection (its own login `<username>_bulk` with the node's
  password, client id `<client id>-bulk`, no session kept: nothing queued on it is worth
  keeping) for the audio of every other playlist;
- on both, chunks are asked for by their exact topics, a few at a time: the **window**, sized
  from the measured delivery rate times the round-trip time (plus one chunk, so the link never
  idles for a round trip between two chunks), so a good link is not slowed and a weak one never
  has more than a couple of chunks queued at the broker that a more urgent clip would wait for.

DESIGN.md §5 has the measurements behind this (benchmarks/lanes.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from typing import TYPE_CHECKING

from broadcastd.models import PRIORITY_RANK
from broadcastd.protocol import CHUNK_SIZE
from broadcastd.transport.linksettings import bulk_username

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd import protocol
    from broadcastd.transport.linksettings import LinkSettings

# Two chunks in flight: one arriving while the next is already asked for. One would leave the
# link idle for a round trip per chunk (400 ms of every 2.4 s at 256 kbit/s: 17% lost).
MIN_WINDOW = 2
# 1 MiB asked for at once: beyond the bandwidth-delay product of any 3G/4G link (10 Mbit/s x
# 500 ms is 625 KB) and a bound on what a burst of requests can queue at the broker.
MAX_WINDOW = 16
RATE_SAMPLES = 8  # the delivery rate is the best of the last few chunks: a stall is not the link
RTT_SAMPLES = 16  # the round trip is the least of the last few clean ones: queueing is not the path

EMERGENCY_RANK = 0  # a live emergency: fetched on the control lane, before anything else


def fetch_rank(pl: protocol.Playlist) -> int:
    """How urgently a playlist's audio is fetched: 0 a live emergency, 1 `priority`, 2 the rest
    (an exercise never outranks a routine bulletin's neighbours, whatever it claims)."""
    if pl.status != "live":
        return PRIORITY_RANK["normal"]
    return PRIORITY_RANK.get(pl.priority, PRIORITY_RANK["normal"])


def bulk_settings(control: LinkSettings) -> LinkSettings:
    """The bulk lane's connection: the control lane's broker and password, its own login
    (`<username>_bulk`: with `use_username_as_clientid` one login is one connection) and client
    id, no Last Will or `online` (the node's state is the control lane's), no subscriptions of
    its own, and no session kept (a chunk asked for and lost with the connection is asked
    again)."""
    username = control.username
    return dataclasses.replace(
        control,
        client_id=f"{control.client_id}-bulk",
        username=None if username is None else bulk_username(username),
        will=None,
        online=None,
        subscriptions=(),
        session_expiry=0,
    )


class LinkMeter:
    """Delivery rate and round-trip time of the speaker's link, and the window they give.

    Both lanes cross the same link, so they share one meter. The rate is measured per chunk as
    its bytes over the time since the previous chunk arrived or since it was asked for, whichever
    is later: with the window full that is the chunk's time on the wire. The round trip is the
    time a SUBSCRIBE takes to be acknowledged, sampled only when nothing else was in flight on
    that lane (otherwise the SUBACK waits behind chunks and would inflate the window it sets)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._rates: deque[float] = deque(maxlen=RATE_SAMPLES)
        self._rtts: deque[float] = deque(maxlen=RTT_SAMPLES)
        self._last_arrival = -math.inf

    @property
    def rate(self) -> float | None:
        """Bytes per second, or None before the first chunk."""
        return max(self._rates) if self._rates else None

    @property
    def rtt(self) -> float | None:
        return min(self._rtts) if self._rtts else None

    def round_trip(self, seconds: float) -> None:
        self._rtts.append(max(0.0, seconds))

    def delivered(self, size: int, asked_at: float) -> None:
        now = self.clock()
        began = max(self._last_arrival, asked_at)
        self._last_arrival = now
        if now > began:
            self._rates.append(size / (now - began))

    def window(self) -> int:
        """Chunks to keep asked for: the bandwidth-delay product in chunks, plus one."""
        rate, rtt = self.rate, self.rtt
        if rate is None or rtt is None:
            return MIN_WINDOW
        return max(MIN_WINDOW, min(MAX_WINDOW, math.ceil(rate * rtt / CHUNK_SIZE) + 1))
