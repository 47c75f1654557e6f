"""Speakers without a good clock (issue 18): a node whose clock is ten minutes off, either way,
plays at the controller's `play_at`, by the controller's signed time beacons; the registry's
skew is the node's own estimate; a forged beacon moves nothing."""

from __future__ import annotations

import pytest
from support.e2e import wait_for, write_commune

from broadcastd import protocol
from broadcastd.node.clock import ControllerClock

OFF_BY_S = 600.0
PLAY_BOUND_S = 1.0  # issue 18: within 1 s of play_at (the player starts by a timer, not the link)
# The offset and skew estimates, with room for a loaded machine: a node playing by its own
# clock would be 600 s off.
MARGIN_S = 3.0


@pytest.mark.parametrize("off_by", [OFF_BY_S, -OFF_BY_S], ids=["ahead", "behind"])
async def test_a_speaker_ten_minutes_off_plays_at_the_controllers_play_at(
    tmp_path, off_by: float
) -> None:
    # catch_up shorter than the offset: by the board's own clock a node ahead sees the bulletin
    # expired. It connects once the bulletin is retained, so that arrives before any beacon.
    e2e = write_commune(tmp_path, hamlets=1, nodes_per_hamlet=1, play_in=15.0, catch_up="5m")
    day = e2e.play_at.date()

    def board_clock() -> float:
        return e2e.clock() + float(off_by)

    async with e2e.running(fleet=False) as run:
        journal = run.daemon.journal
        await wait_for(lambda: journal.dispatches_for(day, "noon"), 30, "the bulletin out")
        run.start(e2e.fleet(clock=board_clock))
        [sim] = run.fleet.agents.values()
        await wait_for(lambda: sim.player.plays, 40, "the bulletin to play")
        await wait_for(lambda: run.daemon.registry.snapshot()[0].skew is not None, 10, "a beat")
        assert sim.agent is not None
        offset = sim.agent.clock.offset
        skew = run.daemon.registry.snapshot()[0].skew
    started = sim.player.plays[0][2] - off_by  # the player's clock is the board's
    error = started - e2e.play_at.timestamp()
    print(f"node {off_by:+.0f} s off: played {error:+.2f} s from play_at, offset {offset}")
    assert abs(error) < PLAY_BOUND_S
    assert offset is not None
    assert abs(offset + off_by) < MARGIN_S
    assert skew is not None
    assert abs(skew - off_by) < MARGIN_S


def test_a_forged_or_foreign_beacon_moves_nothing():
    key, other = protocol.Ed25519PrivateKey.generate(), protocol.Ed25519PrivateKey.generate()
    t = [1_800_000_000.0]
    clock = ControllerClock(lambda: t[0], public_key=key.public_key(), commune="xa")
    clock.on_beacon(protocol.beacon_payload("xa", t[0] + 99, other))  # not the controller's key
    clock.on_beacon(protocol.beacon_payload("xb", t[0] + 99, key))  # another commune's
    assert clock.offset is None
    assert clock.rejected == 2
    assert clock() == t[0]
    clock.on_beacon(protocol.state_payload("online", t[0], beacon_s=30))
    assert clock.waiting()  # the controller said beacons come: a bulletin waits for one
    clock.on_beacon(protocol.beacon_payload("xa", t[0] - 120.4, key))
    t[0] += 0.5
    clock.on_beacon(protocol.beacon_payload("xa", t[0] - 120.0, key))  # the faster of the two
    assert not clock.waiting()
    assert clock.offset == pytest.approx(-120.0)
    assert clock.heartbeat_fields() == {"clock_offset_ms": -120000}


def test_an_envelope_expired_by_the_board_waits_for_the_time_only_when_it_is_coming():
    key = protocol.Ed25519PrivateKey.generate()
    t = [1_800_000_000.0]
    clock = ControllerClock(lambda: t[0], public_key=key.public_key(), commune="xa")
    assert not clock.unsure()  # no controller that announced beacons: the board's clock it is
    clock.on_state(protocol.state_payload("online", t[0], beacon_s=30))
    assert clock.unsure()
    clock.defer(b"retained playlist")
    assert clock.settled() == []  # still waiting for the first beacon
    assert clock.on_state(protocol.beacon_payload("xa", t[0] + 600, key)) is False  # not `online`
    assert not clock.unsure()
    assert clock.settled() == [b"retained playlist"]
    assert clock.settled() == []
