"""A stand-in daemon on the real control socket, for the console's action routes in-process:
it answers the reads as a daemon with every speaker `unknown` would (with the telemetry it is
given), records every action it is asked, and answers it as the daemon does (or refuses, when
told to)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broadcastd.console.live import hamlets_from, journaled_nodes
from broadcastd.controller.controlsocket import ControlServer, Peer
from broadcastd.errors import BroadcastdError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from broadcastd.config import Config


class RefusedError(BroadcastdError):
    """What the daemon says when it refuses; the console shows it as is."""


@dataclass
class FakeDaemon:
    config: Config
    asked: list[dict[str, Any]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # the status' pending request ids
    refusal: str | None = None  # refuse every action with this message
    telemetry: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> last reading

    async def handle(self, payload: dict[str, Any], peer: Peer) -> dict[str, Any]:
        del peer
        cmd = payload["cmd"]
        nodes = journaled_nodes(self.config, None, self.telemetry)
        if cmd == "status":
            return {"connected": True, "ready": True, "pending_requests": self.pending, "v": 1}
        if cmd == "hamlets":
            return {"v": 1, "hamlets": hamlets_from(self.config, nodes)}
        if cmd == "nodes":
            return {"v": 1, "nodes": nodes}
        self.asked.append(payload)
        if self.refusal is not None:
            raise RefusedError(self.refusal)
        recorded = {"operator": payload.get("operator"), "operator_verified": True}
        answer = self._schedule(payload) if cmd == "volume-schedule" else self._answer(payload)
        return answer | {"recorded": recorded | {"via": payload.get("via")}}

    def _answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        cmd = payload["cmd"]
        hamlets = str(payload.get("hamlets") or "").split(",")
        number = len(self.asked)
        if cmd == "announce":
            return {"id": f"announce-{number}", "playlists": [f"p-{h}" for h in hamlets]}
        if cmd == "approve":
            return {"request": payload["id"], "approved_by": payload["operator"], "id": "a-1"}
        if cmd == "cancel":
            if str(payload["id"]).startswith("req-"):
                return {"withdrawn": payload["id"]}
            return {"control": f"cancel-{number}", "cancelled": [payload["id"]], "hamlets": []}
        if cmd == "stop":
            return {"control": f"stop-{number}", "hamlets": hamlets, "withdrawn": []}
        return {"control": f"volume-{number}", "level": payload["level"], "acked": []}

    @staticmethod
    def _schedule(payload: dict[str, Any]) -> dict[str, Any]:
        hamlets = str(payload["hamlets"]).split(",")
        return {"hamlets": hamlets, "schedule": payload["schedule"], "in_force": {}}

    def actions(self) -> list[str]:
        return [str(p["cmd"]) for p in self.asked]

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeDaemon]:
        server = ControlServer(self.config.state_dir / "broadcastd.sock", self.handle)
        self.config.state_dir.mkdir(mode=0o700, exist_ok=True)
        task = asyncio.create_task(server.run(), name="fake-daemon")
        try:
            async with asyncio.timeout(5):
                await server.listening.wait()
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
