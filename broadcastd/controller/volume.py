"""`broadcastd volume LEVEL`: one signed volume control for hamlets or single speakers, journaled,
and the speakers' acks awaited for a few seconds so the answer says who has applied it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from broadcastd.controller.requests import RequestError

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.config import Config
    from broadcastd.controller.controls import Controls
    from broadcastd.controller.registry import NodeRegistry
    from broadcastd.controller.requests import Volume, Who

ACK_WAIT_S = 5.0  # what an operator waits at most for the online speakers' acks
REMEMBERED = 64  # control ids whose acks are kept: an ack may come before its waiter


class VolumeRequests:
    """Turns a `Volume` request into a control and collects the acks of its id."""

    def __init__(
        self,
        config: Config,
        *,
        controls: Controls,
        registry: NodeRegistry,
        event: Callable[..., None],
        ack_wait_s: float = ACK_WAIT_S,
    ) -> None:
        self.config = config
        self._controls = controls
        self._registry = registry
        self._event = event
        self._ack_wait_s = ack_wait_s
        self._acked: OrderedDict[str, set[str]] = OrderedDict()  # control id -> nodes
        self._waiters: set[asyncio.Event] = set()  # one per request awaiting acks

    def replace_config(self, config: Config) -> None:
        self.config = config

    def on_ack(self, node: str, control_id: str) -> None:
        """A node acked `control_id` (a speaker acks each control it applied)."""
        if not control_id.startswith("volume-"):
            return
        self._acked.setdefault(control_id, set()).add(node)
        self._acked.move_to_end(control_id)
        while len(self._acked) > REMEMBERED:
            self._acked.popitem(last=False)
        for waiter in self._waiters:
            waiter.set()

    async def handle(self, request: Volume, who: Who) -> dict[str, Any]:
        targets = self._targets(request)
        cid = await self._controls.volume(targets, request.level)
        nodes = [
            n.id
            for h in self.config.hamlets
            if h.id in targets
            for n in h.nodes
            if targets[h.id] is None or n.id in (targets[h.id] or ())
        ]
        self._event(
            "volume",
            who,
            id=cid,
            level=request.level,
            hamlets=list(targets),
            nodes=None if request.nodes is None else nodes,
        )
        online = [n for n in nodes if self._registry.state(n) == "online"]
        acked = await self._acks(cid, set(online))
        return {
            "control": cid,
            "level": request.level,
            "hamlets": list(targets),
            "acked": [n for n in nodes if n in acked],
            "not_acked": [n for n in online if n not in acked],
            "offline": [n for n in nodes if n not in online and n not in acked],
        }

    def _targets(self, request: Volume) -> dict[str, tuple[str, ...] | None]:
        """hamlet -> the nodes named in it (None: all of its nodes)."""
        hamlets = {h.id: h for h in self.config.hamlets}
        if request.nodes is not None:
            where = self.config.node_hamlets()
            wanted = [n.strip() for n in request.nodes.split(",") if n.strip()]
            unknown = [n for n in wanted if n not in where]
            if unknown or not wanted:
                raise RequestError(
                    f"unknown node(s): {', '.join(unknown) or '(none given)'}"
                    f" (known: {', '.join(where)})"
                )
            targets: dict[str, list[str]] = {}
            for node in wanted:
                targets.setdefault(where[node].id, []).append(node)
            return {h: tuple(ns) for h, ns in targets.items()}
        if request.hamlets in (None, "all"):
            return dict.fromkeys(hamlets)
        wanted = [h.strip() for h in str(request.hamlets).split(",") if h.strip()]
        unknown = [h for h in wanted if h not in hamlets]
        if unknown or not wanted:
            raise RequestError(
                f"unknown hamlet(s): {', '.join(unknown) or '(none given)'}"
                f" (known: {', '.join(hamlets)})"
            )
        return dict.fromkeys(wanted)

    async def _acks(self, cid: str, expected: set[str]) -> set[str]:
        """The nodes that acked `cid`, once all of `expected` have or after `ack_wait_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ack_wait_s
        heard = asyncio.Event()
        self._waiters.add(heard)
        try:
            while not expected <= self._acked.get(cid, set()):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(heard.wait(), remaining)
                heard.clear()
        finally:
            self._waiters.discard(heard)
        return set(self._acked.get(cid, set()))
