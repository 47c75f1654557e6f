"""Generated mosquitto.conf, credentials file, password hashes and ACL text."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
from typing import TYPE_CHECKING

import pytest
from support.communes import write_sang_moc

from broadcastd.cli.main import run as cli
from broadcastd.config import load_config
from broadcastd.journal.store import Journal
from broadcastd.transport.broker import SERVER_LOGINS, BrokerError, MosquittoProcess
from broadcastd.transport.brokerconf import (
    CONNECTION_HEADROOM,
    MAX_PACKET,
    MIN_QUEUED_BYTES,
    TLS12_CIPHERS,
    BrokerOptions,
    TlsListener,
    mosquitto_conf,
    queued_bytes_for,
)
from broadcastd.transport.credentials import (
    BULK_USERS,
    CONTROLLER_USER,
    MONITOR_USER,
    Credentials,
    acl_text,
    hash_password,
    password_file_lines,
)
from broadcastd.transport.linksettings import LinkSettings

if TYPE_CHECKING:
    from pathlib import Path

SERVER_USERS = (CONTROLLER_USER, *BULK_USERS, MONITOR_USER)  # logins no speaker holds
NODES_V1 = """
  - {id: ban-chuong, name: "Bản Chương", households: 87,
     nodes: [{id: bc-01, households: 50}, {id: bc-02, households: 37}]}
  - {id: na-lay, name: "Nà Láy", households: 40, nodes: [{id: nl-01, households: 40}]}
"""
NODES_V2 = """
  - {id: ban-chuong, name: "Bản Chương", households: 87,
     nodes: [{id: bc-01, households: 50}, {id: bc-03, households: 37}]}
  - {id: na-lay, name: "Nà Láy", households: 40, nodes: [{id: nl-01, households: 40}]}
"""


def conf_lines(opts: BrokerOptions, tmp_path: Path) -> list[str]:
    return mosquitto_conf(opts, tmp_path).splitlines()


def test_conf_bounds_packets_queues_and_saves_on_a_clock(tmp_path):
    lines = conf_lines(BrokerOptions(host="127.0.0.1", port=18830), tmp_path)
    assert "listener 18830 127.0.0.1" in lines
    for expected in (
        "persistence true",
        f"persistence_location {tmp_path}/",
        # Saving on changes let any client make the broker rewrite its whole database at will.
        "autosave_on_changes false",
        "autosave_interval 60",
        "persistent_client_expiration 7d",
        "max_packet_size 69632",  # a 64 KiB chunk or envelope plus 4 KiB of header
        "message_size_limit 65536",  # the chunk or envelope itself
        "max_queued_messages 20000",
        "max_queued_bytes 16777216",
        "max_inflight_messages 20",
        "max_connections 1000",
        "allow_anonymous true",
    ):
        assert expected in lines
    assert not any(line.startswith(("password_file", "acl_file")) for line in lines)


def test_every_limit_in_the_conf_says_why(tmp_path):
    lines = conf_lines(BrokerOptions(), tmp_path)
    for option in ("max_packet_size", "message_size_limit", "max_queued_messages",
                   "max_inflight_messages", "max_connections", "log_type notice"):  # fmt: skip
        at = next(i for i, line in enumerate(lines) if line.startswith(option))
        assert lines[at - 1].startswith("#"), option


def test_the_daemons_broker_is_sized_by_its_config(tmp_path):
    config = load_config(write_sang_moc(tmp_path), probe_media=False).config
    tls = tmp_path / "state" / "broker"
    broker = MosquittoProcess.from_config(
        config, tls, password_file=tls / "passwd", acl_file=tls / "acl"
    )
    # 3 nodes with two logins each (their own, their audio lane), the daemon's 10 logins (main
    # link, 8 bulk links, monitor), plus headroom.
    assert broker.options.max_connections == 2 * 3 + SERVER_LOGINS + CONNECTION_HEADROOM
    assert len(SERVER_USERS) == SERVER_LOGINS
    # Two 15-minute bulletins at 32 kbit/s are 7.2 MB: under the floor.
    assert broker.options.max_queued_bytes == MIN_QUEUED_BYTES
    assert queued_bytes_for(15 * 60 * 128_000 // 8) == 2 * 220 * MAX_PACKET  # 220 chunks each


def test_conf_with_credentials_refuses_anonymous(tmp_path):
    opts = BrokerOptions(port=1883, password_file=tmp_path / "passwd", acl_file=tmp_path / "acl")
    lines = conf_lines(opts, tmp_path)
    assert "allow_anonymous false" in lines
    assert "allow_anonymous true" not in lines
    assert "use_username_as_clientid true" in lines  # a login can only ever be its own client
    assert f"password_file {tmp_path / 'passwd'}" in lines
    assert f"acl_file {tmp_path / 'acl'}" in lines


def test_conf_tls_listener_is_tls12_plus_under_the_same_logins(tmp_path):
    tls = TlsListener("192.0.2.10", 8883, tmp_path / "server.crt", tmp_path / "server.key")
    opts = BrokerOptions(
        port=1883, password_file=tmp_path / "passwd", acl_file=tmp_path / "acl", tls=tls
    )
    lines = conf_lines(opts, tmp_path)
    # Logins, ACL and anonymous refusal are global: they bind every listener alike.
    assert "per_listener_settings false" in lines
    first = lines.index("listener 1883 127.0.0.1")
    second = lines.index("listener 8883 192.0.2.10")
    assert first < second
    security = ("allow_anonymous false", f"password_file {tmp_path / 'passwd'}")
    assert all(lines.index(line) < first for line in security)
    # A listener option: without it on the TLS listener, a stolen speaker's login could take
    # the controller's client id there.
    assert "use_username_as_clientid true" in lines[first:second]
    assert [ln for ln in lines[second + 1 :] if not ln.startswith("#")] == [
        "max_connections 1000",
        "use_username_as_clientid true",
        f"certfile {tmp_path / 'server.crt'}",
        f"keyfile {tmp_path / 'server.key'}",
        "tls_version tlsv1.2",
        f"ciphers {TLS12_CIPHERS}",
        "require_certificate false",
    ]
    assert not any(line.startswith(("certfile", "tls_version")) for line in lines[:second])


def test_conf_secure_websockets_listener_shares_logins_and_certificate(tmp_path):
    every = "0.0.0.0"  # noqa: S104 - a config text, nothing binds
    for bind, listener in ((every, "listener 443"), ("127.0.0.1", "listener 443 lo")):
        tls = TlsListener(bind, 8883, tmp_path / "s.crt", tmp_path / "s.key", websockets_port=443)
        opts = BrokerOptions(password_file=tmp_path / "passwd", tls=tls)
        lines = [ln for ln in conf_lines(opts, tmp_path) if not ln.startswith("#")]
        # libwebsockets takes an interface name: "lo" for loopback, nothing for every address
        at = lines.index(listener)
        assert lines[at + 1 :] == [
            "protocol websockets",
            "max_connections 1000",
            "use_username_as_clientid true",
            f"certfile {tmp_path / 's.crt'}",
            f"keyfile {tmp_path / 's.key'}",
            "tls_version tlsv1.2",
            f"ciphers {TLS12_CIPHERS}",
            "require_certificate false",
        ]


def test_wss_urls_are_tls_over_websockets():
    settings = LinkSettings.from_url("wss://loa.example.vn/mqtt", client_id="n")
    assert (settings.tls, settings.port, settings.websocket_path) == (True, 443, "/mqtt")
    assert settings.url == "wss://loa.example.vn:443/mqtt"
    assert not settings.plaintext_exposed
    assert LinkSettings.from_url("mqtts://h", client_id="n").websocket_path is None


def test_conf_without_persistence(tmp_path):
    lines = conf_lines(BrokerOptions(persistence=False), tmp_path)
    assert "persistence false" in lines
    assert not any(line.startswith("autosave") for line in lines)


def test_credentials_are_private_stable_and_follow_the_node_list(tmp_path):
    config = load_config(write_sang_moc(tmp_path), probe_media=False).config
    first = Credentials.load_or_create(config)
    assert first.path == tmp_path / "state" / "broker" / "credentials.json"
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert set(first.passwords) == {*SERVER_USERS, "bc-01", "bc-02", "nl-01"}
    assert len(set(first.passwords.values())) == 3 + len(SERVER_USERS)
    assert all(len(pw) >= 24 for pw in first.passwords.values())

    assert Credentials.load_or_create(config).passwords == first.passwords

    config2 = load_config(write_sang_moc(tmp_path, NODES_V2), probe_media=False).config
    second = Credentials.load_or_create(config2)
    assert set(second.passwords) == {*SERVER_USERS, "bc-01", "bc-03", "nl-01"}
    for kept in (*SERVER_USERS, "bc-01", "nl-01"):
        assert second.passwords[kept] == first.passwords[kept]
    assert second.passwords["bc-03"] not in first.passwords.values()
    on_disk = json.loads(second.path.read_text(encoding="utf-8"))["passwords"]
    assert on_disk == second.passwords
    with pytest.raises(BrokerError, match="no MQTT credentials for 'bc-02'"):
        second.password("bc-02")


def test_corrupt_credentials_file_is_a_clear_error(tmp_path):
    config = load_config(write_sang_moc(tmp_path), probe_media=False).config
    path = Credentials.path_for(config)
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(BrokerError, match="unreadable credentials file"):
        Credentials.load_or_create(config)


def test_password_hash_matches_mosquitto_passwd(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("bc-01:s3cret-pw\n", encoding="utf-8")
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
    theirs = passwd.read_text(encoding="utf-8").strip().split(":", 1)[1]
    salt = base64.b64decode(theirs.split("$")[3])
    assert hash_password("s3cret-pw", salt=salt) == theirs
    assert hash_password("s3cret-pw") != hash_password("s3cret-pw")  # fresh salt each time


def test_password_file_has_one_hashed_line_per_user(tmp_path):
    creds = Credentials(tmp_path / "c.json", {"bc-01": "a", CONTROLLER_USER: "b"})
    lines = password_file_lines(creds).splitlines()
    # A node's audio lane logs in as `<node>_bulk` with the node's password, hashed apart.
    assert [line.split(":")[0] for line in lines] == ["bc-01", "bc-01_bulk", CONTROLLER_USER]
    assert all(line.split(":")[1].startswith("$7$101$") for line in lines)
    assert "a" not in [line.split(":")[1] for line in lines]
    hashes = {line.split(":")[0]: line.split(":", 1)[1] for line in lines}
    assert hashes["bc-01"] != hashes["bc-01_bulk"]  # its own salt
    salt = base64.b64decode(hashes["bc-01_bulk"].split("$")[3])
    assert hash_password("a", salt=salt) == hashes["bc-01_bulk"]


def test_acl_gives_each_node_only_its_own_topics(tmp_path):
    config = load_config(write_sang_moc(tmp_path), probe_media=False).config
    text = "\n".join(ln for ln in acl_text(config).splitlines() if not ln.startswith("#"))
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in text.strip().split("\n\n")}
    root = "bcast/v1/sang-moc"
    assert blocks[f"user {CONTROLLER_USER}"] == [f"topic readwrite {root}/#"]
    for user in BULK_USERS:  # the daemon's publish-only audio links
        assert blocks[f"user {user}"] == [f"topic write {root}/audio/#"]
    assert blocks[f"user {MONITOR_USER}"] == [f"topic read {root}/#"]
    assert blocks["user nl-01_bulk"] == [f"topic read {root}/audio/#"]  # its audio lane
    assert blocks["user nl-01"] == [
        f"topic write {root}/node/nl-01/state",
        f"topic write {root}/node/nl-01/heartbeat",
        f"topic write {root}/node/nl-01/ack",
        f"topic read {root}/controller/state",
        f"topic read {root}/keys",
        f"topic read {root}/receipt/nl-01",
        f"topic read {root}/hamlet/na-lay/playlist",
        f"topic read {root}/hamlet/na-lay/control",
        f"topic read {root}/audio/#",
    ]
    nodes = ("bc-01", "bc-02", "nl-01")
    users = (*SERVER_USERS, *nodes, *(f"{n}_bulk" for n in nodes))
    assert set(blocks) == {f"user {u}" for u in users}


def test_acl_command_prints_entries_and_writes_private_files(tmp_path, capsys):
    cfg = write_sang_moc(tmp_path)
    assert cli(["acl", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "# mosquitto password_file" in out
    assert "bc-01:$7$101$" in out
    assert "topic write bcast/v1/sang-moc/node/bc-01/ack" in out

    assert cli(["acl", "-c", str(cfg), "--out", str(tmp_path / "out")]) == 0
    for name in ("passwd", "acl"):
        path = tmp_path / "out" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "user nl-01" in (tmp_path / "out" / "acl").read_text(encoding="utf-8")


def test_acl_command_reports_a_bad_config(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("commune: {id: Bad Id}\n", encoding="utf-8")
    assert cli(["acl", "-c", str(cfg)]) == 78
    assert "commune.id" in capsys.readouterr().err


def test_simulate_refuses_synthetic_nodes_on_the_embedded_broker(tmp_path, capsys):
    # They would share one login, and the broker lets a login hold one connection at a time.
    cfg = write_sang_moc(tmp_path)
    assert cli(["simulate", "-c", str(cfg), "--nodes", "5"]) == 2
    err = capsys.readouterr().err
    assert "--nodes 5 needs --broker URL" in err
    assert "Traceback" not in err


def test_a_revoked_node_loses_its_login_and_acl_until_renewed(tmp_path):
    config = load_config(write_sang_moc(tmp_path), probe_media=False).config
    first = Credentials.load_or_create(config)
    revoked = Credentials.load_or_create(config, revoke=["bc-01"], now=1_796_000_000)
    assert "bc-01" not in revoked.passwords
    assert revoked.revoked == {"bc-01": 1_796_000_000}
    assert revoked.passwords["bc-02"] == first.passwords["bc-02"]
    again = Credentials.load_or_create(config)  # stays revoked across restarts
    assert again.revoked == revoked.revoked
    with pytest.raises(BrokerError, match="`broadcastd node-config bc-01 --new-login`"):
        again.password("bc-01")
    assert "user bc-01" not in acl_text(config, revoked=again.revoked)  # nor bc-01_bulk
    assert "bc-01:" not in password_file_lines(again)
    assert "bc-01_bulk:" not in password_file_lines(again)
    renewed = Credentials.load_or_create(config, renew=["bc-01"])
    assert renewed.revoked == {}
    assert renewed.passwords["bc-01"] not in first.passwords.values()  # the old board stays out


def test_node_revoke_without_a_daemon_removes_the_login_and_journals_it(tmp_path, capsys):
    cfg = write_sang_moc(tmp_path)
    (tmp_path / "state").mkdir(mode=0o700)
    assert cli(["node-revoke", "nl-01", "-c", str(cfg), "--operator", "an"]) == 0
    assert "the daemon is not running" in capsys.readouterr().err
    config = load_config(cfg, probe_media=False).config
    assert "nl-01" in Credentials.load_or_create(config).revoked
    journal = Journal.open(config.state_dir / "journal.sqlite3", readonly=True)
    try:
        (detail,) = journal.event_details("revoke")
    finally:
        journal.close()
    assert json.loads(detail) == {
        "node": "nl-01",
        "cause": "node-revoke (daemon not running)",
        "operator": "an",
    }
    assert cli(["node-revoke", "zz-99", "-c", str(cfg)]) == 2
    assert "no node 'zz-99' in the config" in capsys.readouterr().err
