"""`MqttLink`: one long-lived MQTT v5 connection that reconnects by itself.

aiomqtt never reconnects, so `run()` owns the reconnect loop; the aiomqtt client lives only
inside that loop's `async with`, so no half-open client outlives a drop. Sessions are persistent
(`clean_start=False` + `SessionExpiryInterval`) so QoS 1 messages queued by the broker while a
speaker's 3G link was down are delivered when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broadcastd.errors import LinkError
from broadcastd.transport.linksettings import LinkSettings as LinkSettings
from broadcastd.transport.linksettings import failure_message, tls_context

if TYPE_CHECKING:
    from prometheus_client import Gauge

log = logging.getLogger(__name__)


class _LateAcks(logging.Filter):
    """aiomqtt logs a SUBACK or UNSUBACK that arrives after its caller stopped waiting (a stalled
    3G link outlasts the wait, and the caller moved on) as an exception with a traceback. That is
    expected on a weak link, so it becomes one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        late = record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
        if late and str(record.msg).startswith("Unexpected message ID"):
            record.msg = f"{record.msg}: it came after the wait for it ended"
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# aiomqtt's (and paho's) own log lines, with late acknowledgements told in one line.
_client_log = logging.getLogger(f"{__name__}.client")
_client_log.addFilter(_LateAcks())

OnMessage = Callable[[str, bytes, Properties | None], Awaitable[None]]
OnConnect = Callable[[], Awaitable[None]]

# aiomqtt warns above 10 pending calls; a playlist with its audio chunks is far more than that.
_PENDING_CALLS_THRESHOLD = 10_000
# MQTT v5 Receive Maximum, sent in CONNECT: how many QoS 1 messages the broker may have in flight
# to us before it waits for our PUBACKs. Absent, mosquitto applies its max_inflight_messages (20),
# and refills the window one PUBACK per pass of its loop: the daemon, where every node's acks and
# heartbeats arrive, received 1000 `ready` acks 0.3-0.5 s later than with this (the spec's own
# default). A node's queue is its own playlists and the chunks it asked for.
RECEIVE_MAXIMUM = 65535


class MqttLink:
    """Keeps one MQTT connection up forever; routes inbound messages to one handler."""

    def __init__(
        self,
        settings: LinkSettings,
        on_message: OnMessage,
        *,
        on_connect: OnConnect | None = None,
        metrics_gauge: Gauge | None = None,
    ) -> None:
        self.settings = settings
        self._on_message = on_message
        self._on_connect = on_connect
        self._gauge = metrics_gauge
        self.connected = asyncio.Event()
        self.connects = 0  # successful connections so far (reconnects = connects - 1)
        self.handler_failures = 0  # messages whose handler raised
        self._client: aiomqtt.Client | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()  # set when the current connection ends
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False

    async def run(self) -> None:
        """Connect, announce, subscribe and route messages; reconnect with backoff on any error."""
        if self._running:
            raise LinkError("MqttLink.run() is already running")
        self._running = True
        self._stopped.clear()
        failures = 0
        try:
            while not self._closing.is_set():
                before = self.connects
                try:
                    await self._session()
                except aiomqtt.MqttError as exc:
                    # str(): a log record holding the exception would pin its frames and sockets
                    log.log(*failure_message(self.settings, exc))
                if self.connects != before:
                    failures = 0  # the link was up: start the backoff from the beginning
                if self._closing.is_set():
                    break
                delay = self._backoff(failures)
                failures += 1
                log.info("mqtt: reconnecting to %s in %.1fs", self.settings.url, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
        finally:
            self._running = False
            self._stopped.set()

    def _backoff(self, failures: int) -> float:
        s = self.settings
        ceiling = min(s.backoff_max, s.backoff_initial * (2 ** min(failures, 30)))
        # Jitter spreads a fleet of speakers that all lost the broker at the same moment.
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography

    def _make_client(self) -> aiomqtt.Client:
        s = self.settings
        connect_props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect_props.SessionExpiryInterval = s.session_expiry
        connect_props.ReceiveMaximum = RECEIVE_MAXIMUM
        will = None
        if s.will is not None:
            will = aiomqtt.Will(topic=s.will[0], payload=s.will[1], qos=1, retain=True)
        tls = tls_context(s.tls_ca) if s.tls else None
        client = aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password,
            identifier=s.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            keepalive=s.keepalive,
            # aiomqtt's default (clean start on first connect) would discard the session the
            # broker kept for us, and with it every QoS 1 message queued while we were away.
            clean_start=False,
            properties=connect_props,
            tls_context=tls,
            transport="websockets" if s.websocket_path is not None else "tcp",
            websocket_path=s.websocket_path,
            timeout=10,
            logger=_client_log,
            max_queued_incoming_messages=0,  # unbounded: a handler may be slow, never drop
            max_queued_outgoing_messages=0,
            # Without it, a PUBACK followed by our own publish (an ack) waits ~40 ms for the
            # broker's delayed TCP ACK (Nagle): a node answering 1000 messages took 45 s.
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        client.pending_calls_threshold = _PENDING_CALLS_THRESHOLD
        return client

    async def _session(self) -> None:
        """One connection, from CONNECT to its end. Raises MqttError when the link drops."""
        self._lost.clear()
        client = self._make_client()
        self._consumer = None
        try:
            async with client:
                try:
                    await self._serve(client)
                except asyncio.CancelledError:
                    self._disconnect_with_will(client)
                    raise
                # Closing: leaving `async with` sends DISCONNECT (reason 0), so no Last Will.
        finally:
            self._client = None
            self._lost.set()
            self.connected.clear()
            if self._gauge is not None:
                self._gauge.set(0)
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                consumer.cancel()  # no-op when it already ended
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await consumer  # also marks an ending MqttError as retrieved

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Announce, subscribe, hand over to the consumer; return when closing or dropped."""
        self._client = client
        self.connects += 1
        if self.settings.online is not None:
            topic, payload = self.settings.online
            await client.publish(topic, payload, qos=1, retain=True)
        for topic_filter, qos in self.settings.subscriptions:
            granted = await client.subscribe(topic_filter, qos)
            if any(getattr(code, "is_failure", False) for code in granted):
                # Usually the ACL: the link stays up, but this filter delivers nothing.
                log.error("mqtt: broker refused subscription to %s: %s", topic_filter, granted)
        # Logged once announced and subscribed: a retained `online` is then on the broker.
        log.info("mqtt: connected to %s as %s", self.settings.url, self.settings.client_id)
        if self.settings.plaintext_exposed:
            log.warning(
                "mqtt: %s is plain MQTT beyond loopback (insecure_plaintext): the password of %r"
                " and every message cross the network in clear",
                self.settings.url,
                self.settings.username,
            )
        self.connected.set()
        if self._gauge is not None:
            self._gauge.set(1)
        consumer = asyncio.create_task(self._consume(client), name="mqtt-consume")
        self._consumer = consumer
        if self._on_connect is not None:
            await self._run_hook()
        closing = asyncio.create_task(self._closing.wait(), name="mqtt-closing")
        try:
            await asyncio.wait({consumer, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        if consumer.done():
            consumer.result()  # re-raises the MqttError that ended the connection

    def _disconnect_with_will(self, client: aiomqtt.Client) -> None:
        """Cancelled without close(): we are going away uncleanly (a crash, a TaskGroup
        failure), so ask the broker to publish our Last Will rather than leave a stale
        retained `online` behind. aiomqtt has no API for the reason code, hence `_client`."""
        if self.settings.will is None:
            return
        reason = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        client._client.disconnect(reasoncode=reason)  # noqa: SLF001 - see docstring

    async def _run_hook(self) -> None:
        assert self._on_connect is not None  # noqa: S101 - checked by the caller
        try:
            await self._on_connect()
        except LinkError as exc:
            log.warning("mqtt: on_connect could not finish, the link dropped: %s", exc)
        except Exception:
            log.exception("mqtt: on_connect hook failed")

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = b"" if payload is None else str(payload).encode()
            try:
                await self._on_message(message.topic.value, bytes(payload), message.properties)
            except Exception:
                # One bad message (or handler bug) must never take the link down.
                self.handler_failures += 1
                log.exception("mqtt: handler failed for message on %s", message.topic.value)

    async def wait_connected(self, timeout: float) -> None:  # noqa: ASYNC109 - part of the link API, turned into LinkError
        """Wait until connected; raises LinkError after `timeout` seconds."""
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            raise LinkError(f"not connected to {self.settings.url} after {timeout:.1f}s") from None

    async def publish(  # noqa: PLR0913 - the MQTT publish options, all keyword-only
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        expiry: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - bounds the PUBACK wait, raises LinkError
    ) -> None:
        """Publish and wait for the broker's PUBACK; LinkError if disconnected or too slow."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise LinkError(f"cannot publish to {topic}: not connected to {self.settings.url}")
        props = None
        if expiry is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.MessageExpiryInterval = max(1, int(expiry))
        lost = self._lost
        sending = asyncio.create_task(
            client.publish(
                topic, payload, qos=qos, retain=retain, properties=props, timeout=timeout
            )
        )
        dropped = asyncio.create_task(lost.wait())
        try:
            done, _ = await asyncio.wait(
                {sending, dropped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            dropped.cancel()
            if not sending.done():
                sending.cancel()
        if sending in done:
            try:
                sending.result()
            except aiomqtt.MqttError as exc:
                raise LinkError(f"publish to {topic} failed: {exc}") from None
            return
        if dropped in done:
            raise LinkError(f"publish to {topic} failed: connection lost")
        raise LinkError(f"publish to {topic} not acknowledged within {timeout:.1f}s")

    async def subscribe(self, filters: list[str], *, qos: int = 1, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - bounds the SUBACK wait
        """Subscribe now, in one SUBSCRIBE packet. Not restored by a reconnect that lost the
        session: callers re-subscribe from `on_connect`. LinkError if disconnected."""
        client = self._client
        if not filters:
            return
        if client is None or not self.connected.is_set():
            raise LinkError(f"cannot subscribe: not connected to {self.settings.url}")
        await self._until_lost(
            client.subscribe([(f, qos) for f in filters], timeout=timeout), "subscribe"
        )

    async def unsubscribe(self, filters: list[str], *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - bounds the UNSUBACK wait
        """Unsubscribe now; LinkError if disconnected (the filters then die with the session)."""
        client = self._client
        if not filters:
            return
        if client is None or not self.connected.is_set():
            raise LinkError(f"cannot unsubscribe: not connected to {self.settings.url}")
        await self._until_lost(client.unsubscribe(filters, timeout=timeout), "unsubscribe")

    async def _until_lost(self, call: Coroutine[Any, Any, object], what: str) -> None:
        """Wait for `call`'s acknowledgement, or raise LinkError as soon as the connection
        drops: a caller (often a message handler) must not sit out the whole timeout on a link
        that is gone, and its session's reconnect waits for the handler."""
        lost = self._lost
        acked = asyncio.create_task(call)
        dropped = asyncio.create_task(lost.wait())
        try:
            done, _ = await asyncio.wait({acked, dropped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            dropped.cancel()
            if not acked.done():
                acked.cancel()
        if acked not in done:
            raise LinkError(f"{what} failed: connection lost")
        try:
            acked.result()
        except aiomqtt.MqttError as exc:
            raise LinkError(f"{what} failed: {exc}") from None

    async def close(self, final: tuple[str, bytes] | None = None) -> None:
        """Publish `final` (retained) if connected, then disconnect cleanly: no Last Will."""
        if final is not None and self.connected.is_set():
            topic, payload = final
            try:
                await self.publish(topic, payload, retain=True, timeout=5.0)
            except LinkError as exc:
                log.warning("mqtt: could not publish final state to %s: %s", topic, exc)
        self._closing.set()
        if self._running:
            await self._stopped.wait()
