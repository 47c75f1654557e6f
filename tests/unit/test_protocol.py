"""The MQTT contract: canonical bytes, signatures, every rejection reason, keys, node payloads."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from support.vector import (
    NOW,
    SEED,
    VECTOR_CANONICAL,
    VECTOR_PUBLIC,
    VECTOR_SIG,
    control_fields,
    vector_fields,
)

from broadcastd import protocol as p
from broadcastd.errors import BroadcastdError, ProtocolError
from broadcastd.protocol import payloads as pl


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


def vector_envelope(**over: object) -> dict[str, object]:
    return p.playlist_envelope(**(vector_fields() | over))


def check(payload: bytes, key: Ed25519PrivateKey, **over: object) -> p.Playlist | p.Control:
    kw: dict[str, object] = {"commune": "sang-moc", "hamlet": "ban-chuong", "now": NOW}
    kw.update(over)
    return p.verify(payload, key.public_key(), **kw)  # type: ignore[arg-type]


def reason(payload: bytes, key: Ed25519PrivateKey, **over: object) -> str:
    with pytest.raises(ProtocolError) as info:
        check(payload, key, **over)
    return info.value.reason


def test_canonical_bytes_and_signature_match_the_fixed_vector(key):
    env = vector_envelope()
    assert p.canonical_json(env) == VECTOR_CANONICAL
    signed = p.sign(env, key)
    assert signed["sig"] == VECTOR_SIG
    assert p.public_key_b64(key) == VECTOR_PUBLIC
    # The wire form is the canonical JSON of the signed envelope, Unicode as real UTF-8.
    wire = p.encode(signed)
    assert "Tiêm phòng".encode() in wire
    assert b"\\u" not in wire


def test_signature_is_standard_base64_of_64_bytes(key):
    sig = p.sign(vector_envelope(), key)["sig"]
    assert isinstance(sig, str)
    assert len(base64.b64decode(sig, validate=True)) == 64
    assert "-" not in sig
    assert "_" not in sig


def test_independent_verifier_accepts_the_vector():
    """Verify with nothing but the published public key and the documented recipe."""
    public = p.load_public_key(VECTOR_PUBLIC)
    public.verify(base64.b64decode(VECTOR_SIG), VECTOR_CANONICAL)  # raises if wrong


def test_roundtrip_with_unicode_titles(key):
    titles = ["Bản Chương — lũ quét", "Dao: Mùa vụ 🌾", "Tày Cao Lan", "中文"]
    items = [
        p.PlaylistItem(f"{n:064x}", 1000 + n, 1, 500, t, "vi", f"a-{n}")
        for n, t in enumerate(titles)
    ]
    signed = p.sign(vector_envelope(items=items), key)
    playlist = check(p.encode(signed), key)
    assert isinstance(playlist, p.Playlist)
    assert [i.title for i in playlist.items] == titles
    assert playlist.seq == 7
    assert playlist.status == "live"
    # Re-serialised with spaces and escaped Unicode, it still verifies (canonicalised on receipt).
    loose = json.dumps(signed, indent=2, ensure_ascii=True).encode()
    assert check(loose, key).id == "2026-11-24-noon-ban-chuong"


def test_envelope_without_status_and_seq_from_an_independent_controller(key):
    env = vector_envelope()
    del env["status"], env["seq"]
    playlist = check(p.encode(p.sign(env, key)), key)
    assert isinstance(playlist, p.Playlist)
    assert playlist.status == "live"
    assert playlist.seq is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hamlet", "na-lay"),
        ("play_at", 1795930201),
        ("priority", "emergency"),
        ("expires_at", 1795999999),
        ("items", []),
    ],
)
def test_a_tampered_field_breaks_the_signature(key, field, value):
    signed = p.sign(vector_envelope(), key)
    signed[field] = value
    assert reason(p.encode(signed), key) == "bad_signature"


def test_tampered_item_title(key):
    signed = p.sign(vector_envelope(), key)
    items = signed["items"]
    assert isinstance(items, list)
    items[0]["title"] = "Sơ tán ngay"
    assert reason(p.encode(signed), key) == "bad_signature"


def test_every_rejection_reason(key):
    good = vector_envelope()
    other = Ed25519PrivateKey.generate()
    assert reason(p.encode(good), key) == "unsigned"
    assert reason(p.encode({**good, "sig": ""}), key) == "unsigned"
    assert reason(p.encode(p.sign(good, other)), key) == "bad_signature"
    assert reason(p.encode({**good, "sig": "not base64!"}), key) == "bad_signature"
    assert reason(p.encode({**good, "sig": base64.b64encode(b"x" * 10).decode()}), key) == (
        "bad_signature"
    )
    assert reason(p.encode(p.sign(good, key)), key, commune="sin-ho") == "wrong_commune"
    assert reason(p.encode(p.sign(good, key)), key, hamlet="na-lay") == "wrong_hamlet"
    assert reason(p.encode(p.sign(good, key)), key, now=1795931400) == "expired"
    assert reason(p.encode(p.sign({**good, "v": 2}, key)), key) == "unsupported_version"
    assert reason(b"not json", key) == "malformed"
    assert reason(b"[1,2]", key) == "malformed"
    assert reason(b"\xff\xfe", key) == "malformed"
    assert reason(b"", key) == "malformed"
    # Correctly signed but with a wrong type: still refused, naming the field.
    bad = p.sign({**good, "play_at": "noon"}, key)
    with pytest.raises(ProtocolError, match="play_at") as info:
        check(p.encode(bad), key)
    assert info.value.reason == "malformed"


def test_expiry_boundary(key):
    wire = p.encode(p.sign(vector_envelope(), key))
    assert check(wire, key, now=1795931399.9).id
    assert reason(wire, key, now=1795931400.0) == "expired"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v":1,"v":1}',  # duplicate keys: two parsers could disagree
        b'{"v":1,"x":NaN}',
        b'{"v":1,"x":Infinity}',
        b'{"v":true}',
        b'{"v":1e400}',
        b"[" * 100_000,
        b'{"v":1,"sig":"' + b"A" * (p.MAX_ENVELOPE_BYTES) + b'"}',
        b'{"v":' + b"9" * 5000 + b"}",
    ],
)
def test_hostile_payloads_are_malformed_not_crashes(key, payload):
    assert reason(payload, key) in {"malformed", "unsupported_version"}


def test_lone_surrogate_is_malformed(key):
    signed = p.sign(vector_envelope(), key)
    text = p.encode(signed).decode().replace("Tiêm", "\\ud800")
    assert reason(text.encode(), key) in {"malformed", "bad_signature"}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_verify(payload):
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    with pytest.raises(ProtocolError):
        check(payload, key)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    )
)
def test_signed_junk_never_crashes_verify(obj):
    """Even correctly signed junk (a compromised or buggy controller) is refused cleanly."""
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    env = {"v": 1, "kind": "playlist", "junk": obj}
    with pytest.raises(ProtocolError):
        check(p.encode(p.sign(env, key)), key)


def test_builders_refuse_to_sign_malformed_envelopes():
    with pytest.raises(ProtocolError, match="chunks"):
        vector_envelope(items=[p.PlaylistItem("ab" * 32, 70000, 1, 1, "t", "vi", "a")])
    with pytest.raises(ProtocolError, match="priority"):
        vector_envelope(priority="urgent")
    with pytest.raises(ProtocolError, match="target"):
        p.control_envelope(
            commune="c", hamlet="h", control_id="x", action="cancel", issued_at=1, expires_at=2
        )
    with pytest.raises(ProtocolError, match="value"):
        p.control_envelope(
            commune="c",
            hamlet="h",
            control_id="x",
            action="volume",
            value=101,
            issued_at=1,
            expires_at=2,
        )


def test_control_roundtrip(key):
    env = p.control_envelope(
        **control_fields(control_id="volume-3", action="volume", value=40, seq=3)
    )
    ctl = check(p.encode(p.sign(env, key)), key)
    assert isinstance(ctl, p.Control)
    assert (ctl.action, ctl.value, ctl.target, ctl.seq, ctl.status) == (
        "volume",
        40,
        None,
        3,
        "live",
    )
    forged = {**p.sign(env, key), "value": 100}
    assert reason(p.encode(forged), key) == "bad_signature"


def test_topics_and_parse():
    t = p.Topics("sang-moc")
    sha = "0f" * 32
    assert t.playlist("ban-chuong") == "bcast/v1/sang-moc/hamlet/ban-chuong/playlist"
    assert t.control("ban-chuong") == "bcast/v1/sang-moc/hamlet/ban-chuong/control"
    assert t.audio(sha, 3) == f"bcast/v1/sang-moc/audio/{sha}/3"
    assert t.audio_filter() == "bcast/v1/sang-moc/audio/#"
    assert t.nodes_filter() == "bcast/v1/sang-moc/node/+/+"
    assert t.controller_state() == "bcast/v1/sang-moc/controller/state"
    assert t.parse(t.controller_state()) == ("controller_state",)
    assert t.parse(t.playlist("na-lay")) == ("playlist", "na-lay")
    assert t.parse(t.control("na-lay")) == ("control", "na-lay")
    assert t.parse(t.audio(sha, 12)) == ("audio", sha, "12")
    assert t.parse(t.node_state("bc-01")) == ("node_state", "bc-01")
    assert t.parse(t.node_heartbeat("bc-01")) == ("node_heartbeat", "bc-01")
    assert t.parse(t.node_ack("bc-01")) == ("node_ack", "bc-01")
    for junk in [
        "bcast/v1/sin-ho/controller/state",
        f"bcast/v1/sang-moc/audio/{sha.upper()}/1",
        f"bcast/v1/sang-moc/audio/{sha}/x",
        "bcast/v1/sang-moc/node/bc-01/other",
        "bcast/v1/sang-moc/node//ack",
        "bcast/v1/sang-moc/hamlet/a/b/playlist",
        "",
    ]:
        assert t.parse(junk) is None


def test_chunking():
    assert p.CHUNK_SIZE == 65536
    assert p.chunk_count(0) == 0
    assert p.chunk_count(1) == 1
    assert p.chunk_count(65536) == 1
    assert p.chunk_count(65537) == 2
    data = os.urandom(3 * 65536 + 5)
    chunks = list(p.iter_chunks(data))
    assert [len(c) for c in chunks] == [65536, 65536, 65536, 5]
    assert b"".join(chunks) == data


def test_key_file_is_0600_and_never_overwritten(tmp_path):
    path = tmp_path / "deep" / "dir" / "ed25519.key"
    key = p.generate_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert p.public_key_b64(p.load_private_key(path)) == p.public_key_b64(key)
    before = path.read_bytes()
    with pytest.raises(p.KeyFileExistsError, match="exists, not overwritten") as info:
        p.generate_private_key(path)
    assert info.value.public_key == p.public_key_b64(key)
    assert path.read_bytes() == before


def test_raw_32_byte_key_file_loads(tmp_path):
    path = tmp_path / "raw.key"
    path.write_bytes(SEED)
    assert p.public_key_b64(p.load_private_key(path)) == VECTOR_PUBLIC


def test_key_loading_errors_are_clear(tmp_path):
    with pytest.raises(BroadcastdError, match="missing"):
        p.load_private_key(tmp_path / "nope.key")
    junk = tmp_path / "junk.key"
    junk.write_text("hello")
    with pytest.raises(BroadcastdError, match="not a PEM"):
        p.load_private_key(junk)
    with pytest.raises(BroadcastdError, match="base64"):
        p.load_public_key("not base64!!")
    with pytest.raises(BroadcastdError, match="32 bytes"):
        p.load_public_key(base64.b64encode(b"short").decode())
    assert p.public_key_b64(p.load_public_key(VECTOR_PUBLIC)) == VECTOR_PUBLIC


def test_node_payloads_roundtrip():
    ack = pl.parse_ack(pl.ack_payload("pl-1", "rejected", 1795928400.7, "bad_signature"))
    assert ack == pl.AckMessage("pl-1", "rejected", 1795928400, "bad_signature")
    hb = pl.parse_heartbeat(pl.heartbeat_payload(1795928400, 12.34, -71, 80))
    assert (hb.ts, hb.uptime_s, hb.rssi, hb.volume) == (1795928400.0, 12.3, -71, 80)
    assert pl.parse_heartbeat(pl.heartbeat_payload(1, 0, None, 0)).rssi is None
    st_ = pl.parse_state(pl.state_payload("offline", 1795928400, "0.1.0"))
    assert st_ == pl.StateMessage("offline", 1795928400.0, "0.1.0")
    assert json.loads(pl.state_payload("online", 5)) == {
        "state": "online",
        "ts": 5,
        "version": None,
    }
    assert p.ack_payload is pl.ack_payload, "the wire module re-exports the node payload builders"


@pytest.mark.parametrize(
    ("parser", "payload", "reason"),
    [
        (pl.parse_ack, b'{"playlist":"x","status":"eaten","ts":1}', "bad_status"),
        (pl.parse_ack, b'{"playlist":5,"status":"played","ts":1}', "bad_playlist"),
        (pl.parse_ack, b'{"playlist":"x","status":"played","ts":true}', "bad_ts"),
        (pl.parse_ack, b'{"playlist":"x","status":"played","ts":1e999}', "bad_ts"),
        (pl.parse_ack, b'{"playlist":"x","status":"played","ts":' + b"9" * 4000 + b"}", "bad_ts"),
        (
            pl.parse_ack,
            b'{"playlist":"' + b"x" * 1_000_000 + b'","status":"played","ts":1}',
            "oversize",
        ),
        (
            pl.parse_ack,
            b'{"playlist":"x","playlist":"y","status":"played","ts":1}',
            "duplicate_key",
        ),
        # Issue 23 item 4: an id outside the id grammar is refused before it is stored or shown.
        (pl.parse_ack, b'{"playlist":"x [/bold]","status":"played","ts":1}', "bad_playlist"),
        (
            pl.parse_ack,
            b'{"playlist":"\\u001b[2J\\u001b[H[green]ok[/green]","status":"played","ts":1}',
            "bad_playlist",
        ),
        (pl.parse_ack, b'{"playlist":"b1\\n","status":"played","ts":1}', "bad_playlist"),
        (pl.parse_ack, b'{"playlist":"-b1","status":"played","ts":1}', "bad_playlist"),
        (pl.parse_ack, b'{"playlist":"B1","status":"played","ts":1}', "bad_playlist"),
        (pl.parse_ack, b'{"playlist":"","status":"played","ts":1}', "bad_playlist"),
        (pl.parse_heartbeat, b'{"ts":1,"uptime_s":1,"rssi":5,"volume":50}', "bad_rssi"),
        (pl.parse_heartbeat, b'{"ts":1,"uptime_s":1,"rssi":null,"volume":500}', "bad_volume"),
        (pl.parse_heartbeat, b'{"ts":-1,"uptime_s":1,"rssi":null,"volume":5}', "bad_ts"),
        (pl.parse_heartbeat, b'{"ts":NaN}', "not_finite"),
        (pl.parse_state, b'{"state":"asleep","ts":1}', "bad_state"),
        (pl.parse_state, b'{"state":"online","ts":1,"version":[1]}', "bad_version"),
        (pl.parse_state, b"\x00\x01", "not_json"),
        (pl.parse_state, b"[1]", "not_object"),
    ],
)
def test_node_payload_parsers_are_strict(parser, payload, reason):
    with pytest.raises(ProtocolError) as info:
        parser(payload)
    assert info.value.reason == reason


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_node_payload_parsers_never_crash(payload):
    for parser in (pl.parse_ack, pl.parse_heartbeat, pl.parse_state):
        with contextlib.suppress(ProtocolError):
            parser(payload)


def test_keygen_command_creates_once_and_never_overwrites(tmp_path, capsys):
    from broadcastd.cli.main import run as cli  # noqa: PLC0415 - the CLI is what this test drives

    config = tmp_path / "etc" / "broadcastd.yaml"
    config.parent.mkdir()
    config.write_text("commune: {id: x}\nsigning: {private_key_file: keys/ed25519.key}\n")
    assert cli(["keygen", "-c", str(config)]) == 0
    printed = capsys.readouterr().out.strip()
    key_file = tmp_path / "etc" / "keys" / "ed25519.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert printed == p.public_key_b64(p.load_private_key(key_file))
    before = key_file.read_bytes()
    assert cli(["keygen", "-c", str(config)]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == printed  # still tells the technician which key is in place
    assert "exists, not overwritten" in err
    assert "Traceback" not in err
    assert key_file.read_bytes() == before


def test_keygen_without_a_key_path_names_the_line(tmp_path, capsys):
    from broadcastd.cli.main import run as cli  # noqa: PLC0415 - the CLI is what this test drives

    config = tmp_path / "c.yaml"
    config.write_text("commune: {id: x}\nsigning: {}\n")
    assert cli(["keygen", "-c", str(config)]) == 78
    err = capsys.readouterr().err
    assert f"{config}:2:10: signing.private_key_file" in err
