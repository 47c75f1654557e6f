"""The emergency safety chain end to end: daemon + embedded mosquitto + reference agents.

Two-person emergencies, cancel with the configured correction reaching nodes mid-play, the kill
switch, exercises (monthly slot and ad hoc), the audit trail of all of it, and a restarted node
refusing a validly signed envelope whose `seq` is lower than one it accepted before.
Everything goes through the control socket or the real `broadcastd` CLI, as staff would use it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import pytest
from support.e2e import wait_for, write_commune
from support.envelopes import signed

from broadcastd import cli, protocol
from broadcastd.config import EXERCISE_NOTICE, WEEKDAYS, load_config
from broadcastd.controller.controlsocket import ControlError, request
from broadcastd.journal import audit

if TYPE_CHECKING:
    from pathlib import Path

    from support.e2e import E2E, Running

    from broadcastd.controller.daemon import Daemon
    from broadcastd.sim.fleet import Fleet

CANCEL_TARGET_S = 5.0  # issue 8: a cancel reaches every online node in under 5 s
CORRECTION = "Thông báo khẩn cấp vừa rồi là nhầm lẫn, xin bà con yên tâm."
ORDINALS = ("first", "second", "third", "fourth")


async def ask(daemon: Daemon, **payload: Any) -> dict[str, Any]:
    return await request(daemon.config.state_dir / "broadcastd.sock", payload, timeout=60)


async def cli_run(e2e: E2E, *argv: str) -> int:
    # cli.run uses asyncio.run, so it runs in a thread, as a separate process would.
    return await asyncio.to_thread(cli.run, [*argv, "-c", str(e2e.config_path)])


def acks(daemon: Daemon, playlists: list[str], status: str, detail: str = "") -> set[str]:
    """Nodes that acked `status` (with `detail` in its text) for any of `playlists`."""
    return {
        a.node
        for pid in playlists
        for a in daemon.journal.acks_for(pid)
        if a.status == status and detail in a.detail
    }


def events(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [(k, d) for k, d in conn.execute("SELECT kind, detail FROM events ORDER BY id")]
    finally:
        conn.close()


async def all_online(e2e: E2E, run: Running) -> tuple[Daemon, Fleet]:
    await wait_for(
        lambda: all(run.daemon.registry.state(n) == "online" for n in e2e.node_ids),
        20,
        "every node online",
    )
    return run.daemon, run.fleet


def today(e2e: E2E) -> dt.date:
    """The date on the shifted clock (ad-hoc playlists are filed under the day they play)."""
    return dt.datetime.fromtimestamp(e2e.clock(), tz=e2e.config.commune.tz).date()


def slow_players(fleet: Fleet, speed: float) -> None:
    """Make plays last `speed` x the clip (an emergency still playing when the cancel comes)."""
    for sim in fleet.agents.values():
        sim.player.speed = speed


async def test_two_person_emergency_cancelled_mid_play_with_the_correction(tmp_path):  # noqa: PLR0915 - one scenario on one daemon, step by step
    e2e = write_commune(
        tmp_path,
        hamlets=3,
        nodes_per_hamlet=2,
        play_in=600,  # the daily bulletin stays out of the way
        lead="1m",
        extra=(
            "emergency:",
            "  approvals: 2",
            "  operators: [an, binh]",
            f"  correction: '{CORRECTION}'",
        ),
    )
    journal_path = e2e.config.state_dir / "journal.sqlite3"
    async with e2e.running() as run:
        daemon, fleet = await all_online(e2e, run)
        slow_players(fleet, 60.0)
        flood = {"cmd": "announce", "text": "Lũ quét, bà con di chuyển lên cao ngay!"}
        flood["priority"] = "emergency"

        with pytest.raises(ControlError, match="pass --operator NAME"):
            await ask(daemon, **flood)
        with pytest.raises(ControlError, match="unknown operator 'mallory'"):
            await ask(daemon, **flood, operator="mallory")
        pending = await ask(daemon, **flood, operator="an")
        rid = pending["request"]
        assert pending["playlists"] == []
        await asyncio.sleep(1.0)
        assert not [
            r for r in daemon.journal.dispatches_for(today(e2e)) if r.priority == "emergency"
        ]
        assert all(fleet.plays_of(rid)[n] == 0 for n in e2e.node_ids)
        with pytest.raises(ControlError, match="a second, different operator"):
            await ask(daemon, cmd="approve", id=rid, operator="an")
        with pytest.raises(ControlError, match="unknown operator"):
            await ask(daemon, cmd="approve", id=rid, operator="mallory")

        # a request withdrawn before approval can never be approved
        other = (await ask(daemon, **flood, operator="binh"))["request"]
        assert (await ask(daemon, cmd="status"))["pending_requests"] == [rid, other]
        assert await cli_run(e2e, "cancel", other, "--operator", "binh") == 0
        with pytest.raises(ControlError, match="no pending emergency request"):
            await ask(daemon, cmd="approve", id=other, operator="an")

        approved = await ask(daemon, cmd="approve", id=rid, operator="binh")
        assert approved["approved_by"] == "binh"
        playlists = approved["playlists"]
        assert len(playlists) == 3
        await wait_for(
            lambda: acks(daemon, playlists, "playing") == set(e2e.node_ids),
            30,
            "every node playing the emergency",
        )
        with pytest.raises(ControlError, match="no pending emergency request"):
            await ask(daemon, cmd="approve", id=rid, operator="binh")  # never published twice

        # The false alarm is cancelled by its announcement id, on every hamlet, mid-play.
        slow_players(fleet, 0.0)
        started = time.monotonic()
        assert await cli_run(e2e, "cancel", approved["id"], "--correction", "--operator", "an") == 0
        await wait_for(
            lambda: acks(daemon, playlists, "failed", "cancelled by") == set(e2e.node_ids),
            CANCEL_TARGET_S,
            "every playing node to stop on the cancel",
        )
        assert time.monotonic() - started < CANCEL_TARGET_S
        assert acks(daemon, playlists, "played") == set()

        def corrections() -> list[str]:
            rows = daemon.journal.dispatches_for(today(e2e))
            return [
                r.id for r in rows if r.slot.startswith("announce-") and CORRECTION[:60] in r.items
            ]

        await wait_for(lambda: len(corrections()) == 3, 30, "the correction dispatched")
        await wait_for(
            lambda: acks(daemon, corrections(), "played") == set(e2e.node_ids),
            30,
            "every node to play the correction",
        )
        for pid in playlists:
            assert daemon.journal.dispatch(pid).cancelled_at is not None  # type: ignore[union-attr]
        assert await cli_run(e2e, "cancel", approved["id"], "--say", "x", "--correction") == 2

    kinds = [k for k, _ in events(journal_path)]
    for kind in ("request", "refused", "withdraw", "approve", "issue", "cancel"):
        assert kind in kinds, kinds
    assert kinds.index("request") < kinds.index("approve") < kinds.index("issue")
    refused = [json.loads(d) for k, d in events(journal_path) if k == "refused"]
    assert {r["operator"] for r in refused} >= {"an", "mallory"}

    # The audit chain holds over all of it, and names the one row someone altered afterwards.
    assert audit.verify(journal_path) is None
    conn = sqlite3.connect(journal_path)
    (approve_id,) = conn.execute("SELECT id FROM events WHERE kind='approve'").fetchone()
    conn.execute("UPDATE events SET detail=replace(detail, 'binh', 'an') WHERE id=?", (approve_id,))
    conn.commit()
    conn.close()
    finding = audit.verify(journal_path)
    assert finding is not None
    assert str(finding).startswith(f"events[{approve_id}]")
    assert await cli_run(e2e, "audit", "verify") != 0


async def test_exercises_kill_switch_reload_and_replay_guard(tmp_path, capsys):  # noqa: PLR0915 - one scenario on one daemon, step by step
    # The daily bulletin plays in 66 s (after this test); the monthly exercise is configured one
    # minute earlier, so it falls today on the shifted clock and plays a few seconds from now.
    e2e = write_commune(tmp_path, hamlets=3, nodes_per_hamlet=2, play_in=66, lead="10s")
    ex_at = e2e.play_at - dt.timedelta(minutes=1)
    day = ex_at.date()
    ordinal = ORDINALS[(day.day - 1) // 7] if day.day <= 28 else "last"
    with e2e.config_path.open("a", encoding="utf-8") as f:
        f.write(
            f"exercise: {{day: {ordinal}-{WEEKDAYS[day.weekday()]}, at: '{ex_at:%H:%M}', "
            "text: Diễn tập phòng cháy, hamlets: all}\n"
        )
    e2e.config = load_config(e2e.config_path).config
    journal_path = e2e.config.state_dir / "journal.sqlite3"
    async with e2e.running() as run:
        daemon, fleet = await all_online(e2e, run)

        # 1. the monthly exercise, caught up at start-up: status exercise, the notice first
        await wait_for(
            lambda: len(daemon.journal.dispatches_for(day, "exercise")) == 3,
            30,
            "the exercise dispatched",
        )
        rows = daemon.journal.dispatches_for(day, "exercise")
        exercise_ids = [r.id for r in rows]
        for row in rows:
            env = json.loads(row.envelope)
            assert env["status"] == "exercise"
            assert env["priority"] != "emergency"
            assert next(i["announcement"] for i in env["items"]) == "exercise-notice"
        await wait_for(
            lambda: acks(daemon, exercise_ids, "played") == set(e2e.node_ids),
            30,
            "every node to play the exercise",
        )

        # 2. ad hoc: never an emergency (the CLI and the daemon both refuse), else like the slot
        assert await cli_run(e2e, "announce", "--text", "x", "--exercise", "--priority",
                             "emergency") == 2  # fmt: skip
        with pytest.raises(ControlError, match="never an emergency"):
            await ask(daemon, cmd="announce", text="x", exercise=True, priority="emergency")
        adhoc = await ask(daemon, cmd="announce", text="Thử loa", exercise=True, now=True)
        assert adhoc["status"] == "exercise"
        for pid in adhoc["playlists"]:
            adhoc_row = daemon.journal.dispatch(pid)
            assert adhoc_row is not None
            assert adhoc_row.status == "exercise"
            assert next(i["announcement"] for i in adhoc_row.item_list()) == "exercise-notice"
        notice_sha = json.loads(rows[0].envelope)["items"][0]["sha256"]
        await wait_for(
            lambda: acks(daemon, adhoc["playlists"], "played") == set(e2e.node_ids),
            30,
            "every node to play the ad-hoc exercise",
        )
        for sim in fleet.agents.values():
            heard = [sha for pid, sha, _ in sim.player.plays if pid in adhoc["playlists"]]
            assert heard[0] == notice_sha  # the same spoken "đây là tin thử nghiệm" clip
        assert EXERCISE_NOTICE.startswith("Đây là tin thử nghiệm")

        # 3. the kill switch silences every node mid-emergency
        slow_players(fleet, 60.0)
        fire = await ask(daemon, cmd="announce", text="Cháy rừng!", priority="emergency")
        await wait_for(
            lambda: acks(daemon, fire["playlists"], "playing") == set(e2e.node_ids),
            30,
            "every node playing the emergency",
        )
        started = time.monotonic()
        assert await cli_run(e2e, "stop", "--all") == 0
        await wait_for(
            lambda: acks(daemon, fire["playlists"], "failed", "stopped by") == set(e2e.node_ids),
            CANCEL_TARGET_S,
            "every node silenced by stop --all",
        )
        assert time.monotonic() - started < CANCEL_TARGET_S
        slow_players(fleet, 0.0)

        # 4. a reload is journaled too
        assert await daemon.reload()

        # 5. replay guard: a restarted node refuses a validly signed playlist with a lower seq
        fleet.stop()
        await wait_for(
            lambda: all(daemon.registry.state(n) == "offline" for n in e2e.node_ids),
            10,
            "the fleet offline",
        )
        fleet2 = e2e.fleet()
        run.start(fleet2)
        key = protocol.load_private_key(e2e.config.signing.private_key_file)
        old = json.loads(rows[0].envelope)
        old.pop("sig")
        old.update(id="replayed-low-seq", slot="replay", seq=1, issued_at=int(e2e.clock()))
        topic = protocol.Topics(e2e.config.commune.id).playlist(old["hamlet"])
        await daemon.link.publish(topic, signed(key, old), retain=True)
        targets = {n for n, s in fleet2.agents.items() if s.spec.hamlet == old["hamlet"]}
        await wait_for(
            lambda: acks(daemon, ["replayed-low-seq"], "rejected", "replay") == targets,
            20,
            "the restarted nodes to reject the lower seq",
        )
        await asyncio.sleep(0.5)
        assert all(v == 0 for v in fleet2.plays_of("replayed-low-seq").values())

    kinds = [k for k, _ in events(journal_path)]
    assert "issue" in kinds
    assert "stop" in kinds
    conn = sqlite3.connect(journal_path)
    assert conn.execute("SELECT result FROM reloads").fetchall() == [("ok",)]
    conn.close()
    assert audit.verify(journal_path) is None

    # The report keeps exercises apart from live broadcasts.
    capsys.readouterr()
    assert cli.run(["report", "--date", day.isoformat(), "--json", "-c", str(e2e.config_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    exercise_rows = [r for r in report["rows"] if r["status"] == "exercise"]
    assert {r["hamlet"] for r in exercise_rows} == {"h00", "h01", "h02"}
    assert all(r["played"] == 2 for r in exercise_rows if r["slot"] == "exercise")
    assert "exercise" in report["minutes"]
