"""Weak links: 20 speakers on emulated 3G fetch a ~1.5 MB bulletin; an emergency cuts in.

System: the link lab (tests/support/linklab.py), profile `3g-weak` (256/128 kbit/s, 400 ms RTT,
a 10 s stall every 2 minutes at a seeded phase per link, none in the first QUIET_S seconds); the
real daemon (daemon_main.py, with its embedded mosquitto) in the lab's core namespace; 20
reference agents (10 hamlets x 2), each behind its own shaped link. The commune's `noon` slot, a
few minutes ahead and so within its `lead`, holds six spoken announcements (~1.5 MB of audio per
hamlet): the daemon renders and publishes it when it starts, and every speaker fetches it.
A few seconds in, with every speaker in the middle of that download, an emergency is issued
(`announce --now --priority emergency`, through the control socket, as the CLI does).

1. `weaklink ready`: seconds from the dispatch until every speaker has acked `ready` for the
   bulletin, against the floor: the slowest of 20 plain TCP transfers of the bytes each speaker
   had to receive (bulletin + emergency), one through each link, all at once, measured in the
   same run with the links' outages restarted at the same phases.
2. `weaklink emergency`: seconds from the emergency's issue until the last speaker started
   playing it, against 5 s + the emergency's bytes at the shaped rate (issue 18). No stall falls
   in the first QUIET_S seconds: a radio outage is not head-of-line blocking, and no bound could
   hold across one.
3. `weaklink resent`: chunks any speaker received twice (the bulletin's download pauses for the
   emergency and resumes without asking again for what it had).

Usage: `python benchmarks/weaklink.py [--profile 3g-weak]` (as root).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the link lab
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.e2e import E2E, wait_for
from support.labrun import emergency, journal_acks, lab_daemon, lab_speakers
from support.linklab import BROKER_HOST, BROKER_PORT, PROFILES, Lab

from broadcastd import protocol
from broadcastd.journal.store import Journal

if TYPE_CHECKING:
    from support.labrun import Speaker

    from broadcastd.journal.schema import DispatchRow

READY_TARGET = 1.25
QUIET_S = 20.0  # no outage this long after the dispatch: the emergency is measured in it
HAMLETS, PER_HAMLET = 10, 2
ITEMS = 6  # announcements; ~900 characters each is ~64 s of espeak-ng speech, ~255 KB
SENTENCES = (
    "Ủy ban nhân dân xã thông báo lịch tiêm phòng cho gia súc, gia cầm đợt hai năm nay.",
    "Bà con mang theo sổ tiêm phòng và đưa trâu bò đến điểm tiêm đúng giờ.",
    "Trời rét đậm, bà con che chắn chuồng trại, dự trữ rơm khô và thức ăn cho vật nuôi.",
    "Thẻ bảo hiểm y tế hết hạn cuối tháng, bà con đến nhà văn hóa thôn để được gia hạn.",
    "Mùa mưa lũ, không qua suối khi nước lên, trông giữ trẻ em, tránh xa sườn đồi dốc.",
    "Hợp tác xã thu mua chè búp tươi, bà con hái đúng kỹ thuật để được giá cao hơn.",
)
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def announcement(slot: str, index: int) -> list[str]:
    text = " ".join(SENTENCES[(index + k) % len(SENTENCES)] for k in range(11))
    return [
        f"  - id: {slot}-{index}",
        f"    title: Tin {slot} {index}",
        f"    text: {{vi: '{text} Tin số {index + 1} buổi {slot}.'}}",
        f"    slots: [{slot}]",
    ]


def write_commune(root: Path) -> E2E:
    """A slot 20 minutes ahead (within `lead`: published at start), on the real clock."""
    now = dt.datetime.now(tz=TZ)
    noon = (now + dt.timedelta(minutes=20)).replace(second=0, microsecond=0)
    # The lab's private network: plain MQTT, as `insecure_plaintext` allows.
    broker = f"{{mode: embedded, listen: '{BROKER_HOST}:{BROKER_PORT}', insecure_plaintext: true}}"
    lines = [
        "commune: {id: lab, name: Xã Thử, timezone: Asia/Ho_Chi_Minh}",
        f"broker: {broker}",
        "signing: {private_key_file: ed25519.key}",
        "state_dir: state",
        "slots:",
        f"  noon: {{at: '{noon:%H:%M}', max_duration: 15m, lead: 30m, catch_up: 20m}}",
        "tts: {engines: [espeak], timeout: 30s}",
        "nodes: {heartbeat: 30s, keepalive: 30s}",
        "hamlets:",
    ]
    for h in range(HAMLETS):
        nodes = ", ".join(f"{{id: h{h:02d}-n{n}, households: 10}}" for n in range(PER_HAMLET))
        lines += [f"  - id: h{h:02d}", f"    name: Bản {h}", f"    households: {10 * PER_HAMLET}"]
        lines.append(f"    nodes: [{nodes}]")
    lines.append("announcements:")
    for i in range(ITEMS):
        lines += announcement("noon", i)
    path = root / "commune.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    protocol.generate_private_key(root / "ed25519.key")
    return E2E(root, path, 0.0, noon)


def dispatches(e2e: E2E) -> list[DispatchRow]:
    """Every playlist journaled so far: the bulletin's, then the emergency's."""
    journal = Journal.open(e2e.config.state_dir / "journal.sqlite3", readonly=True)
    try:
        return journal.dispatches_between(
            e2e.play_at.date() - dt.timedelta(1), e2e.play_at.date() + dt.timedelta(1)
        )
    finally:
        journal.close()


def clip_bytes(row: DispatchRow) -> int:
    return sum(int(item["bytes"]) for item in json.loads(row.items))


def last_ack(e2e: E2E, playlists: set[str], status: str, count: int) -> float | None:
    """When the `count`-th node acked `status` for one of `playlists` (None: not yet)."""
    times = sorted(
        a.received_at for a in journal_acks(e2e) if a.playlist in playlists and a.status == status
    )
    return times[count - 1] if len(times) >= count else None


async def run(profile_name: str) -> None:
    profile = PROFILES[profile_name]
    nodes = HAMLETS * PER_HAMLET
    with tempfile.TemporaryDirectory(prefix="broadcastd-weaklink-") as tmp:
        root = Path(tmp)
        e2e = write_commune(root)
        async with Lab.running(links=nodes, profile=profile) as lab:
            print(f"# lab: {lab.describe()}")
            async with (
                lab_daemon(lab, e2e, root / "daemon.log"),
                lab_speakers(lab, e2e, heartbeat_s=30) as speakers,
            ):
                connected = time.time()
                await wait_for(lambda: dispatches(e2e), 300, "the bulletin's dispatch")
                lab.schedule(QUIET_S)  # outages from the dispatch on, as the floor will meet them
                emergency_s, urgent = await emergency_run(e2e, speakers)
                rows = [r for r in dispatches(e2e) if r.slot == "noon"]
                bulletin = {r.id for r in rows}
                started = max(connected, min(r.created_at for r in rows))
                await wait_for(lambda: last_ack(e2e, bulletin, "ready", nodes), 900, "all ready")
                ready = (last_ack(e2e, bulletin, "ready", nodes) or 0) - started
                resent = sum(s.agent.fetcher.duplicates for s in speakers)
                carried = sum(s.link.control.bytes_down for s in speakers)
            lab.schedule(QUIET_S)
            needed = clip_bytes(rows[0]) + urgent
            floor = max(await lab.floor([needed] * nodes))
        print(
            f"# {nodes} speakers, {needed} B each ({urgent} B of it the emergency): all ready "
            f"{ready:.1f} s after the dispatch, floor {floor:.1f} s (plain TCP, same links, same "
            f"outages); the links carried {carried - needed * nodes} B more than that in all"
        )
        bound = 5 + urgent / profile.down_bytes_per_s
        print(f"weaklink ready: ratio={ready / floor:.2f} target={READY_TARGET}")
        print(f"weaklink emergency: {emergency_s:.1f} s target={bound:.1f}")
        print(f"weaklink resent: {resent} chunks target=0")


async def emergency_run(e2e: E2E, speakers: list[Speaker]) -> tuple[float, int]:
    """Issue an emergency once every speaker is mid-download: (seconds until the last one
    started playing it, its bytes)."""

    def mid_download(speaker: Speaker) -> bool:
        return any(f.part.present for f in speaker.agent.fetcher.active.values())

    await wait_for(lambda: all(mid_download(s) for s in speakers), QUIET_S, "every download")
    issued = time.time()
    ids = set(await emergency(e2e, "Lũ quét đang về các thôn ven suối, bà con sơ tán ngay."))

    def started(speaker: Speaker) -> float | None:
        return next((t for pid, _, t in speaker.player.plays if pid in ids), None)

    await wait_for(lambda: all(started(s) for s in speakers), 120, "the emergency everywhere")
    latest = max(started(s) or 0.0 for s in speakers) - issued
    return latest, clip_bytes(next(r for r in dispatches(e2e) if r.id in ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="3g-weak", choices=sorted(PROFILES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(run(args.profile))


if __name__ == "__main__":
    main()
