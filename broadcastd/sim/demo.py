"""`broadcastd demo`: the whole chain on one machine, in a temporary directory.

Embedded mosquitto on a free loopback port, the daemon with espeak-ng only, the config's speakers
simulated by reference agents; one slot is rendered and dispatched to play in a few seconds, and
the coverage table shows what each hamlet heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.config import Config, LoadedConfig, Signing, load_config
from broadcastd.controller.daemon import Daemon
from broadcastd.journal.reports import build_report
from broadcastd.journal.reporttable import render, wide_console
from broadcastd.plan.slotplan import build_plan
from broadcastd.sim.fleet import Fleet
from broadcastd.transport.broker import free_port

if TYPE_CHECKING:
    from rich.console import Console

    from broadcastd.controller.dispatch import Published

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
PLAY_DELAY_S = 3.0  # play_at this far after dispatch: the fleet prefetches, then all play together
PLAY_TIMEOUT_S = 30.0


def demo_config(loaded: LoadedConfig, root: Path) -> LoadedConfig:
    """The example commune, moved into `root`: its own broker port, key, state and espeak only."""
    base = loaded.config
    derived = base.model_copy(
        update={
            "broker": base.broker.model_copy(
                # a node_url or public listener in the base config names its real broker, and
                # the demo's fleet runs on this machine: loopback plain MQTT, no certificate
                update={
                    "mode": "embedded",
                    "listen": f"127.0.0.1:{free_port()}",
                    "node_url": None,
                    "public": None,
                }
            ),
            "signing": Signing(private_key_file=root / "ed25519.key"),
            "state_dir": root / "state",
            "metrics": base.metrics.model_copy(update={"listen": f"127.0.0.1:{free_port()}"}),
            "tts": base.tts.model_copy(update={"engines": ("espeak",)}),
        }
    )
    return loaded.with_config(derived)


async def run_demo(config_path: Path, console: Console, *, keep: bool = False) -> bool:
    """True when the slot was dispatched and every reachable node answered."""
    base = load_config(config_path)
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="broadcastd-demo-"))
        if not keep:
            stack.callback(_remove, root)
        loaded = demo_config(base, root)
        config = loaded.config
        protocol.generate_private_key(config.signing.private_key_file)
        console.print(f"[bold]broadcastd demo[/] in {root} ({config.commune.name})")
        daemon = Daemon(
            config_path,
            config=loaded,
            serve_metrics=False,
            watch_files=False,
            handle_signals=False,
            scheduling=False,
        )
        async with asyncio.TaskGroup() as tg:
            daemon_task = tg.create_task(daemon.run(), name="daemon")
            try:
                return await _drive(daemon, config=config, root=root, console=console, tg=tg)
            finally:
                daemon.request_stop()
                await daemon_task
    return False  # pragma: no cover - the TaskGroup either returns or raises


async def _drive(
    daemon: Daemon,
    *,
    config: Config,
    root: Path,
    console: Console,
    tg: asyncio.TaskGroup,
) -> bool:
    await asyncio.wait_for(daemon.ready.wait(), START_TIMEOUT_S)
    await daemon.link.wait_connected(START_TIMEOUT_S)
    fleet = Fleet.for_config(config, cache_root=root / "nodes", heartbeat_s=5.0)
    fleet_task = tg.create_task(fleet.run(), name="fleet")
    try:
        await _wait_online(daemon, len(fleet.agents))
        console.print(f"{len(fleet.agents)} simulated speakers online")
        published = await _run_slot(daemon, config, console)
        if not published:
            console.print("[red]nothing to play today in the first slot[/]")
            return False
        await _wait_answers(daemon, published, config)
        await daemon.journal.flush()
        day = published[0].play_at
        _print_report(daemon, config, dt.datetime.fromtimestamp(day, tz=config.commune.tz).date())
    finally:
        fleet.stop()
        await fleet_task
    return True


async def _wait_online(daemon: Daemon, count: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if sum(1 for v in daemon.registry.snapshot() if v.state == "online") >= count:
            return
        await asyncio.sleep(0.2)
    log.warning("not every simulated speaker came online within %.0fs", START_TIMEOUT_S)


async def _run_slot(daemon: Daemon, config: Config, console: Console) -> list[Published]:
    today = dt.datetime.now(tz=config.commune.tz).date()
    slot = min(config.slots, key=lambda s: config.slots[s].at)
    plans = [p for p in build_plan(daemon.loaded, today) if p.slot == slot]
    with console.status(f"rendering today's {slot} bulletin with espeak-ng ..."):
        summary = await daemon.ops.renderer.render_plans(plans)
    console.print(
        f"rendered {sum(summary.rendered.values())} clips, {summary.cached} cached, "
        f"{len(summary.failed)} failed, {summary.audio_seconds:.0f} s of audio"
    )
    play_at = dt.datetime.now(tz=config.commune.tz) + dt.timedelta(seconds=PLAY_DELAY_S)
    console.print(f"dispatching {today} {slot} to play at {play_at:%H:%M:%S}")
    return await daemon.dispatcher.dispatch_slot(today, slot, reason="demo", play_at=play_at)


async def _wait_answers(daemon: Daemon, published: list[Published], config: Config) -> None:
    """Until every node of every dispatched hamlet acked a final status, or the timeout."""
    final = {"played", "failed", "expired", "rejected"}
    expected = {p.playlist: {n.id for n in config.hamlet(p.hamlet).nodes} for p in published}
    deadline = time.monotonic() + PLAY_TIMEOUT_S
    while time.monotonic() < deadline:
        await daemon.journal.flush()
        done = all(
            {a.node for a in daemon.journal.acks_for(pid) if a.status in final} >= nodes
            for pid, nodes in expected.items()
        )
        if done:
            return
        await asyncio.sleep(0.3)
    log.warning("some speakers did not answer within %.0fs", PLAY_TIMEOUT_S)


def _print_report(daemon: Daemon, config: Config, day: dt.date) -> None:
    render(build_report(config, daemon.journal, day, day), wide_console())


def _remove(root: Path) -> None:
    import shutil  # noqa: PLC0415 - only at exit

    shutil.rmtree(root, ignore_errors=True)
