"""NodeRegistry: every transition on a fake clock, flapping, skew, hostile payloads, reload."""

from __future__ import annotations

import json
import logging
import random

import pytest
from support.clock import FakeClock

from broadcastd.config import Config
from broadcastd.controller.nodeguard import ACK_BURST, STATUS_BURST, NodeLimits
from broadcastd.controller.registry import FLAP_LIMIT, NodeRegistry
from broadcastd.errors import ProtocolError
from broadcastd.metrics import Metrics
from broadcastd.models import Transition
from broadcastd.protocol.payloads import MAX_NODE_PAYLOAD_BYTES, parse_heartbeat

HB = 30.0


def make_config(*, per_node: bool = False, extra_node: bool = True) -> Config:
    nodes_a = [{"id": "a1", "households": 60}, {"id": "a2", "households": 40}]
    if extra_node:
        nodes_a.append({"id": "a3", "households": 0})
    return Config.model_validate(
        {
            "commune": {"id": "sm", "name": "Sảng Mộc"},
            "signing": {"private_key_file": "/nonexistent/key"},
            "state_dir": "/nonexistent/state",
            "metrics": {"per_node": per_node},
            "slots": {"noon": {"at": "11:30"}},
            "nodes": {"heartbeat": "30s"},
            "hamlets": [
                {"id": "ban-a", "name": "A", "households": 120, "nodes": nodes_a},
                {"id": "ban-b", "name": "B", "households": 50, "nodes": [{"id": "b1"}]},
            ],
        }
    )


def hb(ts: float, **extra: object) -> bytes:
    return json.dumps({"ts": ts, "uptime_s": 5, "rssi": -80, "volume": 70, **extra}).encode()


def st(state: str, ts: float) -> bytes:
    return json.dumps({"state": state, "ts": ts, "version": "0.1.0"}).encode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def journal() -> list[Transition]:
    return []


@pytest.fixture
def reg(clock: FakeClock, metrics: Metrics, journal: list[Transition]) -> NodeRegistry:
    return NodeRegistry(make_config(), metrics, now=clock, journal_cb=journal.append)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(f"broadcastd_{name}", labels)
    return 0.0 if got is None else got


def test_starts_unknown_and_goes_online_on_heartbeat(reg, clock, metrics, journal):
    assert {v.state for v in reg.snapshot()} == {"unknown"}
    assert value(metrics, "nodes", hamlet="ban-a", state="unknown") == 3
    reg.on_heartbeat("a1", hb(clock.t))
    assert reg.state("a1") == "online"
    assert journal == [Transition("a1", "ban-a", "unknown", "online", "heartbeat", clock.t)]
    assert value(metrics, "nodes", hamlet="ban-a", state="online") == 1
    assert value(metrics, "nodes", hamlet="ban-a", state="unknown") == 2
    assert value(metrics, "node_transitions_total", hamlet="ban-a", to="online") == 1


def test_stale_at_exactly_two_heartbeats_offline_at_three(reg, clock, journal):
    reg.on_state("a1", st("online", clock.t))
    start = clock.t
    clock.t = start + 2 * HB - 0.001
    reg.sweep()
    assert reg.state("a1") == "online"
    clock.t = start + 2 * HB
    reg.sweep()
    assert reg.state("a1") == "stale"
    clock.t = start + 3 * HB - 0.001
    reg.sweep()
    assert reg.state("a1") == "stale"
    clock.t = start + 3 * HB
    reg.sweep()
    assert reg.state("a1") == "offline"
    mine = [(t.from_, t.to) for t in journal if t.node == "a1"]
    assert mine == [("unknown", "online"), ("online", "stale"), ("stale", "offline")]
    assert [t.cause for t in journal if t.node == "a1"][-1] == "silent 90s"


def test_heartbeat_brings_a_stale_node_back(reg, clock):
    reg.on_heartbeat("a1", hb(clock.t))
    clock.t += 2 * HB
    reg.sweep()
    assert reg.state("a1") == "stale"
    reg.on_heartbeat("a1", hb(clock.t))
    assert reg.state("a1") == "online"
    clock.t += 2 * HB - 1  # the silence is measured from the latest message
    reg.sweep()
    assert reg.state("a1") == "online"


def test_last_will_offline_is_immediate(reg, clock, journal, metrics):
    reg.on_state("a1", st("online", clock.t))
    clock.t += 1
    reg.on_state("a1", st("offline", clock.t - 1))  # LWT carries the session's connect ts
    assert reg.state("a1") == "offline"
    assert journal[-1].cause.startswith("offline message")
    assert value(metrics, "nodes", hamlet="ban-a", state="offline") == 1


def test_late_last_will_of_an_old_session_is_ignored(reg, clock, metrics):
    reg.on_state("a1", st("online", clock.t + 100))  # the new session
    reg.on_state("a1", st("offline", clock.t))  # the old session's will, delivered late
    assert reg.state("a1") == "online"
    assert value(metrics, "bad_messages_total", reason="out_of_order") == 1


def test_never_heard_node_goes_offline_after_three_heartbeats(reg, clock, journal):
    clock.t += 3 * HB
    reg.sweep()
    assert reg.state("b1") == "offline"
    assert any(t.node == "b1" and t.cause == "never heard" for t in journal)


def test_sweep_late_by_a_lot_goes_straight_to_offline(reg, clock, journal):
    reg.on_heartbeat("a1", hb(clock.t))
    clock.t += 10 * HB
    reg.sweep()
    assert reg.state("a1") == "offline"
    assert [(t.from_, t.to) for t in journal if t.node == "a1"][-1] == ("online", "offline")


def test_flapping_is_counted_and_puts_the_node_on_probation(reg, clock, journal):
    ts = clock.t
    for _ in range(FLAP_LIMIT // 2):
        ts += 1
        reg.on_state("a1", st("online", ts))
        ts += 1
        reg.on_state("a1", st("offline", ts))
        clock.t += 10
    view = {v.node: v for v in reg.snapshot()}["a1"]
    assert view.flaps == FLAP_LIMIT - 1  # unknown->online is not a flap
    ts += 1
    reg.on_state("a1", st("online", ts))
    assert reg.state("a1") == "stale", "a flapping node is held back instead of counted online"
    assert "flapping" in journal[-1].cause
    clock.t += HB / 2
    reg.on_heartbeat("a1", hb(clock.t))
    assert reg.state("a1") == "stale", "not yet one heartbeat of stability"
    clock.t += HB / 2
    reg.on_heartbeat("a1", hb(clock.t))
    assert reg.state("a1") == "online"


def test_flap_window_expires(reg, clock):
    ts = clock.t
    for _ in range(FLAP_LIMIT):
        ts += 1
        reg.on_state("a1", st("online", ts))
        ts += 1
        reg.on_state("a1", st("offline", ts))
        clock.t += 1000  # each change in a new window
    reg.on_state("a1", st("online", ts + 1))
    assert reg.state("a1") == "online"


def test_clock_skew_is_observed_and_reported(reg, clock, metrics):
    reg.on_heartbeat("a1", hb(clock.t + 120))
    view = {v.node: v for v in reg.snapshot()}["a1"]
    assert view.skew == 120
    assert value(metrics, "node_clock_skew_seconds_count") == 1
    assert value(metrics, "node_clock_skew_seconds_bucket", le="60.0") == 0
    assert value(metrics, "node_clock_skew_seconds_bucket", le="300.0") == 1


def test_unknown_node_is_counted_and_logged_once(reg, metrics, caplog):
    with caplog.at_level(logging.WARNING, logger="broadcastd.controller.registry"):
        for _ in range(5):
            reg.on_heartbeat("intruder", hb(1))
    assert value(metrics, "bad_messages_total", reason="unknown_node") == 5
    assert len([r for r in caplog.records if "intruder" in r.getMessage()]) == 1


def test_hamlet_summary_counts_households_of_online_nodes(reg, clock):
    reg.on_heartbeat("a1", hb(clock.t))
    reg.on_heartbeat("b1", hb(clock.t))
    summary = {s.hamlet: s for s in reg.hamlet_summary()}
    assert (summary["ban-a"].up, summary["ban-a"].total) == (1, 3)
    assert (summary["ban-a"].households_live, summary["ban-a"].households) == (60, 120)
    assert (summary["ban-b"].up, summary["ban-b"].total) == (1, 1)


def test_ack_is_remembered_in_the_snapshot(reg, clock):
    reg.on_ack("a2", "20261124-noon-ban-a-abc", "played")
    view = {v.node: v for v in reg.snapshot()}["a2"]
    assert view.last_ack == "20261124-noon-ban-a-abc played"
    assert view.state == "online"


def test_per_node_series_only_when_configured(clock):
    quiet, loud = Metrics(), Metrics()
    r1 = NodeRegistry(make_config(), quiet, now=clock)
    r2 = NodeRegistry(make_config(per_node=True), loud, now=clock)
    for r in (r1, r2):
        r.on_heartbeat("a1", hb(clock.t))
    assert (
        quiet.registry.get_sample_value("broadcastd_node_up", {"node": "a1", "hamlet": "ban-a"})
        is None
    )
    assert value(loud, "node_up", node="a1", hamlet="ban-a") == 1
    assert value(loud, "node_up", node="a2", hamlet="ban-a") == 0


def test_reload_keeps_states_and_drops_removed_nodes(reg, clock, metrics):
    reg.on_heartbeat("a1", hb(clock.t))
    reg.on_heartbeat("a3", hb(clock.t))
    reg.replace_config(make_config(extra_node=False))
    states = {v.node: v.state for v in reg.snapshot()}
    assert states == {"a1": "online", "a2": "unknown", "b1": "unknown"}
    assert value(metrics, "nodes", hamlet="ban-a", state="online") == 1
    reg.on_heartbeat("a3", hb(clock.t))
    assert value(metrics, "bad_messages_total", reason="unknown_node") == 1


def _hostile_payloads() -> list[bytes]:
    """Payloads that are invalid both as a heartbeat and as a state message."""
    nan = float("nan")
    return [
        b"",
        b"null",
        b"[]",
        b'"x"',
        b"{}",
        b'{"ts": NaN}',
        b'{"ts": Infinity}',
        b'{"ts": -Infinity, "state": "online"}',
        b'{"ts": 1e400}',
        b'{"ts": ' + b"9" * 4000 + b"}",
        b"[" * 3000 + b"]" * 3000,
        json.dumps({"ts": "1700000000"}).encode(),
        json.dumps({"ts": True}).encode(),
        json.dumps({"ts": -5}).encode(),
        json.dumps({"ts": 10**30}).encode(),
        json.dumps({"ts": 1, "rssi": "strong"}).encode(),
        json.dumps({"ts": 1, "volume": 1000}).encode(),
        json.dumps({"ts": 1, "uptime_s": [1]}).encode(),
        json.dumps({"state": "maybe"}).encode(),
        json.dumps({"state": "online", "ts": "1", "version": "x" * 1000}).encode(),
        json.dumps({"state": "online"}).encode(),
        json.dumps({"state": "online", "ts": 1, "x": "y" * (1 << 20)}).encode(),
        json.dumps({"ts": nan}).encode(),
    ]


def test_thousand_hostile_payloads_never_crash_and_each_is_counted(reg, metrics, clock, caplog):
    rng = random.Random(1234)
    fixed = _hostile_payloads()
    with caplog.at_level(logging.WARNING, logger="broadcastd.controller.registry"):
        for i in range(1000):
            if rng.random() < 0.3:  # random bytes, sometimes not even UTF-8
                payload = rng.randbytes(rng.randint(0, 300))
            else:
                payload = rng.choice(fixed)
            node = rng.choice(["a1", "a2", "b1", f"ghost-{i % 7}"])
            handler = reg.on_state if i % 2 else reg.on_heartbeat
            handler(node, payload)
    total = sum(
        s.value
        for m in metrics.registry.collect()
        if m.name == "broadcastd_bad_messages"
        for s in m.samples
        if s.name.endswith("_total")
    )
    assert total == 1000
    assert {v.state for v in reg.snapshot()} == {"unknown"}, "no hostile message made a node live"
    reasons = {r.getMessage() for r in caplog.records}
    assert len(reasons) == len(caplog.records), "each node/reason pair is logged once"
    assert value(metrics, "bad_messages_total", reason="oversize") > 0
    assert value(metrics, "bad_messages_total", reason="not_finite") > 0


def test_payload_size_limit():
    ok = json.dumps({"ts": 1, "pad": "x" * (MAX_NODE_PAYLOAD_BYTES - 40)}).encode()
    assert parse_heartbeat(ok).ts == 1
    with pytest.raises(ProtocolError) as info:
        parse_heartbeat(ok + b" " * 100)
    assert info.value.reason == "oversize"


def test_from_nodes_builds_a_fleet_without_config(clock):
    reg = NodeRegistry.from_nodes(
        ((f"n{i}", f"h{i % 3}", 1) for i in range(30)), heartbeat_s=HB, now=clock
    )
    reg.on_heartbeat("n4", hb(clock.t))
    summary = {s.hamlet: s for s in reg.hamlet_summary()}
    assert (summary["h1"].up, summary["h1"].total, summary["h1"].households) == (1, 10, 10)


def test_node_limits_allow_a_burst_then_a_trickle_per_node_and_kind():
    now = [100.0]
    limits = NodeLimits(clock=lambda: now[0])
    acks = [limits.allow("a1", "ack", 30.0) for _ in range(int(ACK_BURST) + 5)]
    assert acks.count(True) == ACK_BURST
    assert acks[-1] is False
    assert limits.allow("a2", "ack", 30.0)  # another node has its own bucket
    assert limits.allow("a1", "status", 30.0)  # and another kind of message too
    now[0] += 5.0  # one ack per 5 s comes back
    assert [limits.allow("a1", "ack", 30.0) for _ in range(2)] == [True, False]
    now[0] -= 50.0  # a clock stepping back refills nothing
    assert not limits.allow("a1", "ack", 30.0)
    # state and heartbeat: 4 per heartbeat interval after the burst, whatever the interval
    status = [limits.allow("b1", "status", 1.0) for _ in range(int(STATUS_BURST) + 1)]
    assert status.count(True) == STATUS_BURST
    now[0] += 1.0
    assert [limits.allow("b1", "status", 1.0) for _ in range(5)] == [True] * 4 + [False]
