"""Hypothesis: signing round-trips any Unicode envelope; hostile node payloads are counted, never
crash the daemon's router; any YAML document gives a Config or a ConfigError, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given
from hypothesis import strategies as st
from support.e2e import write_commune
from support.soak import examples

from broadcastd import protocol
from broadcastd.config import Config, load_config
from broadcastd.controller.inbound import NodeInbox
from broadcastd.controller.operations import Health, Operations
from broadcastd.controller.registry import NodeRegistry
from broadcastd.errors import ConfigError, ProtocolError
from broadcastd.journal.store import Journal
from broadcastd.metrics import Metrics
from broadcastd.models import ACK_STATUSES
from broadcastd.protocol import payloads

if TYPE_CHECKING:
    from collections.abc import Iterator

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()

# -- canonical JSON: sign -> wire -> verify ----------------------------------------------------

ident = st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s)
texts = st.text(max_size=200)  # any Unicode (hypothesis excludes lone surrogates by default)


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, object]:
    play_at = draw(st.integers(10**9, 2 * 10**9))
    items = [
        protocol.PlaylistItem(
            sha256=draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
            bytes=draw(st.integers(1, 10**6)),
            chunks=1,
            duration_ms=draw(st.integers(1, 10**6)),
            title=draw(texts),
            lang=draw(st.sampled_from(["vi", "dao", "tày", "hmn"])),
            announcement=draw(ident),
        )
        for _ in range(draw(st.integers(1, 4)))
    ]
    try:
        return protocol.playlist_envelope(
            commune=draw(ident),
            hamlet=draw(ident),
            playlist_id=draw(ident),
            slot=draw(ident),
            play_at=play_at,
            expires_at=play_at + draw(st.integers(0, 10**5)),
            priority=draw(st.sampled_from(protocol.PRIORITIES)),
            issued_at=draw(st.integers(0, play_at)),
            items=items,
            status=draw(st.sampled_from(protocol.STATUSES)),
            seq=draw(st.none() | st.integers(0, 2**53)),
        )
    except ProtocolError:
        assume(False)  # an envelope the contract forbids is never signed
        raise


@examples(100, 2000)
@given(env=envelopes(), where=st.integers(0, 10**6))
def test_signed_unicode_envelope_round_trips_and_any_text_change_breaks_it(env, where):
    signed = protocol.sign(env, KEY)
    wire = protocol.encode(signed)
    assert protocol.encode(json.loads(wire)) == wire  # canonical: re-encoding is byte-stable
    got = protocol.verify(
        wire, PUBLIC, commune=env["commune"], hamlet=env["hamlet"], now=env["play_at"] - 1
    )
    assert isinstance(got, protocol.Playlist)
    assert got.unsigned() == env
    assert [i.title for i in got.items] == [i["title"] for i in env["items"]]
    # change one item title by one character: the signature no longer matches
    tampered = copy.deepcopy(signed)
    items: Any = tampered["items"]
    title = items[where % len(items)]["title"]
    items[where % len(items)]["title"] = title + "x" if title else "x"
    with pytest.raises(ProtocolError) as exc:
        protocol.verify(
            protocol.encode(tampered),
            PUBLIC,
            commune=env["commune"],
            hamlet=env["hamlet"],
            now=env["play_at"] - 1,
        )
    assert exc.value.reason == "bad_signature"


# -- inbound node topics: the daemon's router --------------------------------------------------


class Router:
    """The daemon's inbound wiring as `run()` builds it, minus the broker: its real NodeInbox."""

    def __init__(self, tmp_path: Any) -> None:
        e2e = write_commune(tmp_path, hamlets=2, nodes_per_hamlet=2)
        self.metrics = Metrics()
        self.journal = Journal.open(tmp_path / "journal.sqlite3")
        registry = NodeRegistry(e2e.config, self.metrics, now=e2e.clock, journal_cb=None)
        operations = Operations(
            e2e.config,
            dispatcher=None,  # type: ignore[arg-type] # acks never dispatch
            controls=None,  # type: ignore[arg-type] # nor send controls
            journal=self.journal,
            registry=registry,
            renderer=None,  # type: ignore[arg-type] # nor render
            metrics=self.metrics,
            clock=e2e.clock,
            health=lambda: Health(connected=False, ready=False),
        )
        self.inbox = NodeInbox(
            lambda: e2e.config, registry=registry, acks=operations.acks, metrics=self.metrics
        )
        self.topics = protocol.Topics(e2e.config.commune.id)
        self.nodes = e2e.node_ids
        self.loop = asyncio.new_event_loop()

    def bad(self) -> float:
        return sum(
            s.value
            for m in self.metrics.registry.collect()
            if m.name == "broadcastd_bad_messages"
            for s in m.samples
            if s.name.endswith("_total")
        )

    def send(self, topic: str, payload: bytes) -> None:
        self.loop.run_until_complete(self.inbox.on_message(topic, payload, None))

    def close(self) -> None:
        self.journal.close()
        self.loop.close()


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    r = Router(tmp_path_factory.mktemp("router"))
    yield r
    r.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from(["online", "offline", "", "ONLINE"]) | json_values,
        "ts": st.integers(-(2**70), 2**70) | st.floats() | json_values,
        "version": json_values,
        "uptime_s": st.floats() | json_values,
        "rssi": st.integers(-200, 10) | json_values,
        "volume": st.integers(-5, 200) | json_values,
        "playlist": st.text(max_size=200) | json_values,
        "status": st.sampled_from(ACK_STATUSES) | json_values,
        "detail": st.text(max_size=2000) | json_values,
    },
)
hostile_payloads = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_valid.map(lambda v: json.dumps(v, ensure_ascii=False).encode())
    | st.binary(min_size=5000, max_size=9000)  # over the node payload bound
)
PARSERS = {
    "state": payloads.parse_state,
    "heartbeat": payloads.parse_heartbeat,
    "ack": payloads.parse_ack,
}


@examples(300, 5000)
@given(
    kind=st.sampled_from(["state", "heartbeat", "ack", "other", "raw"]),
    node_pick=st.integers(0, 10),
    raw_topic=st.text(max_size=60),
    payload=hostile_payloads,
)
def test_any_payload_on_any_inbound_topic_is_counted_or_accepted_never_a_crash(
    router, kind, node_pick, raw_topic, payload
):
    known = node_pick < len(router.nodes)
    node = router.nodes[node_pick] if known else f"intruder-{node_pick}"
    if kind == "raw":
        topic = raw_topic
    elif kind == "other":
        topic = f"{router.topics.root}/node/{node}/{raw_topic or 'x'}"
    else:
        topic = getattr(router.topics, f"node_{kind}")(node)
    parsed = router.inbox.parse(topic)
    before = router.bad()
    router.send(topic, payload)  # must not raise
    delta = router.bad() - before
    if parsed is None or parsed[0] not in PARSERS or parsed[1] not in router.nodes:
        assert delta == 1, (topic, payload[:80])
        return
    try:
        PARSERS[parsed[0]](payload)
    except ProtocolError:
        assert delta == 1, (topic, payload[:80])
    else:
        assert delta <= 1  # a valid but out-of-order state is counted too; nothing twice


# -- YAML documents -> Config | ConfigError ----------------------------------------------------

BASE = yaml.safe_load(
    """
commune: {id: c1, name: Xã Một, timezone: Asia/Ho_Chi_Minh}
signing: {private_key_file: ed25519.key}
state_dir: state
slots: {noon: {at: '11:30', max_duration: 15m, lead: 30m, catch_up: 20m}}
tts: {engines: [espeak], timeout: 10s}
hamlets:
  - {id: h1, name: Bản Một, households: 20, nodes: [{id: n1, households: 20}]}
announcements:
  - {id: a1, title: Tin, text: {vi: Thông báo}, slots: [noon]}
"""
)
yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["11:30", "25:00", "15m", "-1s", "all", "vi", "noon", "../x.ogg"]),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=10,
)


def _paths(tree: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_configs(draw: st.DrawFn) -> str:
    tree = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(tree)))
        if not path:
            continue
        parent: Any = tree
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent[path[-1]] = draw(yaml_values)
        elif isinstance(parent, dict):
            del parent[path[-1]]
    return yaml.safe_dump(tree, allow_unicode=True)


documents = (
    st.text(max_size=400)
    | yaml_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True))
    | mutated_configs()
    | st.sampled_from(["a: &x [*x]", "!!python/object:os.system {}", "a: 1\na: 2", "\ufeff{"])
)


def test_the_base_document_is_valid(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(BASE, allow_unicode=True), encoding="utf-8")
    protocol.generate_private_key(tmp_path / "ed25519.key")
    assert isinstance(load_config(tmp_path / "c.yaml").config, Config)


@examples(150, 3000)
@given(doc=documents)
def test_any_yaml_document_is_a_config_or_a_config_error(tmp_path_factory, doc):
    root = tmp_path_factory.mktemp("yaml")
    protocol.generate_private_key(root / "ed25519.key")
    path = root / "c.yaml"
    path.write_text(doc, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(ConfigError):
        assert isinstance(load_config(path).config, Config)
