"""The daemon's collaborators: built once per run, in dependency order, from the running config.

Those that read the config per call get a getter (a reload swaps it under them); those that keep
a copy get the new one through `Collaborators.swap_config`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broadcastd import protocol
from broadcastd.controller.beacon import TimeBeacon
from broadcastd.controller.controls import Controls
from broadcastd.controller.dispatch import Dispatcher, SlotDue
from broadcastd.controller.inbound import NodeInbox
from broadcastd.controller.keyrotation import COMMAND as ROTATE
from broadcastd.controller.keyrotation import KeyRotations
from broadcastd.controller.operations import Health, Operations
from broadcastd.controller.receipts import Receipts
from broadcastd.controller.registry import NodeRegistry
from broadcastd.controller.revocation import COMMAND as REVOKE
from broadcastd.controller.revocation import Revocations
from broadcastd.controller.slotfeed import SlotFeed
from broadcastd.controller.telemetry import TelemetryBook
from broadcastd.controller.volumeschedule import VolumeSchedules
from broadcastd.errors import BroadcastdError
from broadcastd.journal.store import Journal
from broadcastd.plan.volume import SCHEDULE_EVENT
from broadcastd.render.renderer import build_renderer
from broadcastd.transport.bulk import BulkPublisher
from broadcastd.transport.link import LinkSettings, MqttLink, OnConnect, OnMessage
from broadcastd.transport.signingkeys import RotatingKey, SigningKeys

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Sequence
    from contextlib import AsyncExitStack

    from broadcastd.config import Config, LoadedConfig
    from broadcastd.controller.controlsocket import Peer
    from broadcastd.controller.embedded import BrokerLogin, BrokerSide
    from broadcastd.metrics import Metrics
    from broadcastd.render.renderer import Renderer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collaborators:
    """Everything the daemon's tasks run on; `assemble()` builds it."""

    broker_side: BrokerSide
    journal: Journal
    schedules: VolumeSchedules
    registry: NodeRegistry
    link: MqttLink
    bulk: BulkPublisher
    renderer: Renderer
    dispatcher: Dispatcher
    controls: Controls
    ops: Operations
    rotations: KeyRotations
    receipts: Receipts
    beacon: TimeBeacon
    telemetry: TelemetryBook
    inbox: NodeInbox
    feed: SlotFeed
    revocations: Revocations

    async def control(self, raw: dict[str, Any], peer: Peer | None = None) -> dict[str, Any]:
        """The control socket: a revocation is the broker's business, a key rotation the
        rotations', the rest operations'."""
        if raw.get("cmd") == REVOKE:
            return await self.revocations.handle(raw, peer)
        if raw.get("cmd") == ROTATE:
            return await self.rotations.handle(raw, peer)
        return await self.ops.handle(raw, peer)

    async def swap_config(
        self, old: LoadedConfig, new: LoadedConfig, *, replan: bool
    ) -> list[SlotDue]:
        """Hand a validated config to every collaborator that keeps a copy; returns the slots
        re-planned (none unless `replan`). Nodes gone from the config lose their broker login."""
        config = new.config
        self.dispatcher.replace_config(new)
        self.registry.replace_config(config)
        self.ops.replace_config(config)
        self.feed.replace_config(config)
        replanned = self.feed.replan(old, new) if replan else []
        gone = set(old.config.node_hamlets()) - set(config.node_hamlets())
        await self.broker_side.refresh(config, gone)
        if gone and self.broker_side.process is not None:
            self.revocations.record(sorted(gone), cause="removed from the config")
        return replanned


async def assemble(  # noqa: PLR0913 - what the daemon owns and hands down, each injected
    loaded: Callable[[], LoadedConfig],
    stack: AsyncExitStack,
    *,
    broker_side: BrokerSide,
    metrics: Metrics,
    queue: asyncio.Queue[SlotDue],
    ready: asyncio.Event,
    clock: Callable[[], float],
    engines: Sequence[str] | None,
) -> Collaborators:
    """Open the journal and start the broker (both closed by `stack`), then build the rest."""

    def current() -> Config:
        return loaded().config  # looked up per call: a reload swaps it

    config = current()
    keys = SigningKeys(config.signing.private_key_file)
    key = RotatingKey(keys, clock)  # the key active at each signature's time
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    journal = Journal.open(config.state_dir / "journal.sqlite3")
    stack.callback(journal.close)
    schedules = VolumeSchedules(journal.event_details(SCHEDULE_EVENT))
    login = await broker_side.start(config, stack)
    registry = NodeRegistry(config, metrics, now=clock, journal_cb=journal.record_transition)

    async def on_connect() -> None:
        # The rotation first: a node must trust a new key before a playlist signed with it
        # comes, and a broker that lost the retained rotation gets it back.
        try:
            await rotations.publish()
        except BroadcastdError as exc:
            log.warning("key rotation not published on connect: %s", exc)
        await dispatcher.on_connect()

    link = _link(
        config,
        login,
        clock,
        metrics,
        # Looked up per message: the inbox is built after (and from) the link.
        on_message=lambda topic, payload, props: inbox.on_message(topic, payload, props),  # noqa: PLW0108
        on_connect=on_connect,
    )
    bulk = BulkPublisher(link, login.bulk)
    renderer = build_renderer(config, metrics, engines=engines)
    dispatcher = Dispatcher(
        loaded(),
        link=link,
        audio=bulk,
        journal=journal,
        renderer=renderer,
        key=key,
        metrics=metrics,
        clock=clock,
        persist=broker_side.save,
        schedules=schedules.for_hamlet,
    )
    controls = Controls(
        config.commune.id,
        link=link,
        journal=journal,
        key=key,
        seq=dispatcher.seq,
        clock=clock,
        persist=broker_side.save,
    )
    telemetry = TelemetryBook(current, metrics, clock=clock)
    ops = Operations(
        config,
        dispatcher=dispatcher,
        controls=controls,
        journal=journal,
        registry=registry,
        renderer=renderer,
        metrics=metrics,
        clock=clock,
        health=lambda: Health(connected=link.connected.is_set(), ready=ready.is_set()),
        schedules=schedules,
        telemetry=lambda: telemetry.readings,
    )
    rotations = KeyRotations(
        current, keys, link=link, journal=journal, clock=clock, persist=broker_side.save
    )
    receipts = Receipts(
        lambda: current().commune.id, link=link, journal=journal, key=key, clock=clock
    )
    beacon = TimeBeacon(
        link,
        key,
        commune=lambda: current().commune.id,
        clock=clock,
        # looked up per beacon: a reload may change the heartbeat
        every_s=lambda: current().nodes.heartbeat.total_seconds(),  # noqa: PLW0108
    )
    inbox = NodeInbox(
        current,
        registry=registry,
        acks=ops.acks,
        metrics=metrics,
        receipts=receipts,
        key_acks=rotations.on_ack,
        on_online=beacon.soon,
        on_heartbeat=telemetry.on_heartbeat,
    )
    return Collaborators(
        broker_side=broker_side,
        journal=journal,
        schedules=schedules,
        registry=registry,
        link=link,
        bulk=bulk,
        renderer=renderer,
        dispatcher=dispatcher,
        controls=controls,
        ops=ops,
        rotations=rotations,
        receipts=receipts,
        beacon=beacon,
        telemetry=telemetry,
        inbox=inbox,
        feed=SlotFeed(config, queue, journal, metrics, clock=clock),
        revocations=Revocations(current, broker_side, journal, clock=clock),
    )


def _link(  # noqa: PLR0913 - the login, the clock and the two callbacks, each injected
    config: Config,
    login: BrokerLogin,
    clock: Callable[[], float],
    metrics: Metrics,
    *,
    on_message: OnMessage,
    on_connect: OnConnect,
) -> MqttLink:
    """The daemon's MQTT session: its retained online state, and offline as its Last Will."""
    topics = protocol.Topics(config.commune.id)
    return MqttLink(
        LinkSettings.from_url(
            login.url,
            client_id=f"broadcastd-{config.commune.id}",
            username=login.username,
            password=login.password,
            tls_ca=config.broker.ca_file,
            insecure_plaintext=config.broker.insecure_plaintext,
            keepalive=int(config.nodes.keepalive.total_seconds()),
            will=(topics.controller_state(), protocol.state_payload("offline", int(clock()))),
            online=(
                topics.controller_state(),
                protocol.state_payload(
                    "online", int(clock()), beacon_s=config.nodes.heartbeat.total_seconds()
                ),
            ),
            subscriptions=((topics.nodes_filter(), 1),),
        ),
        on_message,
        on_connect=on_connect,
        metrics_gauge=metrics.mqtt_connected,
    )
