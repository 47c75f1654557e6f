"""End-to-end harness: a generated commune whose slot falls a few seconds from now.

The daemon and the simulated agents share a shifted clock (`E2E.clock`), so a slot configured at
an HH:MM a few minutes ahead plays a few real seconds after the test starts. Everything else is
real: the embedded mosquitto, espeak-ng, ffmpeg, the journal, the reference agents.
`async with e2e.running() as run:` starts the daemon and the commune's fleet for a block.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict, Unpack
from zoneinfo import ZoneInfo

from broadcastd import protocol
from broadcastd.config import Config, LoadedConfig, load_config
from broadcastd.controller.daemon import Daemon
from broadcastd.sim.fleet import Fleet, FleetOptions
from broadcastd.transport import pki
from broadcastd.transport.broker import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from pathlib import Path

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TEXTS = (
    "Thông báo tiêm phòng cho gia súc vào sáng thứ bảy.",
    "Bà con chú ý phòng chống rét cho trâu bò.",
)
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


class DaemonOptions(TypedDict, total=False):
    """`Daemon`'s keyword arguments; `E2E.daemon` defaults them for a test."""

    clock: Callable[[], float]
    engines: Sequence[str] | None
    serve_metrics: bool
    watch_files: bool
    handle_signals: bool
    config: LoadedConfig | None
    scheduling: bool


class FleetArgs(FleetOptions, total=False):
    """`E2E.fleet`'s keyword arguments."""

    nodes: list[str] | None


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

    def daemon(self, **options: Unpack[DaemonOptions]) -> Daemon:
        """A daemon on the shared clock, espeak-ng only, no metrics server, watcher or signals."""
        defaults: DaemonOptions = {
            "clock": self.clock,
            "engines": ["espeak"],
            "serve_metrics": False,
            "watch_files": False,
            "handle_signals": False,
        }
        return Daemon(self.config_path, **(defaults | options))

    def fleet(self, *, nodes: list[str] | None = None, **options: Unpack[FleetOptions]) -> Fleet:
        """The commune's speakers (only `nodes`, if given) on the shared clock, not started."""
        defaults: FleetOptions = {"clock": self.clock, "heartbeat_s": 1.0}
        return Fleet.for_config(
            self.config, cache_root=self.root / "nodes", nodes=nodes, **(defaults | options)
        )

    @contextlib.asynccontextmanager
    async def running(
        self, *, fleet: FleetArgs | bool = True, **daemon: Unpack[DaemonOptions]
    ) -> AsyncIterator[Running]:
        """`E2E.daemon(**daemon)` started and ready, with `E2E.fleet(**fleet)` (False: no fleet)
        started beside it; all of it stopped when the block ends, also when the block fails.

        A failure of the block is raised as it is; a failure of the daemon or of a fleet cancels
        the block and is raised in an ExceptionGroup, as from any TaskGroup."""
        failure: Exception | None = None
        async with asyncio.TaskGroup() as tasks:
            started = self.daemon(**daemon)
            run = Running(started, tasks, tasks.create_task(started.run(), name="daemon"))
            try:
                await asyncio.wait_for(started.ready.wait(), READY_TIMEOUT_S)
                if fleet is not False:
                    run.start(self.fleet(**({} if fleet is True else fleet)))
                try:
                    yield run
                except Exception as exc:  # noqa: BLE001 - raised again below, once all stopped
                    failure = exc
            finally:
                await run.stop()
        if failure is not None:
            raise failure

    @property
    def node_ids(self) -> list[str]:
        return [n.id for h in self.config.hamlets for n in h.nodes]

    def use_external_broker(self, host: str, port: int) -> E2E:
        """The same commune pointed at a broker the test owns (so the test can SIGKILL it)."""
        text = self.config_path.read_text(encoding="utf-8")
        lines = [
            f"broker: {{mode: external, url: 'mqtt://{host}:{port}', listen: '{host}:{port}'}}"
            if line.startswith("broker:")
            else line
            for line in text.splitlines()
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return E2E(self.root, self.config_path, self.offset, self.play_at)


@dataclass
class Running:
    """A started daemon and the fleets running beside it (see `E2E.running`)."""

    daemon: Daemon
    tasks: asyncio.TaskGroup  # the daemon's, the fleets' and any task the test adds
    daemon_task: asyncio.Task[None]
    fleets: dict[Fleet, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def fleet(self) -> Fleet:
        """The fleet started first."""
        if not self.fleets:
            raise AssertionError("no fleet is running")
        return next(iter(self.fleets))

    def start(self, fleet: Fleet) -> asyncio.Task[None]:
        """Run `fleet` until the block ends; cancelling its task cuts it off like a power cut."""
        self.fleets[fleet] = self.tasks.create_task(fleet.run(), name=f"fleet-{len(self.fleets)}")
        return self.fleets[fleet]

    def slot_played(
        self, day: dt.date, *, hamlets: int, acks: int, slot: str = "noon"
    ) -> Callable[[], bool]:
        """A predicate: `slot` of `day` is journaled for `hamlets` hamlets and `acks` (node,
        playlist) pairs acked `played`."""

        def played() -> bool:
            journal = self.daemon.journal
            rows = journal.dispatches_for(day, slot)
            done = {
                (a.node, a.playlist)
                for r in rows
                for a in journal.acks_for(r.id)
                if a.status == "played"
            }
            return len(rows) == hamlets and len(done) == acks

        return played

    async def stop(self) -> None:
        """Stop the fleets, then the daemon, and wait for all of them (again: nothing more).

        Waiting never raises: a task that failed is raised by the TaskGroup."""
        for fleet in self.fleets:
            fleet.stop()
        await _finish(list(self.fleets.values()), "the fleets")
        if not self.daemon.stopping.is_set():  # a second request is the "exit at once" signal
            self.daemon.request_stop()
        await _finish([self.daemon_task], "the daemon")


async def _finish(tasks: list[asyncio.Task[None]], what: str) -> None:
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    if pending:
        raise AssertionError(f"{what} did not stop within {STOP_TIMEOUT_S:.0f}s")


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
    tls: bool = False,
    websockets: bool = False,
    listen: str | None = None,
) -> E2E:
    """Write config + key for a commune whose `noon` slot plays `play_in` real seconds from now
    (its broker listening on `listen`, default a free port on 127.0.0.1).

    `tls`: the embedded broker also has the speakers' TLS listener (`broker.public`, host
    `localhost`, bound to 127.0.0.1) and `broadcastd tls init` has run; speakers use it.
    `websockets` (with `tls`): and its secure WebSockets listener, which speakers use instead
    (`node_url: wss://localhost:PORT/mqtt`)."""
    root.mkdir(parents=True, exist_ok=True)
    local = dt.datetime.now(tz=TZ)
    at = (local + dt.timedelta(minutes=3)).replace(second=0, microsecond=0)
    offset = at.timestamp() - (time.time() + play_in)
    # The link lab's broker listens on its own private network (198.51.100.0/24, inside network
    # namespaces), where plain MQTT is what `insecure_plaintext` is for.
    plain = ", insecure_plaintext: true" if listen else ""
    listen = listen or f"127.0.0.1:{free_port()}"
    lines = [
        "commune: {id: test-commune, name: Xã Thử, timezone: Asia/Ho_Chi_Minh}",
        f"broker: {{mode: embedded, listen: '{listen}'{plain}{_public(tls, websockets)}}}",
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
    e2e = E2E(root, path, offset, at)
    if tls:
        pki.init(e2e.config)
    return e2e


def _public(tls: bool, websockets: bool) -> str:
    if not tls:
        return ""
    if not websockets:
        return f", public: {{host: localhost, port: {free_port()}, bind: 127.0.0.1}}"
    ws = free_port()
    return (
        f", public: {{host: localhost, port: {free_port()}, bind: 127.0.0.1,"
        f" websockets_port: {ws}}}, node_url: 'wss://localhost:{ws}/mqtt'"
    )


async def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    """Poll `predicate` until true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)
