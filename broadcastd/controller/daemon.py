"""The composition root: one AsyncExitStack owns resources, one TaskGroup runs named tasks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from broadcastd import __version__, protocol
from broadcastd.config import Config, LoadedConfig, load_config
from broadcastd.controller.beacon import TimeBeacon
from broadcastd.controller.configwatch import ConfigWatcher, parent_dirs
from broadcastd.controller.controls import Controls
from broadcastd.controller.controlsocket import ControlServer, Peer
from broadcastd.controller.dispatch import Dispatcher, SlotDue
from broadcastd.controller.embedded import BrokerLogin, BrokerSide
from broadcastd.controller.inbound import NodeInbox
from broadcastd.controller.keyrotation import COMMAND as ROTATE
from broadcastd.controller.keyrotation import KeyRotations
from broadcastd.controller.operations import Health, Operations
from broadcastd.controller.receipts import Receipts
from broadcastd.controller.registry import NodeRegistry
from broadcastd.controller.renderahead import RenderAhead
from broadcastd.controller.revocation import COMMAND as REVOKE
from broadcastd.controller.revocation import Revocations
from broadcastd.controller.runner import FORCE_EXIT_S
from broadcastd.controller.sdnotify import SdNotifier
from broadcastd.controller.slotfeed import SlotFeed
from broadcastd.controller.telemetry import TelemetryBook
from broadcastd.controller.volumeschedule import VolumeSchedules
from broadcastd.errors import BroadcastdError, ConfigError
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics
from broadcastd.plan.volume import SCHEDULE_EVENT
from broadcastd.render.renderer import build_renderer
from broadcastd.transport.bulk import BulkPublisher
from broadcastd.transport.link import LinkSettings, MqttLink
from broadcastd.transport.signingkeys import RotatingKey, SigningKeys

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence
    from pathlib import Path

    from broadcastd.transport.broker import MosquittoProcess

log = logging.getLogger(__name__)

STOP_GRACE_S = 3.0  # an in-flight dispatch may finish within this; the whole stop stays under 5 s
STOP_DEADLINE_S = 4.0  # past this after SIGTERM, the process exits without waiting for stuck tasks
OVERDUE_UNWIND_S = 0.5  # ... giving the tasks only this long to unwind (the total stays under 5 s)
SWEEP_INTERVAL_S = 1.0


class _Stop(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside the TaskGroup to end every task after an orderly shutdown."""


class Daemon:
    """Everything `broadcastd run` does. Build with a config path; `await run()` until stopped."""

    def __init__(  # noqa: PLR0913 - test seams: clock, engines, metrics, watcher, signals
        self,
        config_path: Path,
        *,
        clock: Callable[[], float] = time.time,
        engines: Sequence[str] | None = None,
        serve_metrics: bool = True,
        watch_files: bool = True,
        handle_signals: bool = True,
        config: LoadedConfig | None = None,
        scheduling: bool = True,
    ) -> None:
        self.config_path = config_path
        self.loaded = config if config is not None else load_config(config_path)
        self.clock = clock
        self.engines = engines
        self.serve_metrics = serve_metrics
        self.watch_files = watch_files
        self.handle_signals = handle_signals
        self.scheduling = scheduling  # False: no slot jobs, no start-up catch-up (the demo drives)
        self.metrics = Metrics(per_node=self.config.metrics.per_node)
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.notifier = SdNotifier()
        self.queue: asyncio.Queue[SlotDue] = asyncio.Queue()
        self.broker_side = BrokerSide(self.metrics)
        self._reload_lock = asyncio.Lock()
        self._overdue: asyncio.TimerHandle | None = None  # bounds the orderly stop
        self._drained = False
        self.unwind_s = FORCE_EXIT_S  # how long run_until_stopped() lets tasks unwind on SystemExit

    @property
    def config(self) -> Config:
        """The config running now (a reload swaps it)."""
        return self.loaded.config

    @property
    def broker(self) -> MosquittoProcess | None:
        """The supervised mosquitto when broker.mode is embedded (operators and fault tests
        reach its pid here)."""
        return self.broker_side.process

    async def run(self) -> None:
        """Build every collaborator in order, run them as named tasks until stopped."""
        keys = SigningKeys(self.config.signing.private_key_file)
        key = RotatingKey(keys, self.clock)  # the key active at each signature's time
        self.config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        async with AsyncExitStack() as stack:
            self.journal = self._open_journal(stack)
            self.schedules = VolumeSchedules(self.journal.event_details(SCHEDULE_EVENT))
            login = await self.broker_side.start(self.config, stack)
            self.registry = self._build_registry()
            self.link = self._build_link(login)
            self.bulk = BulkPublisher(self.link, login.bulk)
            self.renderer = build_renderer(self.config, self.metrics, engines=self.engines)
            self.dispatcher = self._build_dispatcher(key)
            self.controls = Controls(
                self.config.commune.id,
                link=self.link,
                journal=self.journal,
                key=key,
                seq=self.dispatcher.seq,
                clock=self.clock,
                persist=self._save_broker,
            )
            self.ops = self._build_operations()
            self.rotations = KeyRotations(
                lambda: self.config,
                keys,
                link=self.link,
                journal=self.journal,
                clock=self.clock,
                persist=self._save_broker,
            )
            self.receipts = Receipts(
                lambda: self.config.commune.id,
                link=self.link,
                journal=self.journal,
                key=key,
                clock=self.clock,
            )
            self.beacon = self._build_beacon(key)
            self.telemetry = TelemetryBook(lambda: self.config, self.metrics, clock=self.clock)
            self.inbox = NodeInbox(
                lambda: self.config,
                registry=self.registry,
                operations=self.ops,
                metrics=self.metrics,
                receipts=self.receipts,
                key_acks=self.rotations.on_ack,
                on_online=self.beacon.soon,
                on_heartbeat=self.telemetry.on_heartbeat,
            )
            self.feed = SlotFeed(
                self.config, self.queue, self.journal, self.metrics, clock=self.clock
            )
            self._start_metrics()
            self.revocations = Revocations(
                lambda: self.config, self.broker_side, self.journal, clock=self.clock
            )
            control = ControlServer(self.config.state_dir / "broadcastd.sock", self._control)
            try:
                async with asyncio.TaskGroup() as tg:
                    for name, job in self._tasks(control):
                        tg.create_task(job, name=name)
            except* _Stop:
                pass
            finally:
                if self._overdue is not None:
                    self._overdue.cancel()  # stopped in time; never fire in a loop that goes on

    # -- composition: one step per collaborator ---------------------------------------------------

    def _open_journal(self, stack: AsyncExitStack) -> Journal:
        journal = Journal.open(self.config.state_dir / "journal.sqlite3")
        stack.callback(journal.close)
        return journal

    def _build_registry(self) -> NodeRegistry:
        return NodeRegistry(
            self.config, self.metrics, now=self.clock, journal_cb=self.journal.record_transition
        )

    def _build_link(self, login: BrokerLogin) -> MqttLink:
        config = self.config
        topics = protocol.Topics(config.commune.id)
        return MqttLink(
            LinkSettings.from_url(
                login.url,
                client_id=f"broadcastd-{config.commune.id}",
                username=login.username,
                password=login.password,
                tls_ca=config.broker.ca_file,
                insecure_plaintext=config.broker.insecure_plaintext,
                keepalive=int(config.nodes.keepalive.total_seconds()),
                will=(
                    topics.controller_state(),
                    protocol.state_payload("offline", int(self.clock())),
                ),
                online=(
                    topics.controller_state(),
                    protocol.state_payload(
                        "online",
                        int(self.clock()),
                        beacon_s=config.nodes.heartbeat.total_seconds(),
                    ),
                ),
                subscriptions=((topics.nodes_filter(), 1),),
            ),
            # Looked up per call: the inbox and the dispatcher are built after (and from) the link.
            lambda topic, payload, props: self.inbox.on_message(topic, payload, props),  # noqa: PLW0108
            on_connect=self._on_link_connect,
            metrics_gauge=self.metrics.mqtt_connected,
        )

    async def _on_link_connect(self) -> None:
        # The rotation first: a node must trust a new key before a playlist signed with it
        # comes, and a broker that lost the retained rotation gets it back.
        try:
            await self.rotations.publish()
        except BroadcastdError as exc:
            log.warning("key rotation not published on connect: %s", exc)
        await self.dispatcher.on_connect()

    def _build_beacon(self, key: protocol.Ed25519PrivateKey) -> TimeBeacon:
        return TimeBeacon(
            self.link,
            key,
            commune=lambda: self.config.commune.id,
            clock=self.clock,
            # looked up per beacon: a reload may change the heartbeat
            every_s=lambda: self.config.nodes.heartbeat.total_seconds(),  # noqa: PLW0108
        )

    def _build_dispatcher(self, key: protocol.Ed25519PrivateKey) -> Dispatcher:
        return Dispatcher(
            self.loaded,
            link=self.link,
            audio=self.bulk,
            journal=self.journal,
            renderer=self.renderer,
            key=key,
            metrics=self.metrics,
            clock=self.clock,
            persist=self._save_broker,
            schedules=self.schedules.for_hamlet,
        )

    async def _control(self, raw: dict[str, Any], peer: Peer | None = None) -> dict[str, Any]:
        """The control socket: a revocation is the broker's business, a key rotation the
        rotations', the rest operations'."""
        if raw.get("cmd") == REVOKE:
            return await self.revocations.handle(raw, peer)
        if raw.get("cmd") == ROTATE:
            return await self.rotations.handle(raw, peer)
        return await self.ops.handle(raw, peer)

    def _save_broker(self) -> None:
        self.broker_side.save()

    def _build_operations(self) -> Operations:
        return Operations(
            self.config,
            dispatcher=self.dispatcher,
            controls=self.controls,
            journal=self.journal,
            registry=self.registry,
            renderer=self.renderer,
            metrics=self.metrics,
            clock=self.clock,
            health=lambda: Health(
                connected=self.link.connected.is_set(), ready=self.ready.is_set()
            ),
            schedules=self.schedules,
            telemetry=lambda: self.telemetry.readings,  # the book comes later; read per request
        )

    def _start_metrics(self) -> None:
        if self.serve_metrics:
            host, _, port = self.config.metrics.listen.rpartition(":")
            self.metrics.serve(host.strip("[]"), int(port))
        self._set_static_metrics(self.config)

    def _tasks(self, control: ControlServer) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """The daemon's long-running tasks, by name (the names show in logs and tracebacks)."""
        tasks: list[tuple[str, Coroutine[Any, Any, None]]] = [
            ("journal", self.journal.run()),
            ("mqtt", self.link.run()),
            ("mqtt-bulk", self.bulk.run()),
            ("dispatch", self.dispatcher.run(self.queue)),
            ("republish", self.dispatcher.run_republisher()),
            ("receipts", self.receipts.run()),
            ("key-rotation", self.rotations.run()),
            ("time-beacon", self.beacon.run()),
        ]
        if self.scheduling:
            ahead = RenderAhead(lambda: self.loaded, self.renderer, self.feed, clock=self.clock)
            tasks += [("scheduler-feed", self.feed.run()), ("render-ahead", ahead.run())]
        tasks += [
            ("registry-sweep", self._sweep()),
            ("control", control.run()),
            ("watchdog", self._watchdog()),
        ]
        if self.watch_files:
            # Watching the directories too: a newly added included file is an edit.
            watcher = ConfigWatcher(
                lambda: self.loaded.files,
                self.reload,
                dirs=lambda: parent_dirs(self.loaded.files),
            )
            tasks.append(("reload-watcher", watcher.run()))
        tasks.append(("lifecycle", self._lifecycle()))
        return tasks

    # -- lifecycle ---------------------------------------------------------------------------------

    async def _lifecycle(self) -> None:
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        if self.scheduling:
            await self.feed.catch_up()
        # After catch-up, which takes the journal's first record as the install: this start is
        # that record on a new install, and marks the daemon as up here on every later start.
        self.journal.record_event("start", json.dumps({"version": __version__}))
        self.ready.set()
        self.notifier.notify("READY=1", f"STATUS=running {self.config.commune.id}")
        log.info("broadcastd running for %s", self.config.commune.id)
        await self.stopping.wait()
        self.notifier.notify("STOPPING=1")
        log.info("stopping: draining dispatch (up to %.0fs)", STOP_GRACE_S)
        self.feed.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.dispatcher.idle.wait(), STOP_GRACE_S)
        topics = protocol.Topics(self.config.commune.id)
        with contextlib.suppress(BroadcastdError, TimeoutError):
            await asyncio.wait_for(
                self.link.close(
                    final=(
                        topics.controller_state(),
                        protocol.state_payload("offline", int(self.clock())),
                    )
                ),
                1.0,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.bulk.close(), 1.0)
        await self.journal.flush()
        self._drained = True
        raise _Stop

    def request_stop(self) -> None:
        if self.stopping.is_set():
            log.warning("second stop signal: exiting at once")
            raise SystemExit(
                1
            )  # the loop's signal callback propagates it and tears the TaskGroup down
        self.stopping.set()
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to bound
            loop = asyncio.get_running_loop()
            self._overdue = loop.call_later(STOP_DEADLINE_S, self._stop_overdue)

    def _stop_overdue(self) -> None:
        """The orderly stop is stuck (a task that ignores its cancellation): exit regardless."""
        log.error("stop not finished after %.1fs: exiting now", STOP_DEADLINE_S)
        self.unwind_s = OVERDUE_UNWIND_S
        # 0 once offline was published and the journal flushed: nothing was lost, only slow.
        raise SystemExit(0 if self._drained else 1)

    async def reload(self) -> bool:
        """Validate the config fully; swap it in atomically or keep the running one."""
        async with self._reload_lock:
            self.notifier.notify("RELOADING=1")
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("reload rejected: %s", problem)
                self.metrics.config_reloads_total.labels(result="error").inc()
                self.journal.record_reload("error", str(exc))
                self.notifier.notify("READY=1")
                return False
            old, self.loaded, config = self.loaded, new, new.config
            self.dispatcher.replace_config(new)
            self.registry.replace_config(config)
            self.ops.replace_config(config)
            self.feed.replace_config(config)
            replanned = self.feed.replan(old, new) if self.scheduling else []
            self._set_static_metrics(config)
            gone = set(old.config.node_hamlets()) - set(config.node_hamlets())
            await self.broker_side.refresh(config, gone)
            if gone and self.broker is not None:
                self.revocations.record(sorted(gone), cause="removed from the config")
            self.metrics.config_reloads_total.labels(result="ok").inc()
            summary = f"{len(config.hamlets)} hamlets, {len(config.announcements)} announcements"
            if replanned:
                slots = ", ".join(f"{d.slot} of {d.date}" for d in replanned)
                summary += f"; re-planned {slots}"
            self.journal.record_reload("ok", summary)
            log.info("config reloaded: %s", summary)
            self.notifier.notify("READY=1")
            return True

    # -- wiring ------------------------------------------------------------------------------------

    def _set_static_metrics(self, config: Config) -> None:
        for hamlet in config.hamlets:
            self.metrics.households.labels(hamlet=hamlet.id).set(hamlet.households)

    async def _sweep(self) -> None:
        while True:
            # A quarter heartbeat at most, so `stale` at 2 x and `offline` at 3 x heartbeat land
            # within a fraction of a heartbeat even with short (test, demo) heartbeats.
            heartbeat = self.config.nodes.heartbeat.total_seconds()
            await asyncio.sleep(min(SWEEP_INTERVAL_S, max(0.05, heartbeat / 4)))
            self.registry.sweep()

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval / 2)
