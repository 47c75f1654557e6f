"""Near-live: from "send" on a 30-second recording made in the browser to playing on every speaker.

A real daemon (its own process, embedded mosquitto, ffmpeg), a real `broadcastd console` process
and 16 reference agents on loopback. The recording is what Chromium's MediaRecorder makes (Opus in
WebM), here made from espeak-ng speech with ffmpeg, and it is posted the way the page posts it: a
logged-in operator's session, the Phát ngay form with the recording in base64url and the CSRF
token, the confirmation page, then its form. The clock starts at that last POST (the operator's
"send") and stops when the daemon has every agent's `playing` ack (each agent sends it as its
player starts; when the players started is measured too).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from _commune import write_commune
from _consoleproc import add_operator, console_process
from support import console as cs
from support.daemon_main import reaped, spawn, terminate_timed, wait_log
from support.recordings import speech_wav

from broadcastd.config import load_config
from broadcastd.controller.controlsocket import request
from broadcastd.errors import BroadcastdError
from broadcastd.sim.fleet import Fleet
from broadcastd.transport.broker import free_port

if TYPE_CHECKING:
    from pathlib import Path

RECORD_S = 30
HAMLETS, PER_HAMLET = 8, 2  # 16 speakers
OPERATOR = "bench"
WAIT_S = 120.0
SLACK_S = 1.5  # a clip's length besides the recording's: audio.gap's silence after it


@dataclass(frozen=True, slots=True)
class NearLive:
    accepted: float  # the POST answered: the daemon took it (spooled, encoded, published)
    first: float  # the first agent playing
    last: float  # every agent playing
    acked: float  # every agent's `playing` ack at the daemon: the near-live figure
    agents: int


def browser_recording(out: Path, seconds: int) -> bytes:
    """`seconds` of espeak-ng speech as a browser records it: Opus in WebM, mono, 48 kHz."""
    wav = speech_wav(out.with_suffix(".wav"), repeat=4)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-af", "apad",
         "-t", str(seconds), "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", "32k",
         str(out)],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


async def _every_speaker_online(config_path: Path, speakers: int) -> None:
    """Until the daemon reports every speaker online (heartbeats in: they are subscribed)."""
    sock = load_config(config_path).config.state_dir / "broadcastd.sock"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(BroadcastdError):
            answer = await request(sock, {"cmd": "hamlets", "v": 1})
            if sum(h["nodes_online"] for h in answer["hamlets"]) == speakers:
                return
        await asyncio.sleep(0.2)
    raise SystemExit(f"the {speakers} speakers were not online within {WAIT_S:.0f} s")


async def _send(http: httpx.AsyncClient, recording: bytes) -> float:
    """Log in, fill Phát ngay with the recording, review; the time just before "send" is
    posted. Raises SystemExit unless the console answers that it was sent."""
    if (await cs.login(http, OPERATOR)).status_code != 303:
        raise SystemExit("login failed")
    form = {
        "text": "",
        "audio": base64.urlsafe_b64encode(recording).decode(),
        "audio_lang": "vi",
        "target": "all",
        "priority": "priority",
        "when": "now",
        "csrf": await cs.csrf(http),
    }
    page = await http.post("/announce/review", data=form)
    if page.status_code != 200 or 'id="recording-review"' not in page.text:
        raise SystemExit(f"the review page answered {page.status_code}")
    sent_at = time.time()
    done = await http.post("/announce", data=cs.hidden(page.text))
    if done.status_code != 200 or 'data-outcome="ok"' not in done.text:
        raise SystemExit(f"sending answered {done.status_code}: {done.text[-500:]}")
    return sent_at


async def _playing(fleet: Fleet) -> dict[str, float]:
    """Per agent, when its player started the announcement (nothing else plays here)."""
    deadline = time.monotonic() + WAIT_S
    while not all(sim.player.plays for sim in fleet.agents.values()):
        if time.monotonic() > deadline:
            raise SystemExit(f"not every agent played within {WAIT_S:.0f} s")
        await asyncio.sleep(0.02)
    return {node: sim.player.plays[0][2] for node, sim in fleet.agents.items()}


def _check_played(fleet: Fleet, journal: Path) -> None:
    """What every agent played is the recording: one clip of about RECORD_S seconds."""
    played = {sim.player.plays[0][:2] for sim in fleet.agents.values()}
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as conn:
        for playlist, sha256 in played:
            sql = "SELECT envelope FROM dispatches WHERE id=?"
            (envelope,) = conn.execute(sql, (playlist,)).fetchone()
            (clip,) = json.loads(envelope)["items"]
            seconds = clip["duration_ms"] / 1000
            if clip["sha256"] != sha256 or abs(seconds - RECORD_S) > SLACK_S:
                raise SystemExit(f"{playlist} played {sha256}, not the recording: {clip}")


async def _acked_playing(fleet: Fleet, journal: Path) -> float:
    """When the daemon received the last agent's `playing` ack (its journal's received_at; the
    journal is written a moment later, so it is polled)."""
    playlists = sorted({sim.player.plays[0][0] for sim in fleet.agents.values()})
    marks = ",".join("?" * len(playlists))
    sql = f"SELECT node, received_at FROM acks WHERE status='playing' AND playlist IN ({marks})"  # noqa: S608 - placeholders only
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as conn:
            acked = dict(conn.execute(sql, playlists).fetchall())
        if set(acked) == set(fleet.agents):
            return float(max(acked.values()))
        await asyncio.sleep(0.1)
    raise SystemExit(f"not every agent's playing ack was journaled within {WAIT_S:.0f} s")


async def near_live(root: Path) -> NearLive:
    config_path = write_commune(
        root, hamlets=HAMLETS, per_hamlet=PER_HAMLET, prefix="h", heartbeat="1s", keepalive="5s"
    )
    listen = f"127.0.0.1:{free_port()}"
    with config_path.open("a", encoding="utf-8") as f:
        f.write(f"console: {{listen: '{listen}'}}\n")
    add_operator(config_path, OPERATOR, "operator")
    recording = browser_recording(root / "ghi-am.webm", RECORD_S)
    log = root / "daemon.log"
    with reaped(spawn(config_path, 0.0, log)) as daemon:
        await wait_log(log, "broadcastd running", daemon, WAIT_S)
        fleet = Fleet.for_config(
            load_config(config_path).config, cache_root=root / "nodes", heartbeat_s=1.0
        )
        speakers = asyncio.create_task(fleet.run(), name="fleet")
        try:
            await _every_speaker_online(config_path, len(fleet.agents))
            async with (
                console_process(config_path, listen),
                httpx.AsyncClient(base_url=f"http://{listen}", timeout=WAIT_S) as http,
            ):
                sent_at = await _send(http, recording)
                accepted = time.time() - sent_at
                started = await _playing(fleet)
            journal = root / "state" / "journal.sqlite3"
            _check_played(fleet, journal)
            acked = await _acked_playing(fleet, journal)
        finally:
            fleet.stop()
            await asyncio.wait_for(speakers, 30)
        code, _ = await terminate_timed(daemon)
        if code != 0:
            raise SystemExit(f"the daemon exited {code}; see {log}")
    return NearLive(
        accepted=accepted,
        first=min(started.values()) - sent_at,
        last=max(started.values()) - sent_at,
        acked=acked - sent_at,
        agents=len(started),
    )
