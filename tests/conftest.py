"""Shared fixtures: a real mosquitto for the session, dedicated ones on demand, topic prefixes.

The helpers behind them live in `support` (tests/support/), the one place tests import from."""

from __future__ import annotations

import shutil
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from support.mqtt import Inbox, running_link
from support.soak import SOAK

from broadcastd.transport.broker import BrokerError, MosquittoProcess
from broadcastd.transport.brokerconf import BrokerOptions
from broadcastd.transport.credentials import Credentials, write_broker_files

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from broadcastd.config import Config
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

    def make(**opts: Any) -> MosquittoProcess:
        directory = tmp_path / f"broker{len(started)}"
        broker = _start(directory, BrokerOptions(port=0, **opts))
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.kill()


@pytest.fixture
def secured_broker(
    tmp_path: Path, make_broker: Callable[..., MosquittoProcess]
) -> Callable[..., tuple[MosquittoProcess, Credentials]]:
    """`secured_broker(config, persistence=False)`: a dedicated mosquitto that admits only the
    config's generated users, under its generated ACL; with their credentials."""

    def make(config: Config, **opts: Any) -> tuple[MosquittoProcess, Credentials]:
        passwd, acl, creds = write_broker_files(config, tmp_path / "broker-files")
        return make_broker(password_file=passwd, acl_file=acl, **opts), creds

    return make


@pytest.fixture
def new_inbox() -> Callable[[], Inbox]:
    """`inbox = new_inbox()` is an `on_message` handler that records and can wait for topics."""
    return Inbox


@pytest.fixture
def run_link() -> Callable[..., AbstractAsyncContextManager[MqttLink]]:
    """`async with run_link(link): ...` runs `link.run()` for the block, then closes it."""
    return running_link


@pytest.fixture
def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters for console accounts: tests of the console's logic make hundreds
    of guesses, and the real cost is the hash's business, not theirs."""
    # Imported here: only console tests pay for loading the console.
    from support import console as cs  # noqa: PLC0415

    from broadcastd.console import accounts  # noqa: PLC0415

    monkeypatch.setattr(accounts, "_hasher", cs.QUICK_HASHER)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cs.QUICK_HASHER.hash("dummy"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `soak_only` take minutes: `make soak` runs them, `make test` deselects them
    (reported as deselected, never as skipped)."""
    if SOAK:
        return
    kept = [item for item in items if item.get_closest_marker("soak_only") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
