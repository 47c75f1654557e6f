"""What a speaker sends the controller: acks, kept on disk and sent in order until the daemon's
receipt says they are journaled (ackoutbox.py), and periodic heartbeats (DESIGN.md §5).

An ack is sent again, from the oldest unconfirmed one, when the link comes back, when the
controller announces itself `online` (it may have died before journaling what it received), and
after a silence that grows from RESEND_S to RESEND_MAX_S (a daemon that sends no receipts only
costs a resend now and then); the daemon drops what it already journaled. Every ack is also a
log line naming the playlist and what it says, with its times in the commune's zone: a technician
on site reads `journalctl -u broadcastd-node` to learn what the speaker did.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import LinkError, ProtocolError
from broadcastd.localtime import local_time
from broadcastd.node.ackoutbox import AckLog
from broadcastd.protocol.titles import playlist_title

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from broadcastd.localtime import Zone
    from broadcastd.node.settings import NodeConfig
    from broadcastd.transport.link import MqttLink

log = logging.getLogger(__name__)

RETRY_S = 0.5  # between two attempts to publish an ack while the link is flapping
RESEND_S = 15.0
RESEND_MAX_S = 300.0
MADE_KEPT = 10_000  # acks remembered for the simulator and tests: a speaker runs for months
FINAL = frozenset({"played", "failed", "expired", "rejected"})  # nothing follows these
WORDS = {
    "received": "accepted",
    "ready": "all audio fetched and verified",
    "playing": "on air",
    "played": "played to the end",
    "expired": "expired unplayed",
}


class Outbox:
    """One node's outbound messages over its link; `clock` and `volume` are read when sent."""

    def __init__(  # noqa: PLR0913 - the clock, volume and zone are read as each message goes
        self,
        link: MqttLink,
        topics: protocol.Topics,
        node_id: str,
        *,
        acks: AckLog,
        receipts: Callable[[bytes], list[int]],
        clock: Callable[[], float],
        volume: Callable[[], int],
        tz: Zone = None,
        extra: Callable[[], Mapping[str, object]] | None = None,
    ) -> None:
        self.link = link
        self.extra = extra  # more heartbeat fields, read when sent (clock offset, telemetry)
        self.node_id = node_id
        self.clock = clock
        self.volume = volume
        self.tz = tz
        self.acks = acks
        self._verify_receipt = receipts  # ack numbers a genuine receipt names; ProtocolError
        self._titles: dict[str, str] = {}  # playlist id -> what it says, until its last ack
        self.started = clock()
        self._ack_topic = topics.node_ack(node_id)
        self._heartbeat_topic = topics.node_heartbeat(node_id)
        self._sent: dict[int, float] = {}  # ack number -> when last sent (loop time)
        self._resend_in = RESEND_S
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()  # an ack went out (for drain)
        self.made: deque[tuple[str, str]] = deque(maxlen=MADE_KEPT)  # (playlist, status)

    @classmethod
    def for_config(  # noqa: PLR0913 - the speaker's parts an outbox uses, each injected
        cls,
        config: NodeConfig,
        link: MqttLink,
        topics: protocol.Topics,
        *,
        clock: Callable[[], float],
        volume: Callable[[], int],
        receipts: Callable[[bytes], list[int]] | None = None,
        extra: Callable[[], Mapping[str, object]] | None = None,
    ) -> Outbox:
        """A speaker's outbox: its acks kept in its cache_dir, receipts checked with `receipts`
        (default: node.yaml's key alone)."""
        return cls(
            link,
            topics,
            config.node.id,
            acks=AckLog(config.cache_dir),
            receipts=receipts or config.receipt_verifier(),
            clock=clock,
            volume=volume,
            tz=config.tz,
            extra=extra,
        )

    def verified(self, pl: protocol.Playlist) -> None:
        """Log a playlist whose envelope checked out; its acks will name what it says."""
        self._titles[pl.id] = title = playlist_title(pl.items)
        log.info(
            'node %s: playlist %s "%s" verified (%s, %s): plays at %s, expires %s',
            self.node_id, pl.id, title, pl.slot, pl.priority,
            local_time(pl.play_at, self.tz), local_time(pl.expires_at, self.tz),
        )  # fmt: skip

    def ack(self, playlist_id: str, status: str, detail: str = "") -> None:
        title = (self._titles.pop if status in FINAL else self._titles.get)(playlist_id, "")
        log.log(
            logging.WARNING if status in ("failed", "rejected") else logging.INFO,
            'node %s: playlist %s "%s": %s%s (ack %s)',
            self.node_id, playlist_id, title, WORDS.get(status, status),
            f": {detail}" if detail else "", status,
        )  # fmt: skip
        ts = self.clock()
        self.acks.add(lambda n: protocol.ack_payload(playlist_id, status, ts, detail, n=n))
        self.made.append((playlist_id, status))
        self._wake.set()

    def on_receipt(self, payload: bytes) -> None:
        """A receipt from the daemon: forget the acks it names (a forged one changes nothing)."""
        try:
            numbers = self._verify_receipt(payload)
        except ProtocolError as exc:
            log.warning("node %s: receipt refused: %s", self.node_id, exc)
            return
        for n in self.acks.confirm(numbers):
            self._sent.pop(n, None)
            self._resend_in = RESEND_S  # the daemon answers: back to prompt resends
        self._wake.set()

    def resend_now(self) -> None:
        """Send every unconfirmed ack again (the link came back, or the controller did)."""
        if self.acks.pending:
            self._sent.clear()
            self._wake.set()

    async def send_acks(self) -> None:
        """Publish kept acks in order, each until the broker has it and again until a receipt
        names it; runs forever."""
        loop = asyncio.get_running_loop()
        self.acks.open()
        while True:
            await self.link.connected.wait()
            due = self._due(loop.time())
            if not due:
                await self._idle(loop.time())
                continue
            if self.acks.dirty:
                await asyncio.to_thread(self.acks.sync)
            for n in due:
                payload = self.acks.pending.get(n)
                if payload is None:
                    continue  # confirmed meanwhile
                try:
                    await self.link.publish(self._ack_topic, payload)
                except LinkError as exc:
                    log.info("node %s: ack delayed: %s", self.node_id, exc)
                    await asyncio.sleep(RETRY_S)
                    break
                self._sent[n] = loop.time()
                self._progress.set()

    def _due(self, now: float) -> list[int]:
        """The acks to send now, oldest first. Never held back for a receipt: a daemon that
        sends none (an older one) still gets every ack at once, as before receipts; what its
        rate limit refuses is unconfirmed, hence sent again later."""
        self._sent = {n: t for n, t in self._sent.items() if n in self.acks.pending}
        if self._sent and now - min(self._sent.values()) >= self._resend_in:
            self._sent.clear()  # unconfirmed for too long: all again, from the oldest
            self._resend_in = min(self._resend_in * 2, RESEND_MAX_S)
        return [n for n in sorted(self.acks.pending) if n not in self._sent]

    async def _idle(self, now: float) -> None:
        """Until something changes, or the oldest unconfirmed ack is due again. A timer, not
        `wait_for`: on Python 3.11 that can swallow the cancellation of a stopping agent when
        the wake-up lands at the same moment, and the agent then never finishes stopping."""
        self._wake.clear()
        timer = None
        if self._sent:
            due_in = max(0.0, min(self._sent.values()) + self._resend_in - now)
            timer = asyncio.get_running_loop().call_later(due_in, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            if timer is not None:
                timer.cancel()

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded best effort
        """Wait (at most `timeout` s) until every kept ack has been sent at least once; the
        unconfirmed ones stay on disk for the next run."""
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout, self._progress.set)
        deadline = loop.time() + timeout
        try:
            while any(n not in self._sent for n in self.acks.pending) and loop.time() < deadline:
                self._progress.clear()
                await self._progress.wait()  # an ack went out, or the time is up
        finally:
            timer.cancel()
        if self.acks.dirty:
            await asyncio.to_thread(self.acks.sync)

    async def heartbeats(self, every_s: float) -> None:
        """A heartbeat every `every_s` while connected; runs forever."""
        while True:
            await self.link.connected.wait()
            now = self.clock()
            extra = self.extra() if self.extra is not None else None
            payload = protocol.heartbeat_payload(
                now, now - self.started, None, self.volume(), extra
            )
            try:
                await self.link.publish(self._heartbeat_topic, payload)
            except LinkError as exc:
                log.info("node %s: heartbeat skipped: %s", self.node_id, exc)
            await asyncio.sleep(every_s)
