"""The composition root: one AsyncExitStack owns resources, one TaskGroup runs named tasks."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from broadcastd import protocol
from broadcastd.config import Config, load_config
from broadcastd.controller.configwatch import ConfigWatcher, parent_dirs
from broadcastd.controller.controlsocket import ControlServer
from broadcastd.controller.dispatch import Dispatcher, SlotDue
from broadcastd.controller.operations import Operations
from broadcastd.controller.registry import NodeRegistry
from broadcastd.controller.runner import FORCE_EXIT_S, reclaim_orphan_broker
from broadcastd.controller.sdnotify import SdNotifier
from broadcastd.controller.slotfeed import SlotFeed
from broadcastd.errors import BroadcastdError, ConfigError
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics
from broadcastd.plan.slotplan import build_plan
from broadcastd.render.renderer import build_renderer
from broadcastd.transport.broker import MosquittoProcess, write_broker_files
from broadcastd.transport.bulk import BulkPublisher
from broadcastd.transport.link import LinkSettings, MqttLink

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

log = logging.getLogger(__name__)

STOP_GRACE_S = 3.0  # an in-flight dispatch may finish within this; the whole stop stays under 5 s
STOP_DEADLINE_S = 4.0  # past this after SIGTERM, the process exits without waiting for stuck tasks
OVERDUE_UNWIND_S = 0.5  # ... giving the tasks only this long to unwind (the total stays under 5 s)
SWEEP_INTERVAL_S = 1.0
RENDER_AHEAD_INTERVAL_S = 300.0
# Clips no plan has asked for in this long leave the audio store (a live playlist's clips are
# looked up at every dispatch and re-publish, which keeps them fresh).
AUDIO_RETENTION_S = 30 * 86400.0
AUDIO_PRUNE_EVERY_S = 86400.0


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
        config: Config | None = None,
        scheduling: bool = True,
    ) -> None:
        self.config_path = config_path
        self.config: Config = config if config is not None else load_config(config_path)
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
        self.broker: MosquittoProcess | None = None  # set by run() when broker.mode is embedded
        self._reload_lock = asyncio.Lock()
        self._overdue: asyncio.TimerHandle | None = None  # bounds the orderly stop
        self._drained = False
        self.unwind_s = FORCE_EXIT_S  # how long run_until_stopped() lets tasks unwind on SystemExit

    async def run(self) -> None:
        config = self.config
        key = protocol.load_private_key(config.signing.private_key_file)
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        async with AsyncExitStack() as stack:
            journal = Journal.open(config.state_dir / "journal.sqlite3")
            stack.callback(journal.close)
            self.journal = journal
            url, username, password = await self._broker(stack)
            renderer = build_renderer(config, self.metrics, engines=self.engines)
            self.registry = NodeRegistry(
                config, self.metrics, now=self.clock, journal_cb=journal.record_transition
            )
            topics = protocol.Topics(config.commune.id)
            self.link = MqttLink(
                LinkSettings.from_url(
                    url,
                    client_id=f"broadcastd-{config.commune.id}",
                    username=username,
                    password=password,
                    tls_ca=config.broker.ca_file,
                    keepalive=int(config.nodes.keepalive.total_seconds()),
                    will=(
                        topics.controller_state(),
                        protocol.state_payload("offline", int(self.clock())),
                    ),
                    online=(
                        topics.controller_state(),
                        protocol.state_payload("online", int(self.clock())),
                    ),
                    subscriptions=((topics.nodes_filter(), 1),),
                ),
                self._on_message,
                on_connect=self._on_connect,
                metrics_gauge=self.metrics.mqtt_connected,
            )
            self.bulk = BulkPublisher(self.link)
            self.dispatcher = Dispatcher(
                config,
                link=self.link,
                audio=self.bulk,
                journal=journal,
                renderer=renderer,
                key=key,
                metrics=self.metrics,
                clock=self.clock,
            )
            self.ops = Operations(self, renderer)
            self.feed = SlotFeed(config, self.queue, journal, self.metrics, clock=self.clock)
            if self.serve_metrics:
                host, _, port = config.metrics.listen.rpartition(":")
                self.metrics.serve(host.strip("[]"), int(port))
            self._set_static_metrics(config)
            control = ControlServer(config.state_dir / "broadcastd.sock", self.ops.handle)
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(journal.run(), name="journal")
                    tg.create_task(self.link.run(), name="mqtt")
                    tg.create_task(self.bulk.run(), name="mqtt-bulk")
                    tg.create_task(self.dispatcher.run(self.queue), name="dispatch")
                    tg.create_task(self.dispatcher.run_republisher(), name="republish")
                    if self.scheduling:
                        tg.create_task(self.feed.run(), name="scheduler-feed")
                        tg.create_task(self._render_ahead(), name="render-ahead")
                    tg.create_task(self._sweep(), name="registry-sweep")
                    tg.create_task(control.run(), name="control")
                    tg.create_task(self._watchdog(), name="watchdog")
                    if self.watch_files:
                        # Watching the directories too: a newly added included file is an edit.
                        watcher = ConfigWatcher(
                            lambda: self.config.files,
                            self.reload,
                            dirs=lambda: parent_dirs(self.config.files),
                        )
                        tg.create_task(watcher.run(), name="reload-watcher")
                    tg.create_task(self._lifecycle(), name="lifecycle")
            except* _Stop:
                pass
            finally:
                if self._overdue is not None:
                    self._overdue.cancel()  # stopped in time; never fire in a loop that goes on

    # -- lifecycle ---------------------------------------------------------------------------------

    async def _lifecycle(self) -> None:
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        if self.scheduling:
            await self.feed.catch_up()
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
            self.config = new
            self.dispatcher.replace_config(new)
            self.registry.replace_config(new)
            self.ops.replace_config(new)
            self.feed.replace_config(new)
            self._set_static_metrics(new)
            await asyncio.to_thread(self._refresh_broker_acl, new)
            self.metrics.config_reloads_total.labels(result="ok").inc()
            self.journal.record_reload("ok", f"{len(new.announcements)} announcements")
            log.info(
                "config reloaded: %d hamlets, %d announcements",
                len(new.hamlets),
                len(new.announcements),
            )
            self.notifier.notify("READY=1")
            return True

    # -- wiring ------------------------------------------------------------------------------------

    async def _broker(self, stack: AsyncExitStack) -> tuple[str, str | None, str | None]:
        broker = self.config.broker
        if broker.mode == "external":
            password = (
                broker.password_file.read_text(encoding="utf-8").strip()
                if broker.password_file
                else None
            )
            return str(broker.url), broker.username, password
        directory = self.config.state_dir / "broker"
        passwd, acl, creds = write_broker_files(self.config, directory)
        proc = MosquittoProcess.from_config(
            self.config, directory, password_file=passwd, acl_file=acl
        )
        await asyncio.to_thread(reclaim_orphan_broker, proc.conf_path)
        await stack.enter_async_context(proc)
        self.broker = proc  # the supervised child: operators and fault tests reach its pid here
        user, password = creds.controller
        return proc.url, user, password

    def _refresh_broker_acl(self, config: Config) -> None:
        """A node added (or removed) by a reload can connect (or not) without a restart.

        mosquitto re-reads its password_file and acl_file on SIGHUP; existing sessions stay.
        """
        proc = self.broker
        if proc is None or proc.pid is None or config.broker.mode != "embedded":
            return
        write_broker_files(config, proc.directory)
        with contextlib.suppress(ProcessLookupError):  # died just now: the supervisor restarts it
            os.kill(proc.pid, signal.SIGHUP)

    async def _on_connect(self) -> None:
        await self.dispatcher.on_connect()

    async def _on_message(self, topic: str, payload: bytes, _props: Any) -> None:
        parsed = self.topics_parse(topic)
        if parsed is None:
            self.metrics.bad_messages_total.labels(reason="unknown_topic").inc()
            return
        kind, node = parsed
        if kind == "state":
            self.registry.on_state(node, payload)
        elif kind == "heartbeat":
            self.registry.on_heartbeat(node, payload)
        elif kind == "ack":
            await self.ops.on_ack(node, payload)
        else:
            self.metrics.bad_messages_total.labels(reason="unknown_topic").inc()

    def topics_parse(self, topic: str) -> tuple[str, str] | None:
        prefix = protocol.Topics(self.config.commune.id).node_state("").rsplit("/", 2)[0] + "/"
        if not topic.startswith(prefix):
            return None
        rest = topic[len(prefix) :].split("/")
        if len(rest) != 2:
            return None
        return rest[1], rest[0]

    def _set_static_metrics(self, config: Config) -> None:
        for hamlet in config.hamlets:
            self.metrics.households_total.labels(hamlet=hamlet.id).set(hamlet.households)

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

    async def _render_ahead(self) -> None:
        """Render the next `tts.render_ahead` of slots early so a slot never waits on TTS; once a
        day, prune clips unused for AUDIO_RETENTION_S."""
        pruned_at = 0.0
        while True:
            if time.monotonic() - pruned_at >= AUDIO_PRUNE_EVERY_S or not pruned_at:
                pruned_at = time.monotonic()
                store = self.ops.renderer.store
                removed = await asyncio.to_thread(store.prune, AUDIO_RETENTION_S)
                if removed:
                    log.info("audio store: pruned %d files unused for 30 days", removed)
            config = self.config
            now = dt.datetime.fromtimestamp(self.clock(), tz=config.commune.tz)
            horizon = now + config.tts.render_ahead
            days = (horizon.date() - now.date()).days + 1
            plans = [p for p in build_plan(config, now.date(), days) if now < p.play_at <= horizon]
            try:
                summary = await self.ops.renderer.render_plans(plans)
            except BroadcastdError as exc:
                log.error("render-ahead failed: %s", exc)
            else:
                if summary.failed:
                    log.error(
                        "render-ahead: %d clips failed: %s",
                        len(summary.failed),
                        "; ".join(summary.failed),
                    )
            self.feed.mark_audio_state(plans, self.ops.renderer)
            await asyncio.sleep(RENDER_AHEAD_INTERVAL_S)
