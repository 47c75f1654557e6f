"""The commune PKI (`broadcastd tls`), `check`'s certificate warnings and the plaintext refusal."""

from __future__ import annotations

import datetime as dt
import stat
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from support.communes import SANG_MOC_HAMLETS

from broadcastd.cli.check import tls_warnings
from broadcastd.cli.main import run as cli
from broadcastd.config import load_config
from broadcastd.transport import pki

if TYPE_CHECKING:
    from pathlib import Path

PUBLIC = "{host: loa.example.vn, port: 8883, addresses: [203.0.113.7]}"


def commune(tmp_path: Path, broker: str = f"{{public: {PUBLIC}}}") -> Path:
    path = tmp_path / "commune.yaml"
    path.write_text(
        'commune: {id: sang-moc, name: "Xã Sảng Mộc"}\n'
        f"broker: {broker}\n"
        "signing: {private_key_file: ed25519.key}\n"
        "state_dir: state\n"
        'slots: {noon: {at: "11:30"}}\n'
        "hamlets:" + SANG_MOC_HAMLETS,
        encoding="utf-8",
    )
    return path


def test_init_makes_a_p256_ca_and_a_server_certificate_for_broker_public(tmp_path, capsys):
    path = commune(tmp_path)
    assert cli(["tls", "init", "-c", str(path)]) == 0
    files = pki.TlsFiles(tmp_path / "state" / "tls")
    for key in (files.ca_key, files.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    chain = x509.load_pem_x509_certificates(files.server_cert.read_bytes())
    server = chain[0]
    assert chain[1] == ca  # the whole chain, as `openssl s_client` shows it
    server.verify_directly_issued_by(ca)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["loa.example.vn"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["203.0.113.7"]
    out = capsys.readouterr().out
    assert out.startswith("ca: CN=broadcastd sang-moc commune CA,O=broadcastd sang-moc")
    assert "server: CN=loa.example.vn" in out
    assert "names loa.example.vn, 203.0.113.7" in out


def test_init_never_replaces_the_ca_and_renew_reuses_it(tmp_path, capsys):
    path = commune(tmp_path)
    config = load_config(path, probe_media=False).config
    files = pki.TlsFiles.for_config(config)
    ca, first = pki.init(config)
    old_key = files.server_key.read_bytes()
    assert cli(["tls", "init", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the commune CA exists, not replaced" in err
    assert "`broadcastd tls renew`" in err
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    same_ca, second = pki.renew(config, now=later)
    assert same_ca.sha256 == ca.sha256  # speakers keep trusting what they hold
    assert second.sha256 != first.sha256
    assert files.server_key.read_bytes() != old_key
    assert second.not_after > first.not_after
    renewed = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    renewed.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca_cert.read_bytes()))


def test_renew_without_a_ca_and_init_without_public_are_one_line(tmp_path, capsys):
    assert cli(["tls", "renew", "-c", str(commune(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "create the commune CA with `broadcastd tls init`" in err
    assert cli(["tls", "init", "-c", str(commune(tmp_path, "{mode: embedded}"))]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "broker.public is not set" in err
    assert "Traceback" not in err


def test_show_prints_both_certificates(tmp_path, capsys):
    path = commune(tmp_path)
    assert cli(["tls", "show", "-c", str(path)]) == 1  # nothing yet
    assert "tls init" in capsys.readouterr().err
    pki.init(load_config(path, probe_media=False).config)
    assert cli(["tls", "show", "-c", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["ca", "server"]
    assert "(396 days)" in lines[1] or "(397 days)" in lines[1]


def test_check_warns_missing_expiring_and_uncovered_certificates(tmp_path):
    path = commune(tmp_path)
    loaded = load_config(path, probe_media=False)
    now = dt.datetime.now(dt.UTC)
    missing = [str(w) for w in tls_warnings(loaded, now)]
    assert len(missing) == 1  # the CA; the server certificate comes with it
    assert missing[0].startswith(f"{path}:2:18: broker.public: ")
    assert "ca.crt: no such certificate; run `broadcastd tls init` before `run`" in missing[0]
    pki.init(loaded.config)
    assert tls_warnings(loaded, now) == []
    soon = now + dt.timedelta(days=pki.SERVER_DAYS - 10)
    (expiring,) = [str(w) for w in tls_warnings(loaded, soon)]
    assert "the server certificate expires in 10 days: `broadcastd tls renew`" in expiring
    (expired,) = tls_warnings(loaded, now + dt.timedelta(days=pki.SERVER_DAYS + 1))
    assert "the server certificate has expired" in expired.message
    moved = load_config(commune(tmp_path, "{public: {host: loa2.example.vn}}"), probe_media=False)
    (uncovered,) = tls_warnings(moved, now)
    assert uncovered.message.startswith("the server certificate does not name it")
    assert uncovered.value == "loa2.example.vn"


@pytest.mark.parametrize(
    ("broker", "field"),
    [
        ("{listen: '0.0.0.0:1883'}", "broker.listen"),
        ("{node_url: 'mqtt://loa.example.vn:1883'}", "broker.node_url"),
        ("{mode: external, url: 'mqtt://broker.example.vn:1883'}", "broker.url"),
    ],
)
def test_plain_mqtt_beyond_loopback_is_refused_unless_said_on_purpose(
    tmp_path, capsys, broker, field
):
    path = commune(tmp_path, broker)
    assert cli(["check", "-c", str(path)]) == 78
    (line,) = capsys.readouterr().err.splitlines()
    assert f": {field}: plain MQTT beyond loopback:" in line
    assert "broker.insecure_plaintext: true" in line
    commune(tmp_path, broker[:-1] + ", insecure_plaintext: true}")
    assert cli(["check", "-c", str(path)]) == 0


def test_public_listener_fields_are_checked(tmp_path, capsys):
    bad = "{public: {host: Loa_Example, port: 70000, addresses: [not-an-ip]}}"
    assert cli(["check", "-c", str(commune(tmp_path, bad))]) == 78
    err = capsys.readouterr().err
    assert "broker.public.host: expected the host name speakers use" in err
    assert "broker.public.port:" in err
    assert "broker.public.addresses[0]: expected an IP address" in err
    external = "{mode: external, url: 'mqtts://b.example.vn:8883', public: {host: a.example.vn}}"
    assert cli(["check", "-c", str(commune(tmp_path, external))]) == 78
    assert "'public' configures the embedded broker's TLS listener only" in capsys.readouterr().err


def test_secure_websockets_listener_config(tmp_path, capsys):
    ws = "{public: {host: loa.example.vn, websockets_port: 443}, node_url: 'wss://loa.example.vn/mqtt'}"
    config = load_config(commune(tmp_path, ws), probe_media=False).config
    public = config.broker.public
    assert public is not None
    assert public.websockets_url == "wss://loa.example.vn:443/mqtt"
    assert config.broker.url_for_nodes == "wss://loa.example.vn/mqtt"
    assert pki.trust_anchor(config) == pki.TlsFiles.for_config(config).ca_cert  # in the bundle
    one_address = "{public: {host: loa.example.vn, bind: 203.0.113.7, websockets_port: 443}}"
    assert cli(["check", "-c", str(commune(tmp_path, one_address))]) == 78
    assert "websockets_port needs bind 0.0.0.0" in capsys.readouterr().err
    plain_ws = "{public: {host: loa.example.vn}, node_url: 'ws://loa.example.vn/mqtt'}"
    assert cli(["check", "-c", str(commune(tmp_path, plain_ws))]) == 78
    assert "node_url must look like" in capsys.readouterr().err
