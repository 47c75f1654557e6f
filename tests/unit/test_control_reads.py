"""Versioned read requests (`hamlets`, `nodes`, `status`'s `v`): parsed strictly, answered from
the live registry with each speaker's telemetry."""

from __future__ import annotations

import json

import pytest
from support.clock import FakeClock

from broadcastd.config import Config
from broadcastd.controller.reads import READ_VERSION, READS, answer_read, tts_counts
from broadcastd.controller.registry import NodeRegistry
from broadcastd.controller.requests import Read, RequestError, Status, parse_request
from broadcastd.metrics import Metrics


def make_config() -> Config:
    return Config.model_validate(
        {
            "commune": {"id": "sm", "name": "Sảng Mộc"},
            "signing": {"private_key_file": "/nonexistent/key"},
            "state_dir": "/nonexistent/state",
            "slots": {"noon": {"at": "11:30"}},
            "nodes": {"heartbeat": "30s"},
            "hamlets": [
                {
                    "id": "ban-chuong",
                    "name": "Bản Chương",
                    "households": 87,
                    "languages": ["vi", "dao"],
                    "nodes": [{"id": "bc-01", "households": 50}, {"id": "bc-02", "households": 37}],
                },
                {"id": "na-lay", "name": "Nà Láy", "households": 40, "nodes": [{"id": "nl-01"}]},
            ],
        }
    )


def test_reads_parse_with_a_version_and_refuse_a_malformed_one():
    assert parse_request({"cmd": "nodes"}) == Read("nodes", 1)
    assert parse_request({"cmd": "hamlets", "v": 3}) == Read("hamlets", 3)
    assert parse_request({"cmd": "status", "v": 2}) == Status(v=2)
    for bad in (0, -1, "1", True, 1.5, 10**9):
        with pytest.raises(RequestError, match="v must be a protocol version"):
            parse_request({"cmd": "nodes", "v": bad})
    assert set(READS) >= {"status", "hamlets", "nodes"}
    assert READ_VERSION == 1


def test_hamlets_and_nodes_answer_from_the_registry_with_telemetry():
    config = make_config()
    clock = FakeClock(1_800_000_000.0)
    registry = NodeRegistry(config, None, now=clock)
    registry.on_state(
        "bc-01", json.dumps({"state": "online", "ts": clock.t, "version": "0.3.1"}).encode()
    )
    registry.on_heartbeat(
        "bc-01",
        json.dumps({"ts": clock.t, "uptime_s": 120, "rssi": -85, "volume": 70}).encode(),
    )
    registry.on_state("nl-01", json.dumps({"state": "offline", "ts": clock.t}).encode())

    hamlets = answer_read("hamlets", config, registry, clock)
    assert hamlets["v"] == 1
    assert hamlets["hamlets"] == [
        {
            "id": "ban-chuong",
            "name": "Bản Chương",
            "households": 87,
            "languages": ["vi", "dao"],
            "nodes_total": 2,
            "nodes_online": 1,
            "nodes_stale": 0,
            "nodes_offline": 0,
            "nodes_unknown": 1,
            "households_live": 50,
        },
        {
            "id": "na-lay",
            "name": "Nà Láy",
            "households": 40,
            "languages": ["vi"],
            "nodes_total": 1,
            "nodes_online": 0,
            "nodes_stale": 0,
            "nodes_offline": 1,
            "nodes_unknown": 0,
            "households_live": 0,
        },
    ]
    readings = {
        "bc-01": {"hamlet": "ban-chuong", "ts": clock.t, "battery_pct": 62.0, "mains": False},
        "bc-02": {"hamlet": "ban-chuong", "battery_pct": "<b>", "temperature_c": 900},
    }
    nodes = answer_read("nodes", config, registry, clock, readings)
    by_id = {n["node"]: n for n in nodes["nodes"]}  # type: ignore[attr-defined]
    assert by_id["bc-01"] | {"since": None} == {
        "node": "bc-01",
        "hamlet": "ban-chuong",
        "households": 50,
        "state": "online",
        "since": None,
        "last_seen": clock.t,
        "skew": 0.0,
        "last_ack": None,
        "flaps": 0,
        "rssi": -85,
        "volume": 70,
        "uptime_s": 120,
        "version": "0.3.1",
        "telemetry": {"ts": clock.t, "battery_pct": 62.0, "mains": False},
    }
    assert by_id["bc-02"]["telemetry"] is None  # nothing well-formed in it
    assert by_id["nl-01"]["telemetry"] is None  # never reported any
    assert by_id["bc-02"]["state"] == "unknown"
    assert by_id["bc-02"]["rssi"] is None
    assert by_id["nl-01"]["state"] == "offline"


def test_status_reports_tts_attempts_per_engine_and_result():
    metrics = Metrics()
    for engine, result in (("gtts", "timeout"), ("gtts", "timeout"), ("espeak", "ok")):
        metrics.tts_renders_total.labels(engine=engine, result=result).inc()
    assert tts_counts(metrics) == {"gtts": {"timeout": 2}, "espeak": {"ok": 1}}
    assert tts_counts(Metrics()) == {}
