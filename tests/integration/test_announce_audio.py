"""Issue 19, acceptance 4: recordings made on phones reach the hamlets that speak their language.

An M4A (AAC, as a Zalo voice message) in Dao and an AMR in H'Mông go through the real
`broadcastd announce --audio` and control socket to a daemon with its embedded mosquitto; the
reference agents of the Dao and the H'Mông hamlet play them after the Vietnamese text, the other
hamlets play the text only. Debian's ffmpeg cannot encode AMR, so the AMR file is written by
tests/support/recordings.py (see there). After a restart, the daemon publishes the accepted
announcement again from its journal and store: speakers that were never on line play it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import subprocess
from typing import TYPE_CHECKING, Any

from support.e2e import E2E, wait_for, write_commune
from support.recordings import amr_nb, zalo_m4a

from broadcastd import cli
from broadcastd.sim.fleet import Fleet

if TYPE_CHECKING:
    from pathlib import Path

    from support.e2e import Running

TEXT = "Bà con chú ý: ngày mai tiêm phòng cho trâu bò tại nhà văn hóa thôn."
LANGUAGES = {"h00": "[vi, dao]", "h01": "[vi, hmn]"}  # h02 and h03 speak Vietnamese only


def commune(tmp_path: Path) -> E2E:
    e2e = write_commune(tmp_path, hamlets=4, nodes_per_hamlet=2, play_in=600)
    lines = []
    for line in e2e.config_path.read_text(encoding="utf-8").splitlines():
        lines.append(line)
        hamlet = line.removeprefix("  - id: ")
        if hamlet in LANGUAGES:
            lines.append(f"    languages: {LANGUAGES[hamlet]}")
    e2e.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return E2E(e2e.root, e2e.config_path, e2e.offset, e2e.play_at)


def events(path: Path, kind: str) -> list[dict[str, object]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT detail FROM events WHERE kind=? ORDER BY id", (kind,))
        return [json.loads(detail) for (detail,) in rows.fetchall()]
    finally:
        conn.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_what_played(run: Running, reply: dict[str, Any], lufs: float) -> None:
    """Each speaker played its hamlet's clips in the hamlet's language order; every hamlet the
    same Vietnamese clip, and the recordings loudness-normalised into the clip store."""
    store = run.daemon.renderer.store
    text_clips = set()
    for pid in reply["playlists"]:
        row = run.daemon.journal.dispatch(pid)
        assert row is not None
        items = json.loads(row.envelope)["items"]
        assert [i["lang"] for i in items] == reply["hamlets"][row.hamlet]
        assert {i["announcement"] for i in items} == {reply["id"]}
        for node, sim in run.fleet.agents.items():
            if sim.spec.hamlet == row.hamlet:
                played = [p[1] for p in sim.player.plays if p[0] == pid]
                assert played == [i["sha256"] for i in items], node
        text_clips.add(items[0]["sha256"])
        for item in items[1:]:
            path = store.path_for(item["sha256"])
            assert path is not None
            assert path.suffix == ".mp3"
            assert abs(loudness(path) - lufs) <= 1.5
    assert len(text_clips) == 1


def loudness(path: Path) -> float:
    err = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-i", path, "-af", "ebur128", "-f", "null", "-"],
        capture_output=True,
        check=True,
        text=True,
    ).stderr
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", err)[-1])


async def test_m4a_and_amr_recordings_play_where_dao_and_hmong_are_spoken(tmp_path, capsys):
    e2e = commune(tmp_path)
    m4a = zalo_m4a(tmp_path / "zalo-voice.m4a")
    amr = amr_nb(tmp_path / "ghi-am.amr")
    sha = {"dao": sha256(m4a), "hmn": sha256(amr)}
    journal = e2e.config.state_dir / "journal.sqlite3"
    async with e2e.running() as run:
        await asyncio.wait_for(run.daemon.link.connected.wait(), 10)
        capsys.readouterr()
        argv = ["announce", "--text", TEXT, "--audio", f"dao={m4a}", "--audio", f"hmn={amr}",
                "--now", "--operator", "chu-tich", "-c", str(e2e.config_path)]  # fmt: skip
        assert await asyncio.to_thread(cli.run, argv) == 0
        reply = json.loads(capsys.readouterr().out)
        assert reply["hamlets"] == {
            "h00": ["vi", "dao"],
            "h01": ["vi", "hmn"],
            "h02": ["vi"],
            "h03": ["vi"],
        }
        assert reply["not_covered"] == []
        assert {r["lang"]: (r["sha256"], r["format"]) for r in reply["recordings"]} == {
            "dao": (sha["dao"], "M4A"),
            "hmn": (sha["hmn"], "AMR"),
        }
        # Accepted means kept: the files and the journal entries naming them are on disk.
        spool = e2e.config.state_dir / "recordings"
        assert (spool / f"{sha['dao']}.m4a").read_bytes() == m4a.read_bytes()
        assert (spool / f"{sha['hmn']}.amr").read_bytes() == amr.read_bytes()
        journaled = {e["lang"]: e for e in events(journal, "recording")}
        assert {lang: e["sha256"] for lang, e in journaled.items()} == sha
        assert all(e["operator"] == "chu-tich" for e in journaled.values())

        playlists = reply["playlists"]
        fleet = run.fleet

        def everyone_played() -> bool:
            return all(sum(fleet.plays_of(pid).values()) == 2 for pid in playlists)

        await wait_for(everyone_played, 60, "every speaker played its hamlet's playlist")
        check_what_played(run, reply, e2e.config.audio.loudness_lufs)

        # Without text, hamlets that speak neither language hear nothing, and the reply says so.
        argv = ["announce", "--audio", f"dao={m4a}", "--now", "-c", str(e2e.config_path)]
        assert await asyncio.to_thread(cli.run, argv) == 0
        only_dao = json.loads(capsys.readouterr().out)
        assert only_dao["hamlets"] == {"h00": ["dao"]}
        assert only_dao["not_covered"] == ["h01", "h02", "h03"]
        assert len(only_dao["playlists"]) == 1

    # The daemon restarts; speakers of the Dao hamlet that were never on line still get the
    # recording (its hamlet's newest playlist) from the journal and the clip store.
    recorded = only_dao["playlists"][0]
    async with e2e.running(fleet=False) as run:
        late = Fleet.for_config(
            e2e.config,
            cache_root=tmp_path / "late-nodes",
            nodes=["h00-n0", "h00-n1"],
            clock=e2e.clock,
            heartbeat_s=1.0,
        )
        run.start(late)
        await wait_for(
            lambda: sum(late.plays_of(recorded).values()) == 2,
            60,
            "the Dao hamlet's late speakers played the recorded announcement",
        )
