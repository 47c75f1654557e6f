"""Ids, host:port, language tags and hashes must match whole: `re.match(...$)` let a final
newline through, so `id: "b1\\n"` passed `check` and wrote an ACL with an empty user
(issue 23, item 7). Each pattern is tried with a trailing newline, where it is used."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from broadcastd import protocol
from broadcastd.config import load_config
from broadcastd.errors import ConfigError, ProtocolError
from broadcastd.node.settings import load_node_config

if TYPE_CHECKING:
    from pathlib import Path

GOOD = {
    "commune_id": "thu",
    "node_id": "b1",
    "listen": "127.0.0.1:1883",
    "lang": "vi",
    "at": "11:30",
    "max_duration": "15m",
    "bitrate": "32k",
    "url": "mqtt://127.0.0.1:1883",
}


def q(value: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is one), escapes and all."""
    return json.dumps(value)


def commune(tmp_path: Path, **over: str) -> Path:
    v = {**GOOD, **over}
    path = tmp_path / "c.yaml"
    path.write_text(
        f"commune: {{id: {q(v['commune_id'])}, name: Thử}}\n"
        f"broker: {{mode: external, url: {q(v['url'])}, listen: {q(v['listen'])}}}\n"
        "signing: {private_key_file: key}\n"
        "state_dir: state\n"
        f"slots: {{noon: {{at: {q(v['at'])}, max_duration: {q(v['max_duration'])}}}}}\n"
        f"audio: {{bitrate: {q(v['bitrate'])}}}\n"
        "hamlets:\n"
        f"  - {{id: ban-a, name: A, households: 5, languages: [{q(v['lang'])}],\n"
        f"     nodes: [{{id: {q(v['node_id'])}, households: 5}}]}}\n",
        encoding="utf-8",
    )
    return path


def test_the_good_values_load(tmp_path):
    assert load_config(commune(tmp_path), probe_media=False).config.commune.id == "thu"


# Times and durations are parsed into numbers, so spaces around them are allowed on purpose;
# every value below is used as the string it is (in topics, the ACL, ffmpeg's argv, URLs).
AS_WRITTEN = sorted(set(GOOD) - {"at", "max_duration"})


@pytest.mark.parametrize("field", AS_WRITTEN)
def test_a_trailing_newline_is_refused_in_every_config_pattern(tmp_path, field):
    path = commune(tmp_path, **{field: GOOD[field] + "\n"})
    with pytest.raises(ConfigError) as info:
        load_config(path, probe_media=False)
    assert len(info.value.problems) == 1
    assert "\\n" in str(info.value.problems[0])  # shown escaped, on one line
    assert "\n" not in str(info.value)


def test_node_yaml_refuses_an_id_with_a_trailing_newline(tmp_path):
    key = protocol.generate_private_key(tmp_path / "key")
    path = tmp_path / "node.yaml"
    path.write_text(
        'node: {id: "bc-01\\n", hamlet: ban-a, commune: thu}\n'
        "broker: {url: mqtt://127.0.0.1:1883}\n"
        f"public_key: {protocol.public_key_b64(key)}\n"
        "cache_dir: cache\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"node\.id: expected an id .*got: 'bc-01\\n'"):
        load_node_config(path)


def test_a_hash_with_a_trailing_newline_is_no_audio_topic():
    topics = protocol.Topics("thu")
    sha = "0f" * 32
    assert topics.parse(topics.audio(sha, 0)) == ("audio", sha, "0")
    assert topics.parse(topics.audio(sha + "\n", 0)) is None


def test_a_playlist_item_hash_with_a_trailing_newline_is_malformed():
    item = {
        "sha256": "ab" * 32 + "\n",
        "bytes": 10,
        "chunks": 1,
        "duration_ms": 1000,
        "title": "t",
        "lang": "vi",
        "announcement": "a",
    }
    envelope = {
        "v": 1,
        "kind": "playlist",
        "commune": "thu",
        "hamlet": "ban-a",
        "id": "p1",
        "slot": "noon",
        "play_at": 100,
        "expires_at": 200,
        "priority": "normal",
        "issued_at": 50,
        "items": [item],
    }
    with pytest.raises(ProtocolError, match=r"items\[0\]\.sha256 must be 64 lowercase hex"):
        protocol.validate_playlist(envelope)
    item["sha256"] = "ab" * 32
    protocol.validate_playlist(envelope)
