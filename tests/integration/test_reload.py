"""Hot reload on SIGHUP, on a real daemon process, with slots fired by the real APScheduler jobs.

The clock is not shifted here: the two slots' `lead`s are chosen so that `noon` is published
about 8 s and `late` about 18 s after the test starts. A broken config sent before `noon` is
rejected (the `check` lines are logged, the error counter on /metrics goes up) and `noon` goes
out with the old announcements; a good one sent before `late` adds an announcement that `late`
then carries, all in the same process.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from support.daemon_main import read_log, spawn, wait_log
from support.e2e import wait_for, write_commune
from support.scrape import sample_sum, scrape, with_metrics

from broadcastd.journal.store import Journal
from broadcastd.transport.broker import free_port

if TYPE_CHECKING:
    from support.e2e import E2E

BIN = Path(sys.executable).parent
NOON_IN_S = 8
LATE_IN_S = 18
NEW_ANNOUNCEMENT = """  - id: ann-new
    title: Tin mới
    text: {vi: 'Lịch họp thôn thay đổi.'}
    slots: [late]
"""


def _two_slots(e2e: E2E) -> str:
    """The commune's text with slots `noon` and `late` published NOON_IN_S / LATE_IN_S from now."""
    text = e2e.config_path.read_text(encoding="utf-8")
    ahead = e2e.play_at.timestamp() - time.time()
    slots = "".join(
        f"  {name}: {{at: '{e2e.play_at:%H:%M}', max_duration: 15m, "
        f"lead: {int(ahead - publish_in)}s, catch_up: 20m}}\n"
        for name, publish_in in (("noon", NOON_IN_S), ("late", LATE_IN_S))
    )
    text = re.sub(r"^  noon: .*\n", slots, text, count=1, flags=re.MULTILINE)
    text = text.replace("    slots: [noon]\n", "    slots: [noon, late]\n")
    return with_metrics(text, free_port())


def _announcements(e2e: E2E, slot: str) -> list[list[str]]:
    journal = Journal.open(e2e.config.state_dir / "journal.sqlite3", readonly=True)
    try:
        rows = journal.dispatches_for(e2e.play_at.date(), slot)
        return [[i["announcement"] for i in json.loads(r.envelope)["items"]] for r in rows]
    finally:
        journal.close()


def _reloads(port: str, result: str) -> float:
    return sample_sum(scrape(int(port)), "broadcastd_config_reloads_total", result=result)


async def test_sighup_rejects_a_broken_config_then_applies_a_good_one_without_restart(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, texts=("Xin chào.",))
    good = _two_slots(e2e)
    e2e.config_path.write_text(good, encoding="utf-8")
    port = re.findall(r"metrics: \{listen: '127.0.0.1:(\d+)'", good)[0]
    log = tmp_path / "daemon.log"
    proc = spawn(e2e.config_path, 0.0, log, "--metrics")
    try:
        await wait_log(log, "broadcastd running", proc)

        # 1. a broken edit: an unknown slot name. Rejected, the old config keeps running.
        broken = good.replace("announcements:\n", "announcements:\n" + NEW_ANNOUNCEMENT)
        broken = broken.replace("    slots: [late]\n", "    slots: [late, lunch]\n")
        e2e.config_path.write_text(broken, encoding="utf-8")
        cmd: list[str | Path] = [BIN / "broadcastd", "check", "-c", e2e.config_path]
        check = await asyncio.to_thread(
            subprocess.run,
            cmd,
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert check.returncode == 78
        problems = [ln for ln in check.stderr.splitlines() if re.match(r".+:\d+:\d+: ", ln)]
        assert problems, check.stderr
        proc.send_signal(signal.SIGHUP)
        await wait_log(log, "reload rejected", proc)
        for line in problems:  # the same FILE:LINE:COL lines as `check`
            assert f"reload rejected: {line}" in read_log(log)
        assert await asyncio.to_thread(_reloads, port, "error") == 1.0
        await wait_for(lambda: _announcements(e2e, "noon") != [], 20, "noon dispatched")
        assert _announcements(e2e, "noon") == [["ann-0"]]  # the old config, still running

        # 2. the fix: the new announcement is in the very next slot, same process.
        e2e.config_path.write_text(
            good.replace("announcements:\n", "announcements:\n" + NEW_ANNOUNCEMENT),
            encoding="utf-8",
        )
        proc.send_signal(signal.SIGHUP)
        await wait_log(log, "config reloaded", proc)
        assert await asyncio.to_thread(_reloads, port, "ok") == 1.0
        await wait_for(lambda: _announcements(e2e, "late") != [], 20, "late dispatched")
        assert [sorted(a) for a in _announcements(e2e, "late")] == [["ann-0", "ann-new"]]
        assert proc.poll() is None
        assert read_log(log).count("broadcastd running") == 1  # never restarted
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 10)
    assert code == 0, read_log(log)[-3000:]


async def test_a_new_file_matching_an_include_glob_is_loaded_without_a_signal(tmp_path):
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, texts=("Xin chào.",))
    included = tmp_path / "announcements"
    included.mkdir()
    item = "- {{id: {0}, title: '{0}', text: {{vi: 'Tin {0}.'}}, slots: [noon]}}\n"
    (included / "a.yaml").write_text(item.format("ann-a"), encoding="utf-8")
    text = e2e.config_path.read_text(encoding="utf-8")
    e2e.config_path.write_text(text + "include: [announcements/*.yaml]\n", encoding="utf-8")
    async with e2e.running(fleet=False, watch_files=True, scheduling=False) as run:
        daemon = run.daemon
        await asyncio.sleep(1.5)  # the watcher has taken its baseline
        # A file the running config never read: only the watched directory can reveal it.
        (included / "b.yaml").write_text(item.format("ann-b"), encoding="utf-8")

        def loaded() -> bool:
            return "ann-b" in {a.id for a in daemon.config.announcements}

        def counted() -> bool:  # after the broker's ACL is rewritten (files fsynced): a bit later
            return bool(daemon.metrics.config_reloads_total.labels(result="ok")._value.get() >= 1)

        await wait_for(loaded, 15, "the new include to be loaded")
        await wait_for(counted, 15, "the reload to be counted")
        assert daemon.metrics.config_reloads_total.labels(result="ok")._value.get() == 1
