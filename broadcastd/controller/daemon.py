"""The composition root: one AsyncExitStack owns resources, one TaskGroup runs named tasks.

What the tasks run on is built by `collaborators.assemble()`; here are the tasks themselves, the
start and the orderly stop, and the config reload.
"""

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
from broadcastd.controller.collaborators import assemble
from broadcastd.controller.configwatch import ConfigWatcher, parent_dirs
from broadcastd.controller.controlsocket import ControlServer
from broadcastd.controller.embedded import BrokerSide
from broadcastd.controller.renderahead import RenderAhead
from broadcastd.controller.runner import FORCE_EXIT_S
from broadcastd.controller.sdnotify import SdNotifier
from broadcastd.errors import BroadcastdError, ConfigError
from broadcastd.metrics import Metrics

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence
    from pathlib import Path

    from broadcastd.controller.controls import Controls
    from broadcastd.controller.dispatch import Dispatcher, SlotDue
    from broadcastd.controller.keyrotation import KeyRotations
    from broadcastd.controller.operations import Operations
    from broadcastd.controller.registry import NodeRegistry
    from broadcastd.controller.telemetry import TelemetryBook
    from broadcastd.journal.store import Journal
    from broadcastd.render.renderer import Renderer
    from broadcastd.transport.broker import MosquittoProcess
    from broadcastd.transport.bulk import BulkPublisher
    from broadcastd.transport.link import MqttLink

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
        async with AsyncExitStack() as stack:
            self.parts = await assemble(
                lambda: self.loaded,
                stack,
                broker_side=self.broker_side,
                metrics=self.metrics,
                queue=self.queue,
                ready=self.ready,
                clock=self.clock,
                engines=self.engines,
            )
            self._start_metrics()
            control = ControlServer(self.config.state_dir / "broadcastd.sock", self.parts.control)
            try:
                async with asyncio.TaskGroup() as tg:
                    for name, job in self._tasks(control):
                        tg.create_task(job, name=name)
            except* _Stop:
                pass
            finally:
                if self._overdue is not None:
                    self._overdue.cancel()  # stopped in time; never fire in a loop that goes on

    # -- the collaborators operators' tools and tests reach (built by run()) ---------------------

    @property
    def journal(self) -> Journal:
        return self.parts.journal

    @property
    def registry(self) -> NodeRegistry:
        return self.parts.registry

    @property
    def link(self) -> MqttLink:
        return self.parts.link

    @property
    def bulk(self) -> BulkPublisher:
        return self.parts.bulk

    @property
    def renderer(self) -> Renderer:
        return self.parts.renderer

    @property
    def dispatcher(self) -> Dispatcher:
        return self.parts.dispatcher

    @property
    def controls(self) -> Controls:
        return self.parts.controls

    @property
    def ops(self) -> Operations:
        return self.parts.ops

    @property
    def rotations(self) -> KeyRotations:
        return self.parts.rotations

    @property
    def telemetry(self) -> TelemetryBook:
        return self.parts.telemetry

    # -- tasks -------------------------------------------------------------------------------------

    def _start_metrics(self) -> None:
        if self.serve_metrics:
            host, _, port = self.config.metrics.listen.rpartition(":")
            self.metrics.serve(host.strip("[]"), int(port))
        self._set_static_metrics(self.config)

    def _set_static_metrics(self, config: Config) -> None:
        for hamlet in config.hamlets:
            self.metrics.households.labels(hamlet=hamlet.id).set(hamlet.households)

    def _tasks(self, control: ControlServer) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """The daemon's long-running tasks, by name (the names show in logs and tracebacks)."""
        parts = self.parts
        tasks: list[tuple[str, Coroutine[Any, Any, None]]] = [
            ("journal", parts.journal.run()),
            ("mqtt", parts.link.run()),
            ("mqtt-bulk", parts.bulk.run()),
            ("dispatch", parts.dispatcher.run(self.queue)),
            ("republish", parts.dispatcher.run_republisher()),
            ("receipts", parts.receipts.run()),
            ("key-rotation", parts.rotations.run()),
            ("time-beacon", parts.beacon.run()),
        ]
        if self.scheduling:
            ahead = RenderAhead(lambda: self.loaded, parts.renderer, parts.feed, clock=self.clock)
            tasks += [("scheduler-feed", parts.feed.run()), ("render-ahead", ahead.run())]
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
        parts = self.parts
        if self.scheduling:
            await parts.feed.catch_up()
        # After catch-up, which takes the journal's first record as the install: this start is
        # that record on a new install, and marks the daemon as up here on every later start.
        parts.journal.record_event("start", json.dumps({"version": __version__}))
        self.ready.set()
        self.notifier.notify("READY=1", f"STATUS=running {self.config.commune.id}")
        log.info("broadcastd running for %s", self.config.commune.id)
        await self.stopping.wait()
        self.notifier.notify("STOPPING=1")
        log.info("stopping: draining dispatch (up to %.0fs)", STOP_GRACE_S)
        parts.feed.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(parts.dispatcher.idle.wait(), STOP_GRACE_S)
        topics = protocol.Topics(self.config.commune.id)
        with contextlib.suppress(BroadcastdError, TimeoutError):
            await asyncio.wait_for(
                parts.link.close(
                    final=(
                        topics.controller_state(),
                        protocol.state_payload("offline", int(self.clock())),
                    )
                ),
                1.0,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(parts.bulk.close(), 1.0)
        await parts.journal.flush()
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
                self.parts.journal.record_reload("error", str(exc))
                self.notifier.notify("READY=1")
                return False
            old, self.loaded, config = self.loaded, new, new.config
            replanned = await self.parts.swap_config(old, new, replan=self.scheduling)
            self._set_static_metrics(config)
            self.metrics.config_reloads_total.labels(result="ok").inc()
            summary = f"{len(config.hamlets)} hamlets, {len(config.announcements)} announcements"
            if replanned:
                slots = ", ".join(f"{d.slot} of {d.date}" for d in replanned)
                summary += f"; re-planned {slots}"
            self.parts.journal.record_reload("ok", summary)
            log.info("config reloaded: %s", summary)
            self.notifier.notify("READY=1")
            return True

    # -- periodic ----------------------------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            # A quarter heartbeat at most, so `stale` at 2 x and `offline` at 3 x heartbeat land
            # within a fraction of a heartbeat even with short (test, demo) heartbeats.
            heartbeat = self.config.nodes.heartbeat.total_seconds()
            await asyncio.sleep(min(SWEEP_INTERVAL_S, max(0.05, heartbeat / 4)))
            self.parts.registry.sweep()

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval / 2)
