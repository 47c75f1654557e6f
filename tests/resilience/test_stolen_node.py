"""Issue 23: a speaker's credentials pulled out of the board must not take the commune down.

Each test does what an attacker holding ONE node's valid login (what `node-config --out` wrote)
would do against a real mosquitto with the generated config, password file and ACL (with the
daemon running where the daemon is the target), and shows the commune unaffected: the controller
stays connected (no `offline` on `controller/state`), other nodes keep their sessions, the broker
keeps and writes nothing it should not, the figures do not move.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.e2e import E2E, wait_for, write_commune

from broadcastd import cli, protocol
from broadcastd.controller.nodeguard import ACK_BURST
from broadcastd.journal.reports import build_report
from broadcastd.transport.credentials import (
    BULK_USERS,
    CONTROLLER_USER,
    MONITOR_USER,
    Credentials,
    write_broker_files,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from broadcastd.controller.daemon import Daemon

THIEF = "h00-n0"  # the stolen board's login
VICTIM = "h01-n0"  # another hamlet's node, offline while the thief is about
WATCHER = "h01-n1"  # sees what every speaker sees of the controller


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **commune: object) -> AsyncIterator[tuple[E2E, Daemon]]:
    """Two hamlets of two nodes and their daemon (embedded broker, generated ACL), no schedule."""
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, play_in=600.0, **commune)  # type: ignore[arg-type]
    daemon = e2e.daemon(scheduling=False)
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.ready.wait(), 30)
        await daemon.link.wait_connected(10)
        yield e2e, daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 15)


def client(e2e: E2E, user: str, **kwargs: object) -> aiomqtt.Client:
    host, _, port = e2e.config.broker.listen.rpartition(":")
    password = Credentials.load_or_create(e2e.config).password(user)
    return aiomqtt.Client(
        host,
        int(port),
        username=user,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=5,
        **kwargs,  # type: ignore[arg-type]
    )


def session(e2e: E2E, user: str, identifier: str, *, clean: bool) -> aiomqtt.Client:
    """A client keeping (clean=False) or discarding (clean=True) the session of `identifier`."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    return client(e2e, user, identifier=identifier, clean_start=clean, properties=props)


@contextlib.asynccontextmanager
async def watching(e2e: E2E, user: str, topic: str) -> AsyncIterator[list[bytes]]:
    """Every payload on `topic` while the block runs, as seen by `user`."""
    seen: list[bytes] = []
    async with client(e2e, user, identifier=f"{user}-watch") as watcher:
        await watcher.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in watcher.messages:
                seen.append(bytes(message.payload))  # noqa: PERF401 - live, until cancelled

        task = asyncio.create_task(collect())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_stolen_login_cannot_take_over_the_controllers_or_another_nodes_client_id(
    tmp_path,
):
    async with running(tmp_path) as (e2e, daemon):
        topics = protocol.Topics(e2e.config.commune.id)
        # The victim's session (what its agent keeps), subscribed to its hamlet's controls.
        victim_id = f"broadcastd-node-{VICTIM}"
        async with session(e2e, VICTIM, victim_id, clean=False) as victim:
            await victim.subscribe(topics.control("h01"), qos=1)
        main, bulk = daemon.link.connects, [link.connects for link in daemon.bulk.links]
        taken = [
            f"broadcastd-{e2e.config.commune.id}",  # the controller's predictable id
            CONTROLLER_USER,
            BULK_USERS[0],
            victim_id,
            VICTIM,
        ]
        async with watching(e2e, WATCHER, topics.controller_state()) as states:
            for _ in range(3):
                for identifier in taken:
                    async with session(e2e, THIEF, identifier, clean=True) as thief:
                        await thief.subscribe(f"{topics.root}/#", qos=1)
                        await asyncio.sleep(0.05)
            # A stop for the victim's hamlet while it is away, then the thief tries again.
            await daemon.controls.stop(["h01"])
            for identifier in (victim_id, VICTIM):
                async with session(e2e, THIEF, identifier, clean=True):
                    pass
            await asyncio.sleep(0.5)  # a Last Will would reach the watcher well within this
        async with session(e2e, VICTIM, victim_id, clean=False) as victim:
            async with asyncio.timeout(5):
                message = await anext(aiter(victim.messages))
        assert b'"action":"stop"' in bytes(message.payload)
        assert daemon.link.connected.is_set()
        assert daemon.link.connects == main, "the controller's connection was taken over"
        assert [link.connects for link in daemon.bulk.links] == bulk
        assert states, "the watcher saw the retained controller state"
        assert all(b'"online"' in s for s in states), states


# -- item 2: what one login can make the broker keep, carry and write --------------------------


@pytest.fixture
def broker_alone(tmp_path, make_broker):
    """The generated password file, ACL and mosquitto.conf (persistence on), and no daemon."""
    e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2, play_in=600.0)
    passwd, acl, _ = write_broker_files(e2e.config, tmp_path / "broker-files")
    broker = make_broker(password_file=passwd, acl_file=acl, persistence=True)
    text = e2e.config_path.read_text(encoding="utf-8")
    e2e.config_path.write_text(
        text.replace(e2e.config.broker.listen, f"{broker.host}:{broker.port}"), encoding="utf-8"
    )
    return E2E(e2e.root, e2e.config_path, e2e.offset, e2e.play_at), broker


async def test_a_stolen_login_may_write_only_its_state_heartbeat_and_ack(broker_alone):
    e2e, _ = broker_alone
    topics = protocol.Topics(e2e.config.commune.id)
    mine = f"{topics.root}/node/{THIEF}"
    junk = [f"{mine}/junk/{n}" for n in range(40)] + [mine, f"{mine}/state/x", f"{mine}/acks"]
    async with watching(e2e, MONITOR_USER, f"{topics.root}/#") as seen:
        async with client(e2e, THIEF) as thief:
            for topic in junk:
                await thief.publish(topic, b"\0" * 32 * 1024, qos=1, retain=True)
            await thief.publish(topics.node_heartbeat(THIEF), b"barrier", qos=1)
        await wait_for(lambda: b"barrier" in seen, 5, "the barrier")
        assert seen == [b"barrier"]
    async with watching(e2e, MONITOR_USER, f"{topics.root}/#") as retained:
        await asyncio.sleep(0.5)  # a new subscriber is sent every retained message at once
    assert retained == [], "junk stayed retained on the broker"


async def test_a_stolen_boards_audio_lane_login_may_read_audio_and_write_nothing(broker_alone):
    e2e, _ = broker_alone
    topics = protocol.Topics(e2e.config.commune.id)
    bulk = f"{THIEF}_bulk"  # the agent's second login (node.lanes), with the node's password
    host, _, port = e2e.config.broker.listen.rpartition(":")
    password = Credentials.load_or_create(e2e.config).password(THIEF)
    targets = [
        topics.node_state(THIEF),
        topics.node_heartbeat(THIEF),
        f"{topics.root}/node/{THIEF}/ack",
        f"{topics.root}/node/{bulk}/state",  # as if it were a node of its own
        topics.controller_state(),
        topics.playlist("h00"),
        topics.audio("0" * 64, 0),
    ]
    audio = topics.audio("1" * 64, 0)
    async with watching(e2e, MONITOR_USER, f"{topics.root}/#") as seen:
        async with client(e2e, CONTROLLER_USER) as controller:
            await controller.publish(audio, b"chunk", qos=1, retain=True)
        await wait_for(lambda: b"chunk" in seen, 5, "the controller's audio")
        lane = aiomqtt.Client(
            host, int(port), username=bulk, password=password, identifier=bulk,
            protocol=aiomqtt.ProtocolVersion.V5, timeout=5,
        )  # fmt: skip
        async with lane:
            await lane.subscribe(audio, qos=1)
            async with asyncio.timeout(5):
                message = await anext(aiter(lane.messages))
            assert bytes(message.payload) == b"chunk"
            for topic in targets:
                await lane.publish(topic, b"forged", qos=1, retain=True)
        async with client(e2e, THIEF) as thief:
            await thief.publish(topics.node_heartbeat(THIEF), b"barrier", qos=1)
        await wait_for(lambda: b"barrier" in seen, 5, "the barrier")
        assert b"forged" not in seen


async def test_a_megabyte_packet_is_refused_whatever_the_client_claims(broker_alone, tmp_path):
    e2e, broker = broker_alone
    topics = protocol.Topics(e2e.config.commune.id)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\1" * 1024 * 1024)
    password = Credentials.load_or_create(e2e.config).password(THIEF)
    async with watching(e2e, MONITOR_USER, f"{topics.root}/#") as seen:
        # 3.1.1 never learns the limit, so the broker itself must refuse (and disconnect).
        for version in ("mqttv311", "mqttv5"):
            await asyncio.to_thread(
                subprocess.run,
                ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", version,
                 "-u", THIEF, "-P", password, "-q", "1", "-t", topics.node_heartbeat(THIEF),
                 "-f", str(big)],
                capture_output=True, timeout=30, check=False,
            )  # fmt: skip
        async with client(e2e, THIEF) as thief:
            await thief.publish(topics.node_heartbeat(THIEF), b"barrier", qos=1)
        await wait_for(lambda: b"barrier" in seen, 5, "the barrier")
    assert [len(p) for p in seen] == [len(b"barrier")]


def _written(pid: int) -> int:
    """Bytes a process has passed to write(2) so far (files and sockets)."""
    for line in Path(f"/proc/{pid}/io").read_text(encoding="ascii").splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/<pid>/io")


async def test_one_logins_traffic_does_not_make_the_broker_rewrite_its_database(broker_alone):
    """Saving on every change rewrote the whole database (retained audio included) after each
    PUBACK, subscribe and retained publish: a node's chatter cost a full rewrite each time."""
    e2e, broker = broker_alone
    topics = protocol.Topics(e2e.config.commune.id)
    audio = [(topics.audio("ab" * 32, i), bytes([i]) * protocol.CHUNK_SIZE) for i in range(16)]
    async with client(e2e, CONTROLLER_USER) as controller:  # no daemon: the login is free
        for topic, chunk in audio:
            await controller.publish(topic, chunk, qos=1, retain=True)
    broker.save()
    db = broker.directory / "mosquitto.db"
    full = len(audio) * protocol.CHUNK_SIZE
    await wait_for(lambda: db.exists() and db.stat().st_size >= full, 10, "the saved database")
    size = db.stat().st_size
    before = _written(broker.pid)
    async with watching(e2e, MONITOR_USER, f"{topics.root}/node/+/+") as seen:
        async with client(e2e, THIEF) as thief:
            for n in range(300):
                await thief.publish(topics.node_heartbeat(THIEF), b"%d" % n, qos=1)
                if n % 3 == 0:
                    await thief.publish(topics.node_state(THIEF), b"%d" % n, qos=1, retain=True)
                if n % 10 == 0:
                    # A subscription change is a change too (nothing retained to send back).
                    await thief.subscribe(topics.control("h00"), qos=1)
                    await thief.unsubscribe(topics.control("h00"))
            await thief.publish(topics.node_ack(THIEF), b"barrier", qos=1)
        await wait_for(lambda: b"barrier" in seen, 10, "the barrier")
    written = _written(broker.pid) - before
    print(f"database {size} bytes; the broker wrote {written} bytes during the chatter")
    # At most one timed save may fall inside the window, plus the messages themselves.
    assert written < 2 * size + 2 * 1024 * 1024, f"{written} bytes written for a {size}-byte db"


# -- items 3 and 4: acks that would move another hamlet's figures, floods, hostile ids -----------


def _figures(e2e: E2E, daemon: Daemon, day: dt.date) -> dict[str, Any]:
    """What the commune reports: coverage rows, the households gauge, the journaled acks."""
    report = build_report(e2e.config, daemon.journal, day, day)
    gauge = {
        h: daemon.metrics.registry.get_sample_value(
            "broadcastd_households_reached", {"hamlet": h, "slot": "noon"}
        )
        for h in ("h00", "h01")
    }
    acks = {
        r.id: sorted((a.node, a.status) for a in daemon.journal.acks_for(r.id))
        for r in daemon.journal.dispatches_for(day, "noon")
    }
    return {"rows": [r.as_json() for r in report.rows], "gauge": gauge, "acks": acks}


async def _counted(e2e: E2E, daemon: Daemon, day: dt.date, gauge: dict[str, float]) -> None:
    """Wait for the households gauge: a play is seen when it starts, and its `played` ack
    reaches the daemon a moment later."""
    await wait_for(
        lambda: _figures(e2e, daemon, day)["gauge"] == gauge, 10, "the daemon to count the plays"
    )
    await daemon.journal.flush()


def _refused(daemon: Daemon, reason: str) -> float:
    value = daemon.metrics.registry.get_sample_value(
        "broadcastd_bad_messages_total", {"reason": reason}
    )
    return value or 0.0


async def test_forged_flooded_and_hostile_acks_from_a_stolen_login_change_no_figure(
    tmp_path, capsys
):
    async with running(tmp_path) as (e2e, daemon):
        day = e2e.play_at.date()
        honest = [n for n in e2e.node_ids if n != THIEF]
        fleet = e2e.fleet(nodes=honest)
        fleet_task = asyncio.create_task(fleet.run())
        try:
            play_at = dt.datetime.fromtimestamp(e2e.clock() + 3, tz=e2e.config.commune.tz)
            published = await daemon.dispatcher.dispatch_slot(day, "noon", play_at=play_at)
            pids = {p.hamlet: p.playlist for p in published}

            def played() -> int:
                return sum(sum(fleet.plays_of(pid).values()) for pid in pids.values())

            await wait_for(lambda: played() == len(honest), 30, "every honest node to play")
            await _counted(e2e, daemon, day, {"h00": 10.0, "h01": 20.0})
            before = _figures(e2e, daemon, day)
            assert before["gauge"] == {"h00": 10.0, "h01": 20.0}
            thief_acks = [a for a in daemon.journal.last_acks().values() if a.node == THIEF]
            assert thief_acks == []

            def ack(playlist: str, status: str) -> bytes:
                return protocol.ack_payload(playlist, status, e2e.clock())

            forged = [
                ack(pids["h01"], "played"),  # another hamlet's playlist: 60 of 50 households
                ack(pids["h01"], "ready"),
                ack(pids["h01"], "failed"),
                ack(f"{day:%Y%m%d}-noon-h01-0123456789", "played"),  # an id never dispatched
            ]
            hostile = [
                ack("x [/bold]", "played"),
                ack("\x1b[2J\x1b[H[green]all speakers OK[/green]", "played"),
                ack("b1\n", "played"),
            ]
            async with client(e2e, THIEF) as thief:
                for body in forged + hostile:
                    await thief.publish(
                        protocol.Topics(e2e.config.commune.id).node_ack(THIEF), body, qos=1
                    )
            await wait_for(
                lambda: (
                    _refused(daemon, "foreign_playlist") == 3
                    and _refused(daemon, "unknown_playlist") == 1
                    and _refused(daemon, "bad_playlist") == len(hostile)
                ),
                10,
                "every forged and hostile ack refused",
            )
            await daemon.journal.flush()
            assert _figures(e2e, daemon, day) == before
            assert THIEF not in daemon.journal.last_acks()
            view = {v.node: v for v in daemon.registry.snapshot()}[THIEF]
            assert view.last_ack is None
            capsys.readouterr()
            assert cli.run(["nodes", "-c", str(e2e.config_path)]) == 0
            assert cli.run(["report", "--date", day.isoformat(), "-c", str(e2e.config_path)]) == 0
            shown = capsys.readouterr()
            assert "\x1b" not in shown.out
            assert "Traceback" not in shown.err

            # A flood of acks the thief is entitled to send: journaled only up to its limit.
            flood = 2000
            topic = protocol.Topics(e2e.config.commune.id).node_ack(THIEF)
            async with client(e2e, THIEF) as thief:
                # One ack built once: the same ack, however long the flood takes to send.
                for body in [ack(pids["h00"], "received")] * flood:
                    await thief.publish(topic, body, qos=1)
            await wait_for(
                lambda: _refused(daemon, "rate_limited") >= flood - ACK_BURST - 10,
                20,
                "the flood refused",
            )
            await daemon.journal.flush()
            kept = [a for a in daemon.journal.acks_for(pids["h00"]) if a.node == THIEF]
            print(f"ack flood: {len(kept)} of {flood} journaled, the rest refused")
            assert flood - _refused(daemon, "rate_limited") <= ACK_BURST + 10
            assert len(kept) == 1  # the same ack, however often it comes, is one row
            # It may speak for itself (its own hamlet's row now shows it answered), no further.
            after = _figures(e2e, daemon, day)
            assert after["gauge"] == before["gauge"]
            assert [r for r in after["rows"] if r["hamlet"] == "h01"] == [
                r for r in before["rows"] if r["hamlet"] == "h01"
            ]
        finally:
            fleet.stop()
            await fleet_task
