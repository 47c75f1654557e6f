"""node.yaml: validation with file:line:col, path resolution, and the broadcastd-node CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broadcastd import protocol
from broadcastd.errors import BroadcastdError, ConfigError
from broadcastd.node.settings import load_node_config

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = protocol.public_key_b64(Ed25519PrivateKey.generate())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def good(tmp_path: Path, **lines: str) -> Path:
    body = {
        "node": "{id: bc-01, hamlet: ban-chuong, commune: sang-moc}",
        "broker": "{url: mqtt://127.0.0.1:1883, username: bc-01, password_file: secret}",
        "public_key": f'"{PUBLIC}"',
        "cache_dir": "cache",
        "player": '"ffplay -nodisp -autoexit -loglevel error {file}"',
        "heartbeat": "30s",
    }
    body.update(lines)
    return write(tmp_path, "".join(f"{k}: {v}\n" for k, v in body.items() if v))


def test_a_good_node_yaml_loads_with_paths_next_to_it(tmp_path):
    (tmp_path / "secret").write_text("s3cret\n")
    cfg = load_node_config(good(tmp_path))
    assert cfg.node.id == "bc-01"
    assert cfg.cache_dir == tmp_path / "cache"
    assert cfg.broker.read_password() == "s3cret"
    assert cfg.heartbeat_s == 30.0
    assert cfg.player is not None
    assert "{file}" in cfg.player


def test_player_may_be_null_and_password_inline(tmp_path):
    cfg = load_node_config(
        good(
            tmp_path,
            player="null",
            broker="{url: mqtt://localhost:1883, username: bc-01, password: pw}",
        )
    )
    assert cfg.player is None
    assert cfg.broker.read_password() == "pw"


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    return [str(p) for p in info.value.problems]


def test_every_problem_is_named_with_its_line(tmp_path):
    path = good(
        tmp_path,
        public_key='"not-a-key"',
        player='"ffplay"',
        heartbeat="soon",
        extra="1",
    )
    found = problems(path)
    assert len(found) == 4, found
    text = "\n".join(found)
    assert f"{path}:3:13: public_key: public key must be standard base64" in text
    assert f"{path}:5:9: player: player must contain {{file}}" in text
    assert f"{path}:6:12: heartbeat: expected a duration" in text
    assert f"{path}:7:1: extra: unknown field" in text


def test_bad_key_says_got_once_and_a_zero_heartbeat_is_refused(tmp_path):
    path = good(tmp_path, public_key='"abc"', heartbeat="0s")
    assert problems(path) == [
        f"{path}:3:13: public_key: public key must be standard base64, got: 'abc'",
        f"{path}:6:12: heartbeat: duration must be more than 0s, got: '0s'",
    ]


def test_missing_sections_and_bad_ids(tmp_path):
    path = write(tmp_path, "node: {id: BC 01, hamlet: x}\n")
    text = "\n".join(problems(path))
    assert "node.id: expected an id" in text
    assert "node.commune: required field is missing" in text
    assert "broker: required field is missing" in text


def test_an_empty_file_is_a_config_error(tmp_path):
    assert "must be a mapping" in problems(write(tmp_path, ""))[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2"])
def test_plain_mqtt_is_for_loopback(tmp_path, host):
    cfg = load_node_config(good(tmp_path, broker=f"{{url: 'mqtt://{host}:1883'}}"))
    assert not cfg.link_settings(lambda: 0.0).plaintext_exposed


def test_plain_mqtt_beyond_loopback_needs_insecure_plaintext_and_is_then_exposed(tmp_path):
    for host in ("192.0.2.7", "loa.example.vn", "localhost.example.vn"):
        (found,) = problems(good(tmp_path, broker=f"{{url: 'mqtt://{host}:1883'}}"))
        assert f"{tmp_path / 'node.yaml'}:2:15: broker.url: plain MQTT to a broker beyond" in found
    allowed = "{url: 'mqtt://192.0.2.7:1883', insecure_plaintext: true}"
    settings = load_node_config(good(tmp_path, broker=allowed)).link_settings(lambda: 0.0)
    assert settings.plaintext_exposed  # connects, with a warning at every connect
    assert settings.insecure_plaintext


def test_tls_url_with_the_bundles_ca_file(tmp_path):
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    tls = "{url: 'mqtts://loa.example.vn:8883', ca_file: ca.crt}"
    settings = load_node_config(good(tmp_path, broker=tls)).link_settings(lambda: 0.0)
    assert settings.tls
    assert settings.tls_ca == tmp_path / "ca.crt"
    assert not settings.plaintext_exposed
    (missing,) = problems(good(tmp_path, broker="{url: 'mqtts://a.example.vn', ca_file: x.crt}"))
    assert f"broker.ca_file: file not found (looked for {tmp_path / 'x.crt'})" in missing


def test_unreadable_password_file_is_a_clear_error(tmp_path):
    cfg = load_node_config(good(tmp_path))
    with pytest.raises(BroadcastdError, match="cannot read broker password"):
        cfg.broker.read_password()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from broadcastd.node.cli import main; main()", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cli_config_error_exits_78_without_traceback(tmp_path):
    path = good(tmp_path, public_key='"AAAA"')
    result = cli("-c", str(path))
    assert result.returncode == 78
    assert f"{path}:3:13: public_key" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_missing_file_and_usage(tmp_path):
    result = cli("-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 78
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli("--bogus").returncode == 2


def test_cli_unusable_cache_dir_is_a_clear_runtime_failure(tmp_path):
    (tmp_path / "cache").write_text("a file where the cache directory should be")
    result = cli("-c", str(good(tmp_path, broker="{url: mqtt://127.0.0.1:1}")))
    assert result.returncode == 1
    assert "cannot create cache_dir" in result.stderr
    assert "Traceback" not in result.stderr
