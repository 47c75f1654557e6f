"""A slot edited on the day it already aired is planned again (issue 17, item 2).

Daemon, embedded mosquitto and reference agents share a shifted clock. The noon slot airs in four
hamlets; one announcement reaches only h00 and h01. Staff then move the slot two minutes later and
reword that announcement: h00 and h01 hear the new bulletin once, at the new time, and h02 and h03,
whose bulletin did not change, hear nothing again. The clock jumps ahead between the two airings,
so the test waits seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

from support.e2e import E2E, wait_for, write_commune

if TYPE_CHECKING:
    from pathlib import Path

TEXTS = ("Bà con chú ý phòng chống rét cho trâu bò.", "Họp thôn lúc bảy giờ tối nay.")
REWORDED = "Họp thôn lúc tám giờ tối nay, tại nhà văn hóa."
CHANGED = ("h00", "h01")


def _commune(tmp_path: Path) -> tuple[E2E, str]:
    e2e = write_commune(tmp_path, hamlets=4, nodes_per_hamlet=2, texts=TEXTS)
    text = e2e.config_path.read_text(encoding="utf-8")
    text = text.replace("    title: Tin 1\n", "    title: Tin 1\n    hamlets: [h00, h01]\n")
    e2e.config_path.write_text(text, encoding="utf-8")
    return E2E(e2e.root, e2e.config_path, e2e.offset, e2e.play_at), text


async def test_a_slot_moved_later_after_airing_replays_only_the_hamlets_whose_content_changed(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="broadcastd")
    e2e, text = _commune(tmp_path)
    day = e2e.play_at.date()
    moved = e2e.play_at + dt.timedelta(minutes=2)
    async with e2e.running() as run:
        daemon, fleet = run.daemon, run.fleet
        await wait_for(run.slot_played(day, hamlets=4, acks=8), 60, "the slot to air")
        first = {r.hamlet: r.id for r in daemon.journal.dispatches_for(day, "noon")}

        e2e.offset += moved.timestamp() - 8 - e2e.clock()  # 8 s before the new time
        edited = text.replace(f"at: '{e2e.play_at:%H:%M}'", f"at: '{moved:%H:%M}'")
        e2e.config_path.write_text(edited.replace(TEXTS[1], REWORDED), encoding="utf-8")
        assert await daemon.reload()
        next_run = daemon.metrics.next_slot_timestamp_seconds.labels(slot="noon")._value.get()
        assert next_run == moved.timestamp()

        def replayed() -> bool:
            rows = [
                r for r in daemon.journal.dispatches_for(day, "noon") if r.id not in first.values()
            ]
            return len(rows) == 2 and all(
                fleet.plays_of(r.id).get(n) == 1
                for r in rows
                for n in e2e.node_ids
                if n.startswith(r.hamlet)
            )

        await wait_for(replayed, 30, "the changed hamlets to play the new bulletin")
        await asyncio.sleep(2.0)  # a second play, anywhere, would show up here

        rows = daemon.journal.dispatches_for(day, "noon")
        new = {r.hamlet: r for r in rows if r.id not in first.values()}
        assert sorted(new) == list(CHANGED)
        assert {r.play_at for r in new.values()} == {int(moved.timestamp())}
        for node_id, sim in fleet.agents.items():
            hamlet = sim.spec.hamlet
            expected = [first[hamlet], *([new[hamlet].id] if hamlet in new else [])]
            assert sorted({pid for pid, _, _ in sim.player.plays}) == sorted(expected), node_id
            assert all(fleet.plays_of(pid)[node_id] == 1 for pid in expected), node_id
            if hamlet in new:
                start = min(ts for pid, _, ts in sim.player.plays if pid == new[hamlet].id)
                assert moved.timestamp() <= start < moved.timestamp() + 5, node_id

        skipped = {s.hamlet: s.reason for s in daemon.journal.skips_between(day, day)}
        assert sorted(skipped) == ["h02", "h03"]
        assert all(first[h] in reason and "unchanged" in reason for h, reason in skipped.items())
        decisions = [r.getMessage() for r in caplog.records if "slot noon of" in r.getMessage()]
        for hamlet in ("h02", "h03"):
            assert any(f"hamlet {hamlet}: skipped" in m for m in decisions), decisions
        for hamlet, row in new.items():
            assert any(f"hamlet {hamlet}: dispatched {row.id}" in m for m in decisions), decisions
