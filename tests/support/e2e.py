"""End-to-end harness: a generated commune whose slot falls a few seconds from now.

The daemon and the simulated agents share a shifted clock (`E2E.clock`), so a slot configured at
an HH:MM a few minutes ahead plays a few real seconds after the test starts. Everything else is
real: the embedded mosquitto, espeak-ng, ffmpeg, the journal, the reference agents.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from broadcastd import protocol
from broadcastd.config import Config, load_config
from broadcastd.controller.daemon import Daemon
from broadcastd.sim.fleet import Fleet, fleet_nodes
from broadcastd.transport.broker import free_port
from broadcastd.transport.credentials import Credentials

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TEXTS = (
    "Thông báo tiêm phòng cho gia súc vào sáng thứ bảy.",
    "Bà con chú ý phòng chống rét cho trâu bò.",
)


@dataclass
class E2E:
    """A commune in `root`, its config file, and the clock shared by daemon and agents."""

    root: Path
    config_path: Path
    offset: float
    play_at: dt.datetime  # the slot's play_at on the shifted clock
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        self.config = load_config(self.config_path).config

    def clock(self) -> float:
        return time.time() + self.offset

    def daemon(self, **kwargs: object) -> Daemon:
        options: dict[str, object] = {
            "clock": self.clock,
            "engines": ["espeak"],
            "serve_metrics": False,
            "watch_files": False,
            "handle_signals": False,
        }
        options.update(kwargs)
        return Daemon(self.config_path, **options)  # type: ignore[arg-type]

    def fleet(self, *, nodes: list[str] | None = None, **kwargs: object) -> Fleet:
        creds = Credentials.load_or_create(self.config)
        key = protocol.load_private_key(self.config.signing.private_key_file)
        specs = fleet_nodes(self.config, creds.passwords)
        if nodes is not None:
            specs = [s for s in specs if s.id in nodes]
        options: dict[str, object] = {"clock": self.clock, "heartbeat_s": 1.0}
        options.update(kwargs)
        return Fleet(
            self.config,
            specs,
            broker_url=f"mqtt://{self.config.broker.listen}",
            public_key=protocol.public_key_b64(key.public_key()),
            cache_root=self.root / "nodes",
            **options,  # type: ignore[arg-type]
        )

    @property
    def node_ids(self) -> list[str]:
        return [n.id for h in self.config.hamlets for n in h.nodes]


def write_commune(  # noqa: PLR0913 - each knob is a scenario parameter
    root: Path,
    *,
    hamlets: int = 10,
    nodes_per_hamlet: int = 2,
    play_in: float = 6.0,
    lead: str = "30m",
    catch_up: str = "20m",
    texts: tuple[str, ...] = TEXTS,
    priority: str = "normal",
    extra: tuple[str, ...] = (),
    heartbeat: str = "1s",
    keepalive: str = "5s",
) -> E2E:
    """Write config + key for a commune whose `noon` slot plays `play_in` real seconds from now."""
    root.mkdir(parents=True, exist_ok=True)
    local = dt.datetime.now(tz=TZ)
    at = (local + dt.timedelta(minutes=3)).replace(second=0, microsecond=0)
    offset = at.timestamp() - (time.time() + play_in)
    lines = [
        "commune: {id: test-commune, name: Xã Thử, timezone: Asia/Ho_Chi_Minh}",
        f"broker: {{mode: embedded, listen: '127.0.0.1:{free_port()}'}}",
        "signing: {private_key_file: ed25519.key}",
        "state_dir: state",
        "slots:",
        f"  noon: {{at: '{at:%H:%M}', max_duration: 15m, lead: {lead}, catch_up: {catch_up}}}",
        "tts: {engines: [espeak], timeout: 10s}",
        f"nodes: {{heartbeat: {heartbeat}, keepalive: {keepalive}}}",
        "hamlets:",
    ]
    for h in range(hamlets):
        lines += [
            f"  - id: h{h:02d}",
            f"    name: Bản {h}",
            f"    households: {10 * nodes_per_hamlet}",
        ]
        nodes = ", ".join(f"{{id: h{h:02d}-n{n}, households: 10}}" for n in range(nodes_per_hamlet))
        lines.append(f"    nodes: [{nodes}]")
    lines.append("announcements:")
    for i, text in enumerate(texts):
        lines += [
            f"  - id: ann-{i}",
            f"    title: Tin {i}",
            f"    text: {{vi: '{text}'}}",
            "    slots: [noon]",
            f"    priority: {priority}",
        ]
    lines += extra  # more top-level sections (exercise:, emergency:, ...)
    path = root / "commune.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    protocol.generate_private_key(root / "ed25519.key")
    return E2E(root, path, offset, at)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    """Poll `predicate` until true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)
