"""BulkPublisher against a real mosquitto: chunks go over the extra connections, and over the
main link whenever no bulk link is up."""

from __future__ import annotations

import asyncio
import uuid

from broadcastd.transport.bulk import BulkPublisher
from broadcastd.transport.link import LinkSettings, MqttLink


def count_publishes(*links: MqttLink) -> dict[str, int]:
    """client id -> publishes that link completed, counted from now on."""
    carried = {link.settings.client_id: 0 for link in links}
    for link in links:
        publish = link.publish

        async def counted(*args, _publish=publish, _name=link.settings.client_id, **kwargs):
            await _publish(*args, **kwargs)
            carried[_name] += 1

        link.publish = counted  # type: ignore[method-assign]
    return carried


def logins(count: int) -> list[tuple[str, str]]:
    """Bulk logins no other test on the session broker uses."""
    tag = uuid.uuid4().hex[:8]
    return [(f"bulk-{tag}-{i}", f"pw-{i}") for i in range(1, count + 1)]


def link_to(broker, inbox, subscribe: str | None = None) -> MqttLink:
    subscriptions = ((subscribe, 1),) if subscribe else ()
    client_id = f"t-{uuid.uuid4().hex[:8]}"
    return MqttLink(
        LinkSettings.from_url(broker.url, client_id=client_id, subscriptions=subscriptions), inbox
    )


async def test_audio_spreads_over_the_bulk_links_and_reaches_subscribers(
    mosquitto, topic_prefix, new_inbox, run_link
):
    seen = new_inbox()
    observer = link_to(mosquitto, seen, subscribe=f"{topic_prefix}/#")
    main = link_to(mosquitto, new_inbox())
    bulk_logins = logins(3)
    bulk = BulkPublisher(main, bulk_logins)
    carried = count_publishes(main, *bulk.links)
    async with run_link(observer), run_link(main):
        task = asyncio.create_task(bulk.run())
        try:
            for link in bulk.links:
                await link.wait_connected(5)
            topics = [f"{topic_prefix}/audio/{i}" for i in range(12)]
            await asyncio.gather(
                *(bulk.publish(t, t.encode(), retain=True, expiry=60) for t in topics)
            )
            for topic in topics:
                assert await seen.wait_for(topic) == [topic.encode()]
            # Spread over the bulk links; the controller's own link sent none of it.
            assert carried[main.settings.client_id] == 0
            assert sum(carried.values()) == len(topics)
            assert all(carried[link.settings.client_id] >= 1 for link in bulk.links)
        finally:
            await bulk.close()
            await asyncio.wait_for(task, 5)
    # Each bulk link is its own login and client id: a broker that ties the two together (as the
    # embedded one does) keeps them all connected, none taking over another's connection.
    assert [(link.settings.client_id, link.settings.username) for link in bulk.links] == [
        (user, user) for user, _ in bulk_logins
    ]
    assert all(
        link.settings.will is None and not link.settings.subscriptions for link in bulk.links
    )


async def test_without_bulk_links_the_main_link_carries_the_audio(
    mosquitto, topic_prefix, new_inbox, run_link
):
    seen = new_inbox()
    observer = link_to(mosquitto, seen, subscribe=f"{topic_prefix}/#")
    main = link_to(mosquitto, new_inbox())
    bulk = BulkPublisher(main, logins(2))  # never run: no bulk link is up
    carried = count_publishes(main, *bulk.links)
    async with run_link(observer), run_link(main):
        await bulk.publish(f"{topic_prefix}/audio/0", b"chunk", retain=True)
        assert await seen.wait_for(f"{topic_prefix}/audio/0") == [b"chunk"]
    assert carried == {main.settings.client_id: 1} | {
        link.settings.client_id: 0 for link in bulk.links
    }


async def test_without_logins_there_are_no_bulk_links(mosquitto, topic_prefix, new_inbox, run_link):
    seen = new_inbox()
    observer = link_to(mosquitto, seen, subscribe=f"{topic_prefix}/#")
    main = link_to(mosquitto, new_inbox())
    bulk = BulkPublisher(main)  # an external broker: broadcastd manages no logins there
    assert bulk.links == []
    carried = count_publishes(main)
    async with run_link(observer), run_link(main):
        await bulk.run()  # nothing to keep up: returns at once
        await bulk.publish(f"{topic_prefix}/audio/0", b"chunk", retain=True)
        assert await seen.wait_for(f"{topic_prefix}/audio/0") == [b"chunk"]
    assert carried == {main.settings.client_id: 1}
