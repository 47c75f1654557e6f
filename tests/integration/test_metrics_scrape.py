"""The running daemon's /metrics passes Prometheus' own naming lint (`promtool check metrics`)."""

from __future__ import annotations

import asyncio

from support.daemon_main import spawn, wait_log
from support.e2e import write_commune
from support.promtool import promtool_findings
from support.scrape import scrape, with_metrics

from broadcastd.transport.broker import free_port


async def test_promtool_finds_nothing_in_a_scrape_of_the_running_daemon(tmp_path):
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=1, texts=("Xin chào.",))
    port = free_port()
    config = e2e.config_path.read_text(encoding="utf-8")
    e2e.config_path.write_text(with_metrics(config, port), encoding="utf-8")
    log = tmp_path / "daemon.log"
    proc = spawn(e2e.config_path, 0.0, log, "--metrics")
    try:
        await wait_log(log, "broadcastd running", proc)
        text = await asyncio.to_thread(scrape, port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert 'broadcastd_households{hamlet="' in text
    assert await asyncio.to_thread(promtool_findings, text) == (0, [])
