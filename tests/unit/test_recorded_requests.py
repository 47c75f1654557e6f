"""`announce --audio`: what the daemon refuses, in one line and journaled, and what it keeps.

A real journal, renderer (espeak-ng, ffmpeg) and spool; the dispatcher only records the plans it
is handed (tests/integration/test_announce_audio.py plays them on reference agents).
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pytest
from support.recordings import amr_nb, zalo_m4a

from broadcastd.cli.control import read_recordings
from broadcastd.config import load_config
from broadcastd.controller.controlsocket import MAX_REQUEST_BYTES, Peer
from broadcastd.controller.dispatch import Published
from broadcastd.controller.operations import Health, Operations
from broadcastd.controller.requests import MAX_RECORDING_BYTES
from broadcastd.errors import BroadcastdError, ConfigError, UsageError
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics
from broadcastd.render.renderer import build_renderer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from broadcastd.models import SlotPlan

CONFIG = """\
commune: {id: thu, name: Xã Thử}
signing: {private_key_file: key}
state_dir: state
slots: {noon: {at: "11:30"}}
audio: {max_recording: 6s}
tts: {engines: [espeak]}
hamlets:
  - {id: ban-dao, name: Bản Dao, households: 10, languages: [vi, dao]}
  - {id: ban-mong, name: Bản Mông, households: 10, languages: [hmn, vi]}
  - {id: ban-kinh, name: Bản Kinh, households: 10}
"""
NOW = 1_796_561_739.0
ME = Peer(4242, 1000, "van-phong")


@dataclass
class Recorder:
    """Stands in for the dispatcher: numbers announcements and keeps the plans it is handed."""

    plans: list[SlotPlan] = field(default_factory=list)
    number: int = 0

    def next_adhoc_number(self) -> int:
        self.number += 1
        return self.number

    async def dispatch_plans(self, plans: Sequence[SlotPlan], **_: object) -> list[Published]:
        self.plans += plans
        at = int(NOW)
        return [Published(f"pl-{p.hamlet}", p.hamlet, p.slot, at, at + 60) for p in plans]


@dataclass
class Setup:
    ops: Operations
    dispatcher: Recorder
    journal: Journal
    spool: Path

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(d) for d in self.journal.event_details(kind)]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path, probe_media=False).config
    journal = Journal.open(tmp_path / "journal.sqlite3", clock=lambda: NOW)
    dispatcher = Recorder()
    ops = Operations(
        config,
        dispatcher=cast("Any", dispatcher),
        journal=journal,
        registry=cast("Any", None),
        controls=cast("Any", None),
        renderer=build_renderer(config, engines=["espeak"]),
        metrics=Metrics(),
        clock=lambda: NOW,
        health=lambda: Health(connected=True, ready=True),
    )
    try:
        yield Setup(ops, dispatcher, journal, config.state_dir / "recordings")
    finally:
        journal.close()


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


async def announce(setup: Setup, **fields: object) -> dict[str, Any]:
    request = {"cmd": "announce", "now": True, "operator": "chu-tich", **fields}
    return await setup.ops.handle(request, ME)


async def refused(setup: Setup, **fields: object) -> str:
    with pytest.raises(BroadcastdError) as info:  # its message is what the CLI prints
        await announce(setup, **fields)
    message = str(info.value)
    assert "\n" not in message
    assert setup.dispatcher.plans == [], "nothing is sent when a recording is refused"
    return message


async def test_recordings_play_where_their_language_is_spoken_and_text_to_the_rest(setup, tmp_path):
    m4a, amr = zalo_m4a(tmp_path / "dao.m4a"), amr_nb(tmp_path / "hmn.amr")
    reply = await announce(
        setup, text="Họp thôn tối nay.", audio={"dao": b64(m4a), "hmn": b64(amr)}
    )
    assert reply["hamlets"] == {
        "ban-dao": ["vi", "dao"],
        "ban-mong": ["hmn", "vi"],  # the hamlet's own order
        "ban-kinh": ["vi"],
    }
    assert reply["not_covered"] == []
    by_hamlet = {p.hamlet: p for p in setup.dispatcher.plans}
    dao = by_hamlet["ban-dao"].items[1]
    assert (dao.kind, dao.announcement, dao.lang) == ("recording", reply["id"], "dao")
    assert dao.recording == setup.spool / f"{reply['recordings'][0]['sha256']}.m4a"
    assert [r["format"] for r in reply["recordings"]] == ["M4A", "AMR"]
    assert [r["codec"] for r in reply["recordings"]] == ["aac", "amr_nb"]

    # kept under its content's hash, owner-only, before the reply; the journal names it
    for recording, source in zip(reply["recordings"], (m4a, amr), strict=True):
        kept = setup.spool / f"{recording['sha256']}.{source.suffix[1:]}"
        assert kept.read_bytes() == source.read_bytes()
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(setup.spool.stat().st_mode) == 0o700
    assert not list(setup.spool.glob(".tmp-*"))
    journaled = setup.events("recording")
    assert [(e["lang"], e["sha256"]) for e in journaled] == [
        (r["lang"], r["sha256"]) for r in reply["recordings"]
    ]
    assert all(e["operator"] == "chu-tich" and e["unix_user"] == "van-phong" for e in journaled)
    # and their clips are rendered already: dispatching them finds them in the store
    recorded = [i for p in setup.dispatcher.plans for i in p.items if i.kind == "recording"]
    assert len(recorded) == 2
    assert all(setup.ops.renderer.cached(item) is not None for item in recorded)


async def test_without_text_hamlets_of_other_languages_hear_nothing_and_are_named(setup, tmp_path):
    reply = await announce(setup, audio={"dao": b64(zalo_m4a(tmp_path / "dao.m4a"))})
    assert reply["hamlets"] == {"ban-dao": ["dao"]}
    assert reply["not_covered"] == ["ban-mong", "ban-kinh"]
    assert [p.hamlet for p in setup.dispatcher.plans] == ["ban-dao"]


async def test_too_long(setup, tmp_path):
    m4a = zalo_m4a(tmp_path / "long.m4a", repeat=3)
    message = await refused(setup, audio={"dao": b64(m4a)})
    assert message.startswith("the dao recording: 0:")
    assert message.endswith(" long; audio.max_recording allows 0:06")
    assert not list(setup.spool.glob("*")), "a refused file is not kept"
    (event,) = setup.events("refused")
    assert event["reason"] == message
    assert event["operator"] == "chu-tich"
    assert event["audio"][0][0] == "dao"
    assert len(event["audio"][0][1]) == 64  # the refused file's sha256


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"<html>404</html>", "the hmn recording: not a recording in a format accepted here"),
        (b"#!AMR\n" + bytes(40), "the hmn recording: audio is silent"),
        (b"\x00\x00\x00\x18ftypM4A " + bytes(64), "the hmn recording: not decodable audio"),
    ],
)
async def test_undecodable(setup, content, expected):
    message = await refused(setup, audio={"hmn": base64.b64encode(content).decode()})
    assert message.startswith(expected)
    assert setup.events("refused")[0]["reason"] == message


@pytest.mark.parametrize(
    ("audio", "hamlets", "expected"),
    [
        (
            {"xyz": "AAAA"},
            None,
            (
                "no hamlet speaks 'xyz': a recording's language must be one of a hamlet's"
                " languages (this commune's: dao, hmn, vi)"
            ),
        ),
        ({"dao": "AAAA"}, "ban-kinh,ban-mong", "none of the hamlets asked for (ban-kinh,"),
        ({"Dao": "AAAA"}, None, "audio: expected a language tag: lowercase letters a-z"),
        ({"dao\n": "AAAA"}, None, "audio: expected a language tag"),
        ({"dao": "not base64!"}, None, "audio.dao is not valid base64"),
        ({"dao": ""}, None, "audio.dao: the file is empty"),
        ({"dao": 7}, None, "audio.dao must be the file in base64, got: 7"),
        (["dao", "AAAA"], None, 'audio must be an object {"LANG": "<base64 of the file>"}'),
    ],
)
async def test_unknown_language_and_malformed_audio(setup, audio, hamlets, expected):
    message = await refused(setup, audio=audio, hamlets=hamlets)
    assert message.startswith(expected)


async def test_a_spool_that_cannot_be_written_is_said_so(setup, tmp_path):
    setup.spool.parent.mkdir(parents=True, exist_ok=True)
    setup.spool.write_bytes(b"")  # a file where the directory should be
    message = await refused(setup, audio={"dao": b64(amr_nb(tmp_path / "dao.amr"))})
    assert message == f"the dao recording cannot be kept in {setup.spool}: File exists"


async def test_too_big_is_refused_before_decoding(setup):
    over = "A" * (MAX_RECORDING_BYTES // 3 * 4 + 8)
    message = await refused(setup, audio={"dao": over})
    assert message.startswith("the recordings are too big: 16.0 MiB, at most 16 MiB together")
    assert not setup.spool.exists()


async def test_a_two_person_emergency_keeps_the_recording_until_approved(setup, tmp_path):
    setup.ops.config = setup.ops.config.model_copy(
        update={
            "emergency": setup.ops.config.emergency.model_copy(
                update={"approvals": 2, "operators": ("an", "binh")}
            )
        }
    )
    amr = amr_nb(tmp_path / "hmn.amr")
    opened = await announce(setup, audio={"hmn": b64(amr)}, priority="emergency", operator="an")
    assert opened["playlists"] == []
    (request,) = setup.events("request")
    assert request["audio"] == [setup.events("recording")[0]["sha256"]]
    approved = await setup.ops.handle(
        {"cmd": "approve", "id": opened["request"], "operator": "binh"}, ME
    )
    assert approved["hamlets"] == {"ban-mong": ["hmn"]}
    assert setup.dispatcher.plans[0].items[0].priority == "emergency"


def test_the_largest_accepted_request_fits_the_control_socket():
    encoded = len(base64.b64encode(bytes(MAX_RECORDING_BYTES)))
    assert encoded + 64 * 1024 <= MAX_REQUEST_BYTES


@pytest.mark.parametrize("limit", ["4s", "16m"])
def test_max_recording_is_bounded(tmp_path, limit):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("max_recording: 6s", f"max_recording: {limit}"), "utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, probe_media=False)
    assert str(info.value) == (
        f"{path}:5:24: audio.max_recording: expected between 5s and 15m, got: '{limit}'"
    )


def test_max_recording_defaults_to_five_minutes(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("audio: {max_recording: 6s}\n", ""), "utf-8")
    assert load_config(path, probe_media=False).config.audio.max_recording.total_seconds() == 300


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("dao", "--audio takes LANG=FILE, such as dao=ban-tin.m4a, got: 'dao'"),
        ("dao=", "--audio takes LANG=FILE"),
        ("Dao=x.m4a", "--audio 'Dao=x.m4a': expected a language tag"),
        ("dao=missing.m4a", "--audio: cannot read missing.m4a: No such file or directory"),
        ("dao=.", "--audio: . is not a regular file"),
    ],
)
def test_the_cli_refuses_bad_audio_arguments(tmp_path, monkeypatch, spec, expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as info:
        read_recordings([spec])
    assert str(info.value).startswith(expected)


def test_the_cli_refuses_two_files_for_one_language_and_too_much(tmp_path):
    one = tmp_path / "one.m4a"
    one.write_bytes(b"x")
    with pytest.raises(UsageError, match="two recordings for 'dao'; give one per language"):
        read_recordings([f"dao={one}", f"dao={one}"])
    big = tmp_path / "big.wav"
    with big.open("wb") as fh:
        fh.truncate(MAX_RECORDING_BYTES)  # sparse: costs no disk
    with pytest.raises(UsageError, match=r"the recordings are too big: 16\.0 MiB, at most 16 MiB"):
        read_recordings([f"dao={big}", f"hmn={one}"])
    assert read_recordings([f"dao={one}"]) == {"dao": "eA=="}


def test_the_cli_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.m4a"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="is not a regular file"):
        read_recordings([f"dao={fifo}"])
