"""Acting in real browsers (headless Chromium). The two-person rule with two contexts, two
approvers: A asks for an emergency, B sees it appear without reloading and approves it, every
reference agent plays it within 3 s of B's click; A approving their own request is refused by
the page (no button) and by the server (a forged POST with A's own session and CSRF token).
And 10 s recorded with Chromium's fake microphone, heard back in the page and sent to two of
four hamlets: only their reference agents play it, and the journal names the operator."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from support import browser
from support import console as cs
from support.e2e import wait_for, write_commune
from support.recordings import speech_wav

from broadcastd.console import accounts

PLAYS_WITHIN_S = 3.0
RECORD_S = 10
CHOSEN = ("h01", "h02")  # two of the commune's four hamlets
FLOOD = "Lũ quét ở suối Nậm Mu, bà con di chuyển lên đồi ngay!"


async def fits_a_phone(page) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px too wide for a phone"


async def log_in(page, base: str, name: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#username", name)
    await page.fill("#password", cs.PASSWORD)
    await page.click("#login")
    await page.wait_for_url(f"{base}/")


async def test_a_second_approver_sees_the_request_live_and_approves_it(tmp_path, monkeypatch):  # noqa: PLR0915 - one scenario, two people, step by step
    monkeypatch.setattr(accounts, "_hasher", cs.QUICK_HASHER)
    e2e = write_commune(
        tmp_path,
        hamlets=2,
        nodes_per_hamlet=2,
        play_in=600,
        extra=("emergency:", "  approvals: 2", "  operators: [an, binh]"),
    )
    ctx = cs.build(e2e.config_path, clock=e2e.clock)
    cs.add_operator(ctx, "an", "approver")
    cs.add_operator(ctx, "binh", "approver")
    async with (
        e2e.running() as run,
        cs.served(ctx) as base,
        browser.launched() as chromium,
    ):
        fleet = run.fleet
        await wait_for(
            lambda: all(run.daemon.registry.state(n) == "online" for n in e2e.node_ids),
            20,
            "every speaker online",
        )
        asker = await (await chromium.new_context(viewport=browser.PHONE)).new_page()
        second = await (await chromium.new_context(viewport=browser.DESKTOP)).new_page()
        await log_in(asker, base, "an")
        await log_in(second, base, "binh")
        await second.goto(f"{base}/speakers")
        await second.evaluate("window.stillTheSamePage = true")

        await asker.goto(f"{base}/announce")
        await asker.fill("#text", FLOOD)
        await asker.check('input[name="priority"][value="emergency"]')
        await asker.click("#review")
        await asker.wait_for_selector("#two-person")
        await fits_a_phone(asker)
        assert "bà con di chuyển lên đồi ngay" in await asker.locator("#spoken").inner_text()
        assert await asker.locator("#households-total").inner_text() == "40"
        await asker.click("#send")
        await asker.wait_for_selector('[data-outcome="ok"]')
        rid = await asker.locator("section.result").get_attribute("data-id")
        assert rid is not None
        assert rid.startswith("req-")

        # The asker's own page offers no approval, and the server refuses a forged one.
        await fits_a_phone(asker)
        await asker.goto(f"{base}/requests/{rid}")
        await fits_a_phone(asker)
        assert await asker.locator("#own").count() == 1
        assert await asker.locator("#approve").count() == 0
        csrf = await asker.locator('input[name="csrf"]').first.get_attribute("value")
        forged = await asker.request.post(
            f"{base}/requests/{rid}/approve", form={"csrf": csrf or ""}
        )
        assert forged.status == 403
        assert 'data-outcome="own"' in await forged.text()

        # The second approver's open page shows it without a reload, text and all.
        review = second.locator(f'#requests [data-review="{rid}"]')
        await review.wait_for(timeout=10_000)
        shown = second.locator(f'#requests [data-request="{rid}"] .request-text')
        assert await shown.inner_text() == FLOOD
        assert await second.evaluate("window.stillTheSamePage") is True, "the stream did it"
        await review.click()
        await second.wait_for_selector("#approve")
        assert await second.locator("#asked-by").inner_text() == "an (đã đăng nhập bảng điều khiển)"
        clicked = e2e.clock()
        await second.click("#approve")
        await second.wait_for_selector('[data-outcome="ok"]')

        emergency: set[str] = set()

        def playing() -> bool:
            day = dt.datetime.fromtimestamp(e2e.clock(), tz=e2e.config.commune.tz).date()
            rows = run.daemon.journal.dispatches_for(day)  # an emergency is filed under now
            emergency.update(r.id for r in rows if r.priority == "emergency")
            return all(
                any(p[0] in emergency for p in sim.player.plays) for sim in fleet.agents.values()
            )

        await wait_for(playing, 10, "every agent to play the emergency")
        delays = {
            node: next(p[2] for p in sim.player.plays if p[0] in emergency) - clicked
            for node, sim in fleet.agents.items()
        }
    ctx.close()
    print(f"emergency on every speaker {max(delays.values()):.2f}s after the approver's click")
    assert max(delays.values()) < PLAYS_WITHIN_S, delays
    conn = sqlite3.connect(e2e.config.state_dir / "journal.sqlite3")
    rows = dict(
        conn.execute("SELECT kind, detail FROM events WHERE kind IN ('request', 'approve')")
    )
    (issue,) = conn.execute("SELECT detail FROM events WHERE kind='issue'").fetchone()
    conn.close()
    for kind, name in (("request", "an"), ("approve", "binh")):
        detail = json.loads(rows[kind])
        assert (detail["operator"], detail["via"]) == (name, "console"), detail
    assert "(operator: an, approved by: binh," in issue


async def test_a_recording_made_in_the_page_plays_in_the_two_chosen_hamlets_only(  # noqa: PLR0915 - one scenario, step by step
    tmp_path, monkeypatch
):
    """Chromium's fake microphone plays espeak-ng speech; the operator records 10 s of it on a
    phone-sized page, picks two of four hamlets and sends it now. The reference agents of those
    two hamlets play the clip (about 10 s long), the others play nothing, and the journal names
    the operator."""
    monkeypatch.setattr(accounts, "_hasher", cs.QUICK_HASHER)
    e2e = write_commune(tmp_path, hamlets=4, nodes_per_hamlet=2, play_in=600)
    ctx = cs.build(e2e.config_path, clock=e2e.clock)
    cs.add_operator(ctx, "an", "operator")
    speech = speech_wav(tmp_path / "noi.wav", repeat=4)
    async with (
        e2e.running() as run,
        cs.served(ctx) as base,
        browser.launched(microphone=True, speech=speech) as chromium,
    ):
        await wait_for(
            lambda: all(run.daemon.registry.state(n) == "online" for n in e2e.node_ids),
            20,
            "every speaker online",
        )
        page = await chromium.new_page(viewport=browser.PHONE)
        await log_in(page, base, "an")
        await page.goto(f"{base}/announce")
        await page.click("#record")
        await page.wait_for_selector("#record-stop:enabled")
        await page.wait_for_timeout(RECORD_S * 1000)  # the length of the recording itself
        await page.click("#record-stop")
        await page.wait_for_selector("#recording-preview:not([hidden])")
        recorded = await page.locator("#recording").get_attribute("data-bytes")
        assert int(recorded or 0) > 10_000, recorded
        assert "Đã ghi" in await page.locator("#recording-status").inner_text()
        await page.wait_for_selector("#recording[data-attached=yes]")
        await page.check("#target-list")
        for hamlet in CHOSEN:
            await page.check(f'input[name="hamlet"][value="{hamlet}"]')
        await page.check('input[name="when"][value="now"]')
        await fits_a_phone(page)
        await page.click("#review")
        await page.wait_for_selector("#recording-review")
        await page.click("#send")
        await page.wait_for_selector("[data-outcome]")
        outcome = page.locator("[data-outcome]")
        assert await outcome.get_attribute("data-outcome") == "ok", await page.locator(
            "main"
        ).inner_text()
        announcement = await page.locator("section.result").get_attribute("data-id")

        day = dt.datetime.fromtimestamp(e2e.clock(), tz=e2e.config.commune.tz).date()
        rows = [r for r in run.daemon.journal.dispatches_for(day) if r.slot.startswith("announce-")]
        assert sorted(r.hamlet for r in rows) == sorted(CHOSEN)
        clips = {r.hamlet: (r.id, json.loads(r.envelope)["items"]) for r in rows}
        fleet = run.fleet
        chosen = {n: sim for n, sim in fleet.agents.items() if sim.spec.hamlet in CHOSEN}
        await wait_for(
            lambda: all(
                any(p[0] == clips[sim.spec.hamlet][0] for p in sim.player.plays)
                for sim in chosen.values()
            ),
            60,
            "the speakers of both chosen hamlets to play the recording",
        )
        heard = {n: sim.player.plays for n, sim in fleet.agents.items() if sim.player.plays}
    ctx.close()
    assert set(heard) == set(chosen), "only the chosen hamlets heard anything"
    for node, sim in chosen.items():
        pid, items = clips[sim.spec.hamlet]
        (clip,) = items  # the recording alone: no text was written
        assert clip["announcement"] == announcement
        # the recording (the stop click lands a little after RECORD_S), then audio.gap's silence
        recorded_s = clip["duration_ms"] / 1000 - e2e.config.audio.gap.total_seconds()
        assert RECORD_S - 0.5 < recorded_s < RECORD_S + 2, clip
        assert [p[:2] for p in sim.player.plays] == [(pid, clip["sha256"])], node
    conn = sqlite3.connect(e2e.config.state_dir / "journal.sqlite3")
    (recording,) = conn.execute("SELECT detail FROM events WHERE kind='recording'").fetchone()
    (issue,) = conn.execute("SELECT detail FROM events WHERE kind='issue'").fetchone()
    conn.close()
    assert json.loads(recording)["operator"] == "an"
    assert "(operator: an, approved by: -," in issue
