"""Daemon lifecycle: start-up catch-up and skips, SIGTERM on a real process, sd_notify.

Catch-up runs the daemon in-process on a shifted clock (started 5 min after `play_at`, or after
`expires_at`); SIGTERM runs the real `broadcastd run` CLI against a test-owned mosquitto (an
external broker, so the retained `offline` can be read after the daemon is gone); sd_notify uses a
datagram socket the test owns, as systemd would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from support.daemon_main import read_log, reaped, spawn, terminate_timed, wait_log
from support.e2e import E2E, wait_for, write_commune

from broadcastd import cli
from broadcastd.controller.daemon import STOP_DEADLINE_S
from broadcastd.journal.store import Journal
from broadcastd.transport.broker import free_port
from broadcastd.transport.credentials import MONITOR_USER

if TYPE_CHECKING:
    from collections.abc import Callable

    from broadcastd.transport.broker import MosquittoProcess
    from broadcastd.transport.credentials import Credentials

BIN = Path(sys.executable).parent


# -- acceptance 2: start-up catch-up --------------------------------------------------------------


async def started_yesterday(e2e: E2E) -> None:
    """The journal of a daemon that first ran the day before (and was then down)."""
    e2e.config.state_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal.open(
        e2e.config.state_dir / "journal.sqlite3", clock=lambda: e2e.clock() - 86400
    )
    try:
        journal.record_event("start", "{}")
        await journal.flush()
    finally:
        journal.close()


async def test_started_five_minutes_after_play_at_dispatches_at_once_and_agents_play(tmp_path):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=1, play_in=-300.0)
    day = e2e.play_at.date()
    started = e2e.clock()
    async with e2e.running() as run:
        daemon, fleet = run.daemon, run.fleet

        def published() -> bool:
            rows = daemon.journal.dispatches_for(day, "noon")
            return len(rows) == 2 and all(r.published_at is not None for r in rows)

        await wait_for(published, 15, "the missed slot to be dispatched at start-up")
        rows = daemon.journal.dispatches_for(day, "noon")
        assert max(r.published_at or 0 for r in rows) - started < 15  # at once, not next day
        assert {r.play_at for r in rows} == {int(e2e.play_at.timestamp())}  # the original time

        def played() -> bool:
            return all(fleet.plays_of(r.id)[f"{r.hamlet}-n0"] == 1 for r in rows)

        await wait_for(played, 30, "both agents to play the late slot")


async def test_started_after_expires_at_does_not_dispatch_and_the_report_says_why(tmp_path, capsys):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=1, play_in=-(20 * 60 + 60.0))
    await started_yesterday(e2e)  # a new install would not have missed this slot
    day = e2e.play_at.date()
    async with e2e.running(fleet=False) as run:
        await asyncio.sleep(1.0)  # a dispatch, had one been queued, would have started by now
        assert run.daemon.journal.dispatches_for(day, "noon") == []
    assert cli.run(["report", "-c", str(e2e.config_path), "--date", day.isoformat(), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expires = e2e.play_at + e2e.config.slots["noon"].catch_up
    assert report["skips"] == [
        {
            "date": day.isoformat(),
            "slot": "noon",
            "hamlet": "*",
            "reason": f"not dispatched: daemon was down until after {expires:%H:%M}",
        }
    ]


async def test_a_new_install_does_not_report_slots_from_before_it_existed(tmp_path, capsys):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=1, play_in=-(20 * 60 + 60.0))
    day = e2e.play_at.date()
    async with e2e.running(fleet=False):  # an empty state_dir: the commune's first `run`
        await asyncio.sleep(1.0)
    assert cli.run(["report", "-c", str(e2e.config_path), "--date", day.isoformat(), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["rows"], report["skips"]) == ([], [])
    journal = Journal.open(e2e.config.state_dir / "journal.sqlite3", readonly=True)
    try:  # the start is journaled: a slot missed from now on is reported
        assert journal.first_recorded() is not None
        assert [json.loads(d)["version"] for d in journal.event_details("start")] != []
    finally:
        journal.close()


# -- acceptance 4: SIGTERM on a real `broadcastd run` ---------------------------------------------


def _external(
    e2e: E2E, secured_broker: Callable[..., tuple[MosquittoProcess, Credentials]]
) -> MosquittoProcess:
    """Point the commune at a test-owned mosquitto using the generated passwd/ACL files."""
    broker, creds = secured_broker(e2e.config)
    user, password = creds.controller
    (e2e.root / "controller.pw").write_text(password + "\n", encoding="utf-8")
    (e2e.root / "monitor.pw").write_text(creds.monitor[1] + "\n", encoding="utf-8")
    text = e2e.config_path.read_text(encoding="utf-8")
    text = re.sub(
        r"^broker: .*$",
        f"broker: {{mode: external, url: '{broker.url}', username: {user}, "
        "password_file: controller.pw}",
        text,
        count=1,
        flags=re.MULTILINE,
    )
    text += f"metrics: {{listen: '127.0.0.1:{free_port()}'}}\n"
    e2e.config_path.write_text(text, encoding="utf-8")
    return broker


def _retained_state(broker: MosquittoProcess, e2e: E2E) -> dict[str, object]:
    """What a fresh `mosquitto_sub` reads from the retained controller/state topic."""
    user = MONITOR_USER  # as the controller, it would close the daemon's own connection
    password = (e2e.root / "monitor.pw").read_text(encoding="utf-8").strip()
    got = subprocess.run(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5",
         "-u", user, "-P", password, "-t", "bcast/v1/test-commune/controller/state",
         "-C", "1", "-W", "5", "--retained-only"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    # --retained-only exits silently on a live message: the state was not retained yet.
    assert got.stdout, "no retained controller state on the broker"
    state: dict[str, object] = json.loads(got.stdout)
    return state


def _run_cli(e2e: E2E, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as logf:
        return subprocess.Popen(
            [BIN / "broadcastd", "run", "-c", e2e.config_path],
            stdout=logf,
            stderr=subprocess.STDOUT,
        )


async def test_sigterm_publishes_retained_offline_and_exits_0_within_5s(tmp_path, secured_broker):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=1, play_in=8.0)
    broker = _external(e2e, secured_broker)
    log = tmp_path / "run.log"
    proc = _run_cli(e2e, log)
    with reaped(proc):
        await wait_log(log, "broadcastd running", proc)
        # "running" can precede the connection; "connected" is logged once `online` is retained.
        await wait_log(log, "mqtt: connected", proc)
        assert _retained_state(broker, e2e)["state"] == "online"
        await wait_log(log, "dispatching", proc)  # a slot is in flight (catch-up at start-up)
        code, took = await terminate_timed(proc)
    assert code == 0, read_log(log)[-3000:]
    assert took < 5.0, f"stop took {took:.1f}s"
    assert _retained_state(broker, e2e)["state"] == "offline"
    assert "Traceback" not in read_log(log)
    print(f"SIGTERM to exit: {took:.2f}s")


async def test_a_second_signal_exits_at_once(tmp_path, secured_broker):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, play_in=8.0)
    _external(e2e, secured_broker)
    log = tmp_path / "run.log"
    proc = _run_cli(e2e, log)
    with reaped(proc):
        await wait_log(log, "broadcastd running", proc)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await wait_log(log, "stopping:", proc)
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 10)
        took = time.monotonic() - t0
    assert "second stop signal: exiting at once" in read_log(log)
    assert code != 0  # not a clean stop: systemd's Restart=on-failure may bring it back
    assert took < 3.0, f"took {took:.1f}s"


# -- acceptance 7: sd_notify ----------------------------------------------------------------------


async def test_sd_notify_ready_watchdog_reloading_stopping(tmp_path, monkeypatch):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, play_in=60.0)
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sdn", dir="/tmp") as short:
        path = Path(short) / "notify"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        got: list[str] = []

        async def receive() -> None:
            loop = asyncio.get_running_loop()
            while True:
                got.append((await loop.sock_recv(sock, 4096)).decode())

        async with e2e.running(fleet=False) as run:
            receiver = run.tasks.create_task(receive())
            await wait_for(lambda: any("READY=1" in g for g in got), 5, "READY=1")
            await wait_for(lambda: sum("WATCHDOG=1" in g for g in got) >= 3, 5, "3 pings")
            assert await run.daemon.reload()
            await run.stop()
            await wait_for(lambda: any("STOPPING=1" in g for g in got), 5, "STOPPING=1")
            receiver.cancel()
        sock.close()
    fields = [g.split("\n")[0] for g in got]
    first_ready = fields.index("READY=1")
    reloading = fields.index("RELOADING=1")
    assert first_ready < reloading
    assert "READY=1" in fields[reloading + 1 :]  # back to ready once the reload is done
    assert fields.index("STOPPING=1") > reloading
    reload_msg = got[reloading]
    assert "MONOTONIC_USEC=" in reload_msg  # required by Type=notify-reload


async def test_a_stop_stuck_in_a_task_still_exits_0_within_5s(tmp_path, secured_broker):
    """The stop deadline: a task that never finishes its cancellation cannot hold the exit."""
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, play_in=60.0)
    broker = _external(e2e, secured_broker)
    log = tmp_path / "daemon.log"
    proc = spawn(e2e.config_path, 0.0, log, "--stubborn")
    with reaped(proc):
        await wait_log(log, "broadcastd running", proc)
        code, took = await terminate_timed(proc)
    assert f"stop not finished after {STOP_DEADLINE_S:.1f}s: exiting now" in read_log(log)
    assert code == 0, read_log(log)[-3000:]
    assert took < 5.0, f"took {took:.1f}s"
    assert _retained_state(broker, e2e)["state"] == "offline"
