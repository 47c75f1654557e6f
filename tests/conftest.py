"""Shared fixtures: a real mosquitto for the session, dedicated ones on demand, topic prefixes."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

from broadcastd.transport.broker import BrokerError, BrokerOptions, MosquittoProcess

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from broadcastd.transport.link import MqttLink


def _require_mosquitto() -> None:
    if shutil.which("mosquitto") is None:
        # Never skip: an MQTT test that silently does not run proves nothing.
        pytest.fail("mosquitto is not installed (apt-get install mosquitto); MQTT tests need it")


def _start(directory: Path, options: BrokerOptions) -> MosquittoProcess:
    broker = MosquittoProcess(directory, options)
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"could not start mosquitto: {exc}")
    return broker


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """One anonymous, non-persistent mosquitto for the whole run; `.host`, `.port`, `.url`."""
    _require_mosquitto()
    broker = _start(tmp_path_factory.mktemp("mosquitto"), BrokerOptions(port=0, persistence=False))
    yield broker
    broker.stop()


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A prefix no other test uses, so tests sharing the session broker never see each other."""
    return f"test/{request.node.name[:40]}/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., MosquittoProcess]]:
    """Start a dedicated mosquitto (persistence on by default) that a test may kill/restart.

    `make_broker(password_file=..., acl_file=..., persistence=False)`; the result has
    `.kill()` (SIGKILL), `.restart()` (same port, same persistence dir) and `.stop()`.
    """
    _require_mosquitto()
    started: list[MosquittoProcess] = []

    def make(**opts: object) -> MosquittoProcess:
        directory = tmp_path / f"broker{len(started)}"
        broker = _start(directory, BrokerOptions(port=0, **opts))
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.kill()


class Inbox:
    """Collects (topic, payload, properties) and lets a test wait for a topic."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, object]] = []
        self._changed = asyncio.Condition()

    async def __call__(self, topic: str, payload: bytes, props: object) -> None:
        async with self._changed:
            self.messages.append((topic, payload, props))
            self._changed.notify_all()

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topic]

    async def wait_for(self, topic: str, count: int = 1, within: float = 5.0) -> list[bytes]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.on(topic)) >= count)
        return self.on(topic)


@asynccontextmanager
async def running_link(link: MqttLink, *, wait: bool = True) -> AsyncIterator[MqttLink]:
    """Run a link in a task for the block; close it (and check run() ended) afterwards."""
    task = asyncio.create_task(link.run())
    try:
        if wait:
            await link.wait_connected(5)
        yield link
    finally:
        await asyncio.wait_for(link.close(), 5)
        assert task.done(), "close() must end run()"
        task.result()


@pytest.fixture
def new_inbox() -> Callable[[], Inbox]:
    """`inbox = new_inbox()` is an `on_message` handler that records and can wait for topics."""
    return Inbox


@pytest.fixture
def run_link() -> Callable[..., AbstractAsyncContextManager[MqttLink]]:
    """`async with run_link(link): ...` runs `link.run()` for the block, then closes it."""
    return running_link
