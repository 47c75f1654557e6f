"""Receipts for numbered acks: a node learns which of its acks are safe in the journal.

An ack a node numbered (`n`) is confirmed only after the journal has committed it: `confirm`
queues the number, `run()` waits for the journal to flush everything queued so far, then
publishes one signed receipt per node. A daemon killed in between sends nothing, and the node
sends the ack again (when the restarted daemon announces itself `online`); the journal keeps one
row per ack however often it arrives (`Journal.record_ack`), and `seen` spares the rest of the
daemon the copies that arrive while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.errors import LinkError

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.journal.store import Journal
    from broadcastd.transport.link import MqttLink

log = logging.getLogger(__name__)

SEEN_PER_NODE = 256  # numbers remembered per node: far more than a node has unconfirmed
MAX_PER_RECEIPT = 200


class Receipts:
    """Confirms journaled acks to the nodes that numbered them."""

    def __init__(
        self,
        commune: Callable[[], str],
        *,
        link: MqttLink,
        journal: Journal,
        key: protocol.Ed25519PrivateKey,
        clock: Callable[[], float],
    ) -> None:
        self._commune = commune  # read per receipt: a reload may rename the commune
        self._link = link
        self._journal = journal
        self._key = key
        self._clock = clock
        self._waiting: dict[str, set[int]] = defaultdict(set)
        self._seen: dict[str, OrderedDict[int, None]] = defaultdict(OrderedDict)
        self._wake = asyncio.Event()
        self.sent = 0  # receipts published, for tests and logs

    def seen(self, node: str, n: int) -> bool:
        """Whether this ack number from `node` was already handled by this daemon."""
        return n in self._seen[node]

    def confirm(self, node: str, n: int) -> None:
        """Acknowledge ack `n` of `node` once the journal has it (handled, kept or refused)."""
        seen = self._seen[node]
        seen[n] = None
        seen.move_to_end(n)
        while len(seen) > SEEN_PER_NODE:
            seen.popitem(last=False)
        self._waiting[node].add(n)
        self._wake.set()

    async def run(self) -> None:
        """Publish receipts for what the journal has committed; runs until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._waiting = self._waiting, defaultdict(set)
            await self._journal.flush()  # every ack queued before this point is committed
            # All at once: one PUBACK wait per receipt, in turn, held a slot's 1000 receipts
            # (and the acks behind them on this loop) for a round trip each.
            await asyncio.gather(*(self._send(n, sorted(ns)) for n, ns in batch.items()))

    async def _send(self, node: str, numbers: list[int]) -> None:
        commune = self._commune()
        topic = protocol.Topics(commune).receipt(node)
        for start in range(0, len(numbers), MAX_PER_RECEIPT):
            chunk = numbers[start : start + MAX_PER_RECEIPT]
            payload = protocol.receipt_payload(commune, node, chunk, self._clock(), self._key)
            try:
                await self._link.publish(topic, payload)
            except LinkError as exc:
                # The node sends these acks again; the journal already has them, so the next
                # receipt for them costs nothing but this message.
                log.info("receipt for node %r not sent (%s); it will ask again", node, exc)
                return
            self.sent += 1
