"""A scrape of a populated Metrics registry passes `promtool check metrics` and has every name."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest
from support.promtool import promtool_findings

from broadcastd.controller.registry import NodeRegistry
from broadcastd.metrics import Metrics

CONTRACT = (
    "mqtt_connected",
    "nodes",
    "node_up",
    "node_transitions_total",
    "node_clock_skew_seconds",
    "playlists_published_total",
    "playlist_acks_total",
    "households_reached",
    "households",
    "tts_renders_total",
    "render_cache_hits_total",
    "render_seconds",
    "config_reloads_total",
    "bad_messages_total",
    "next_slot_timestamp_seconds",
    "dispatch_lag_seconds",
    "slot_audio_not_ready",
    "tls_certificate_expiry_timestamp_seconds",
    "node_battery_percent",
    "node_mains_power",
    "node_temperature_celsius",
    "node_signal_dbm",
    "nodes_on_battery",
    "node_battery_min_percent",
)


def scrape() -> str:
    m = Metrics(per_node=True)
    clock = [1_800_000_000.0]
    reg = NodeRegistry.from_nodes(
        [("bc-01", "ban-chuong", 50), ("bc-02", "ban-chuong", 37), ("nl-01", "na-lay", 40)],
        heartbeat_s=30,
        now=lambda: clock[0],
        metrics=m,
        per_node=True,
    )
    reg.on_heartbeat("bc-01", b'{"ts": 1800000003, "uptime_s": 5, "rssi": -80, "volume": 70}')
    reg.on_heartbeat("ghost", b"{}")
    clock[0] += 200
    reg.sweep()
    m.mqtt_connected.set(1)
    m.playlists_published_total.labels(slot="noon", priority="normal").inc(2)
    m.playlist_acks_total.labels(hamlet="ban-chuong", status="played").inc()
    m.households_reached.labels(hamlet="ban-chuong", slot="noon").set(50)
    m.households.labels(hamlet="ban-chuong").set(87)
    m.tts_renders_total.labels(engine="espeak", result="ok").inc()
    m.render_cache_hits_total.inc()
    m.render_seconds.observe(0.3)
    m.config_reloads_total.labels(result="ok").inc()
    m.next_slot_timestamp_seconds.labels(slot="noon").set(1_800_003_600)
    m.dispatch_lag_seconds.observe(0.2)
    m.slot_audio_not_ready.labels(slot="noon").set(0)
    m.tls_certificate_expiry_timestamp_seconds.labels(certificate="server").set(1_830_000_000)
    for gauge, value in (
        (m.node_battery_percent, 62),
        (m.node_mains_power, 0),
        (m.node_temperature_celsius, 41.5),
        (m.node_signal_dbm, -97),
    ):
        gauge.labels(node="bc-01", hamlet="ban-chuong").set(value)
    m.nodes_on_battery.labels(hamlet="ban-chuong").set(1)
    m.node_battery_min_percent.labels(hamlet="ban-chuong").set(62)
    return generate_latest(m.registry).decode()


def test_scrape_passes_promtool_check_metrics():
    assert promtool_findings(scrape()) == (0, [])


def test_scrape_has_every_contract_name_with_values():
    text = scrape()
    for name in CONTRACT:
        assert f"# TYPE broadcastd_{name} " in text, name
    assert 'broadcastd_nodes{hamlet="ban-chuong",state="offline"} 2.0' in text
    assert 'broadcastd_nodes{hamlet="ban-chuong",state="online"} 0.0' in text
    assert 'broadcastd_node_up{hamlet="ban-chuong",node="bc-01"} 0.0' in text
    assert 'broadcastd_bad_messages_total{reason="unknown_node"} 1.0' in text
    assert "broadcastd_node_clock_skew_seconds_count 1.0" in text


def test_dashboard_and_alerts_use_only_metrics_that_exist():
    root = Path(__file__).resolve().parents[2] / "config"
    dashboard = json.loads((root / "grafana" / "broadcastd.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append((root / "prometheus" / "alerts.yml").read_text())
    text = scrape()
    exported = set(re.findall(r"^(broadcastd_\w+?)(?:\{| )", text, re.MULTILINE))
    used = {n for e in exprs for n in re.findall(r"\bbroadcastd_\w+", e)}
    assert used, "the dashboard queries broadcastd metrics"
    assert used <= exported, f"unknown metrics: {sorted(used - exported)}"
    for panel_metric in ("households_reached", "nodes", "tts_renders", "dispatch_lag_seconds"):
        assert any(f"broadcastd_{panel_metric}" in e for e in exprs[:-1]), panel_metric
