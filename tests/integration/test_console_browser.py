"""The console in a real browser (headless Chromium): log in, hear a clip, watch a speaker die
without reloading, switch to English; every page fits a 360 px phone. Screenshots of each page
at phone and desktop width go to $BROADCASTD_SCREENSHOTS (docs/screenshots/ for the README),
with a few speakers' telemetry and a signing-key rotation under way."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

from support import browser, history
from support import console as cs
from support.e2e import wait_for, write_commune

from broadcastd import protocol
from broadcastd.config import load_config
from broadcastd.console import Console, accounts
from broadcastd.controller.daemon import Daemon
from broadcastd.sim.demo import demo_config
from broadcastd.sim.fleet import Fleet

if TYPE_CHECKING:
    from playwright.async_api import Page

    from broadcastd.config import LoadedConfig

OFFLINE_WITHIN_MS = 10_000
# Three speakers' hardware readings, as their heartbeats' telemetry would bring them: one on a
# low battery (an alert on Tổng quan).
TELEMETRY = {
    "bc-01": {"mains": True, "temperature_c": 38.5, "signal_dbm": -81},
    "km-01": {"mains": False, "battery_pct": 64, "temperature_c": 41},
    "nl-02": {"mains": False, "battery_pct": 18, "temperature_c": 44, "signal_dbm": -104},
}
SANG_MOC = Path(__file__).resolve().parents[2] / "config" / "sang-moc.yaml"
PAGES = {
    "overview": "/",
    "schedule": "/schedule?days=2",
    "speakers": "/speakers",
    "speaker": "/speakers/bc-01",
    "report": "/report",
    "journal": "/journal",
    "announce": "/announce",
    "stop": "/stop?hamlet=all",
    "volume": "/volume?hamlet=ban-chuong",
}


async def log_in(page: Page, base: str, name: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#username", name)
    await page.fill("#password", cs.PASSWORD)
    await page.click("#login")
    await page.wait_for_url(f"{base}/")


async def test_log_in_hear_a_clip_see_a_speaker_die_live_and_switch_to_english(tmp_path):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, play_in=600.0)
    victim = e2e.node_ids[-1]
    ctx = cs.build(e2e.config_path, clock=e2e.clock)
    cs.add_operator(ctx, "van-hoa")
    others = [n for n in e2e.node_ids if n != victim]
    async with (
        e2e.running(fleet={"nodes": others}) as run,
        cs.served(ctx) as base,
        browser.launched() as chromium,
    ):
        lone = run.start(e2e.fleet(nodes=[victim]))
        journal = run.daemon.journal
        await wait_for(
            lambda: (
                run.daemon.registry.state(victim) == "online"
                and any(r.published_at for r in journal.dispatches_for(e2e.play_at.date(), "noon"))
            ),
            30,
            "the victim online and the noon slot sent",
        )
        page = await chromium.new_page(viewport=browser.PHONE)
        await log_in(page, base, "van-hoa")
        assert await page.locator("article.card").count() == 2

        await page.goto(f"{base}/schedule?date={e2e.play_at.date().isoformat()}&days=1")
        clip = page.locator("audio").first
        await clip.evaluate("a => { a.preload = 'auto'; a.load(); }")
        await page.wait_for_function(
            "() => document.querySelector('audio').duration > 0", timeout=10_000
        )
        assert await clip.evaluate("a => a.duration") > 0.5

        await page.goto(f"{base}/speakers")
        badge = page.locator(f'tr[data-node="{victim}"] [data-state]')
        assert await badge.get_attribute("data-state") == "online"
        assert await badge.inner_text() == "trực tuyến"
        await page.evaluate("window.stillTheSamePage = true")
        lone.cancel()  # the speaker loses power
        await page.wait_for_selector(
            f'tr[data-node="{victim}"] [data-state="offline"]', timeout=OFFLINE_WITHIN_MS
        )
        assert await badge.inner_text() == "mất kết nối"
        # the stream's times are the commune's clock, like the server's, not the browser's zone
        seen = await page.locator(
            f'tr[data-node="{others[0]}"] [data-field=last_seen]'
        ).inner_text()
        shown = dt.datetime.strptime(seen, "%H:%M %d/%m/%Y").replace(tzinfo=e2e.config.commune.tz)
        assert abs(shown.timestamp() - e2e.clock()) < 120, seen
        assert await page.evaluate("window.stillTheSamePage") is True, (
            "no reload: the stream did it"
        )

        await page.click("#lang-en")
        await page.wait_for_selector('html[lang="en"]')
        assert await page.locator("h1").inner_text() == "Speakers"
        assert await badge.inner_text() == "offline"
    ctx.close()


def sang_moc(tmp_path: Path) -> tuple[LoadedConfig, Path]:
    """The example commune moved into `tmp_path` (1 s heartbeats), and where screenshots go."""
    shots = Path(os.environ.get("BROADCASTD_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    loaded = demo_config(load_config(SANG_MOC), tmp_path)
    nodes = loaded.config.nodes.model_copy(update={"heartbeat": dt.timedelta(seconds=1)})
    loaded = loaded.with_config(loaded.config.model_copy(update={"nodes": nodes}))
    protocol.generate_private_key(loaded.config.signing.private_key_file)
    loaded.config.state_dir.mkdir(mode=0o700)
    return loaded, shots


async def test_every_page_fits_a_phone_and_is_photographed(tmp_path, monkeypatch):
    """Xã Sảng Mộc with two weeks of history, its daemon, and all but two speakers running."""
    monkeypatch.setattr(accounts, "_hasher", cs.QUICK_HASHER)
    loaded, shots = await asyncio.to_thread(sang_moc, tmp_path)
    config = loaded.config
    today = dt.datetime.now(config.commune.tz).date()
    journal = await history.fill(
        config, config.state_dir / "journal.sqlite3", first=today - dt.timedelta(days=14), days=14
    )
    journal.close()
    daemon = Daemon(
        SANG_MOC,
        config=loaded,
        serve_metrics=False,
        watch_files=False,
        handle_signals=False,
        scheduling=False,
        engines=["espeak"],
    )
    silent = {"lm-01", "tl-03"}
    fleet = Fleet.for_config(
        config,
        cache_root=tmp_path / "nodes",
        heartbeat_s=1.0,
        nodes=[n.id for h in config.hamlets for n in h.nodes if n.id not in silent],
    )
    ctx = Console.build(loaded)
    cs.add_operator(ctx, "chu-tich", "approver")
    async with asyncio.TaskGroup() as tasks:
        daemon_task = tasks.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 30)
        fleet_task = tasks.create_task(fleet.run())
        try:
            await wait_for(
                lambda: (
                    sum(daemon.registry.state(n) == "online" for n in fleet.agents)
                    == len(fleet.agents)
                    and all(daemon.registry.state(n) == "offline" for n in silent)
                ),
                30,
                "the fleet online and the silent speakers offline",
            )
            for node, reading in TELEMETRY.items():
                beat = protocol.heartbeat_payload(
                    daemon.clock(), 600.0, None, 80, {"telemetry": reading}
                )
                daemon.telemetry.on_heartbeat(node, beat)
            # Activation in 10 minutes: the two silent speakers have not confirmed it (an alert).
            rotated = await daemon.rotations.handle({"activate_in_s": 600}, None)

            def confirmed() -> int:
                return sum(a.status == "received" for a in daemon.journal.acks_for(rotated["id"]))

            await wait_for(lambda: confirmed() == len(fleet.agents), 30, "the fleet's key acks")
            async with cs.served(ctx) as base, browser.launched() as chromium:
                for size_name, size in (("phone", browser.PHONE), ("desktop", browser.DESKTOP)):
                    page = await chromium.new_page(viewport=size)
                    await log_in(page, base, "chu-tich")
                    for name, path in PAGES.items():
                        await page.goto(base + path)
                        overflow = await page.evaluate(
                            "document.documentElement.scrollWidth - window.innerWidth"
                        )
                        assert overflow <= 0, (
                            f"{name} is {overflow}px too wide at {size_name} width"
                        )
                        shot = shots / f"{name}-{size_name}.png"
                        await page.screenshot(path=str(shot))
                        assert shot.stat().st_size > 10_000, shot
                    await page.close()
        finally:
            fleet.stop()
            await asyncio.wait_for(fleet_task, 30)
            daemon.request_stop()
            await asyncio.wait_for(daemon_task, 30)
    ctx.close()
