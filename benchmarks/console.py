"""The web console over a year of Xã Sảng Mộc: page latency and the console's memory.

A journal holding 365 days of the example commune (10 hamlets, 16 speakers, 2 slots a day, every
ack and reachability transition, written through the journal's own writers) is served by a real
`broadcastd console` process; a control socket answers the console's live reads from a real
NodeRegistry, as the daemon's does. One logged-in client then asks for the dashboard (/) and the
report page (the last seven days) in turn; the p95 of each and the console's peak RSS are printed.

Then near-live (see _nearlive.py): a 30-second browser recording sent from the console, timed from
the operator's "send" to every one of 16 reference agents playing it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# the repository, and the tests' support package (the same journal history the tests use)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import yaml
from _consoleproc import add_operator, console_process
from _nearlive import RECORD_S, near_live
from support import console as cs
from support import history

from broadcastd import protocol
from broadcastd.config import load_config
from broadcastd.controller.controlsocket import ControlServer, Peer
from broadcastd.controller.reads import READ_VERSION, READS, answer_read
from broadcastd.controller.registry import NodeRegistry
from broadcastd.transport.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
DAYS = 365
REQUESTS = 200  # per page
TARGET_MS = 150
NEAR_LIVE_TARGET_S = 5


def copy_included(config_dir: Path, pattern: str, root: Path) -> str:
    """Copy the files an include pattern names under `root` (includes must lie under the config
    file's directory), their recordings' paths made absolute; the same pattern, relative."""
    for found in sorted(config_dir.glob(pattern)):
        anns = yaml.safe_load(found.read_text(encoding="utf-8")) or []
        for ann in anns:
            ann["audio"] = {
                k: str((found.parent / v).resolve()) for k, v in ann.get("audio", {}).items()
            }
        target = root / found.relative_to(config_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(anns, allow_unicode=True), encoding="utf-8")
    return pattern


def write_config(root: Path) -> Path:
    """The example commune, moved into `root` (its recordings stay where they are)."""
    source = ROOT / "config" / "sang-moc.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["signing"] = {"private_key_file": str(root / "ed25519.key")}
    data["state_dir"] = str(root / "state")
    data["console"] = {"listen": f"127.0.0.1:{free_port()}"}
    data["include"] = [copy_included(source.parent, p, root) for p in data.get("include", [])]
    audio = data.get("audio", {})
    for key in ("intro", "outro"):
        if key in audio:
            audio[key] = str((source.parent / audio[key]).resolve())
    for ann in data.get("announcements", []):
        ann["audio"] = {
            k: str((source.parent / v).resolve()) for k, v in ann.get("audio", {}).items()
        }
    path = root / "commune.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    protocol.generate_private_key(root / "ed25519.key")
    (root / "state").mkdir(mode=0o700)
    return path


def rss_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(base: str, path: str, http: httpx.AsyncClient) -> list[float]:
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        answer = await http.get(path)
        times.append((time.perf_counter() - start) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{base}{path} answered {answer.status_code}")
    return times


async def bench(config_path: Path) -> None:
    loaded = load_config(config_path)
    config = loaded.config
    today = dt.datetime.now(config.commune.tz).date()
    started = time.perf_counter()
    journal = await history.fill(
        config,
        config.state_dir / "journal.sqlite3",
        first=today - dt.timedelta(days=DAYS),
        days=DAYS,
    )
    journal.close()
    filled = time.perf_counter() - started
    add_operator(config_path, "bench", "viewer")

    registry = NodeRegistry(config, None, now=time.time)
    for node in config.node_hamlets():
        registry.on_heartbeat(
            node, json.dumps({"ts": time.time(), "rssi": -80, "volume": 70}).encode()
        )

    async def handle(request: dict[str, Any], _peer: Peer) -> dict[str, Any]:
        if request["cmd"] == "status":
            return {
                "commune": config.commune.id,
                "connected": True,
                "ready": True,
                "pending_requests": [],
                "v": READ_VERSION,
                "reads": list(READS),
            }
        return answer_read(str(request["cmd"]), config, registry, time.time)

    control = ControlServer(config.state_dir / "broadcastd.sock", handle)
    serving = asyncio.create_task(control.run())
    await control.listening.wait()
    base = f"http://{config.console.listen}"
    try:
        async with (
            console_process(config_path, config.console.listen) as console,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
        ):
            if (await cs.login(http, "bench")).status_code != 303:
                raise SystemExit("login failed")
            await http.get("/")  # first request: templates compiled, plan cached by the OS
            dashboard = await measure(base, "/", http)
            report = await measure(base, "/report", http)
            rss, peak = rss_mb(console.pid, "VmRSS"), rss_mb(console.pid, "VmHWM")
    finally:
        serving.cancel()
    p95 = {
        name: statistics.quantiles(t, n=20)[18]
        for name, t in (("dashboard", dashboard), ("report", report))
    }
    print(f"console journal: {DAYS} days, filled in {filled:.0f} s")
    print(f"console p95 dashboard: {p95['dashboard']:.1f} ms target={TARGET_MS}")
    print(f"console p95 report: {p95['report']:.1f} ms target={TARGET_MS}")
    # the peak includes one login's argon2 verification, which takes 64 MiB while it runs
    print(f"console rss: {rss:.0f} MB (peak {peak:.0f} MB)")
    print(f"console p95: {max(p95.values()):.1f} ms target={TARGET_MS}")


async def bench_near_live(root: Path) -> None:
    measured = await near_live(root)
    print(
        f"near-live detail: {RECORD_S} s recording, {measured.agents} agents;"
        f" sent and accepted {measured.accepted:.2f} s, first playing {measured.first:.2f} s,"
        f" last playing {measured.last:.2f} s, every playing ack in {measured.acked:.2f} s"
    )
    print(f"near-live: {measured.acked:.2f} target={NEAR_LIVE_TARGET_S}")


def main() -> None:
    """Both parts; `console.py near-live` only the second."""
    if sys.argv[1:] != ["near-live"]:
        with tempfile.TemporaryDirectory(prefix="broadcastd-console-bench-") as tmp:
            asyncio.run(bench(write_config(Path(tmp))))
    with tempfile.TemporaryDirectory(prefix="broadcastd-near-live-bench-") as tmp:
        asyncio.run(bench_near_live(Path(tmp)))


if __name__ == "__main__":
    main()
