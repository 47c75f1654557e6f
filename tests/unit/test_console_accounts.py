"""`broadcastd operator ...` and `broadcastd token ...`: passwords only from stdin or a prompt,
argon2 hashes, roles checked against the config, sessions ended by a change, tokens shown once,
and the access log's hash chain catching an edit."""

from __future__ import annotations

import io
import sqlite3
from typing import TYPE_CHECKING

import pytest
from support import console as cs
from support.communes import write_sang_moc

from broadcastd.cli.main import run as broadcastd
from broadcastd.console import accesslog, accounts
from broadcastd.console.store import ConsoleStore

if TYPE_CHECKING:
    from pathlib import Path

EMERGENCY = "emergency: {approvals: 2, operators: [chu-tich, pho-chu-tich]}\n"


pytestmark = pytest.mark.usefixtures("quick_hashes")  # cheap argon2 (conftest.py)


@pytest.fixture
def config(tmp_path) -> Path:
    path = write_sang_moc(tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + EMERGENCY, encoding="utf-8")
    return path


def operator(config: Path, monkeypatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return broadcastd(["operator", *argv, "-c", str(config)])


def store_of(config: Path) -> ConsoleStore:
    return ConsoleStore.open(config.parent / "state" / "console.sqlite3")


def test_operator_add_reads_the_password_from_stdin_and_stores_only_a_hash(
    config, monkeypatch, capsys
):
    assert (
        operator(
            config, monkeypatch, "add", "van-hoa", "--role", "viewer", stdin="mật khẩu dài 123\n"
        )
        == 0
    )
    assert "added van-hoa (viewer)" in capsys.readouterr().out
    store = store_of(config)
    row = store.operator("van-hoa")
    assert row is not None
    assert row.role == "viewer"
    assert row.hash.startswith("$argon2id$")
    assert "mật khẩu" not in row.hash
    assert accounts.verify_password(row.hash, "mật khẩu dài 123")
    assert not accounts.verify_password(row.hash, "mật khẩu dài 124")
    assert (config.parent / "state" / "console.sqlite3").stat().st_mode & 0o777 == 0o600
    store.close()


def test_operator_commands_refuse_bad_input_with_a_usage_error(config, monkeypatch, capsys):
    assert operator(config, monkeypatch, "add", "van-hoa", stdin="short\n") == 2
    assert "at least 10 characters" in capsys.readouterr().err
    assert operator(config, monkeypatch, "add", "bad name!", stdin="long enough pw\n") == 2
    assert operator(config, monkeypatch, "add", "van-hoa", stdin="") == 2
    assert "no password on standard input" in capsys.readouterr().err
    # an approver must be one the daemon accepts for emergencies
    assert (
        operator(
            config, monkeypatch, "add", "van-hoa", "--role", "approver", stdin="long enough pw\n"
        )
        == 2
    )
    assert "emergency.operators" in capsys.readouterr().err
    # so must an operator: the daemon refuses any other operator name on every request
    assert (
        operator(
            config, monkeypatch, "add", "van-hoa", "--role", "operator", stdin="long enough pw\n"
        )
        == 2
    )
    assert "an operator must be one of emergency.operators" in capsys.readouterr().err
    assert (
        operator(
            config, monkeypatch, "add", "chu-tich", "--role", "approver", stdin="long enough pw\n"
        )
        == 0
    )
    assert operator(config, monkeypatch, "add", "chu-tich", stdin="long enough pw\n") == 1
    assert "exists" in capsys.readouterr().err
    # the password is never an argument
    assert (
        broadcastd(["operator", "add", "x", "--password", "secret123456", "-c", str(config)]) == 2
    )


async def test_passwd_and_remove_end_the_operators_sessions(config, monkeypatch):
    assert operator(config, monkeypatch, "add", "van-hoa", stdin=f"{cs.PASSWORD}\n") == 0
    ctx = cs.build(config)
    try:
        async with cs.client(ctx) as http:
            assert (await cs.login(http, "van-hoa")).status_code == 303
            assert (
                operator(config, monkeypatch, "passwd", "van-hoa", stdin="a new password 1\n") == 0
            )
            assert (await http.get("/")).status_code == 303, (
                "the old session ended with the password"
            )
            assert (await cs.login(http, "van-hoa")).status_code == 401
            assert (await cs.login(http, "van-hoa", "a new password 1")).status_code == 303
            assert operator(config, monkeypatch, "remove", "van-hoa") == 0
            assert (await http.get("/")).status_code == 303
            assert (await cs.login(http, "van-hoa", "a new password 1")).status_code == 401
        kinds = [(e.kind, e.detail) for e in accesslog.entries(ctx.store, limit=20)]
        assert ("operator", "removed; sessions ended") in kinds
        assert ("operator", "changed: password; sessions ended") in kinds
    finally:
        ctx.close()
    assert operator(config, monkeypatch, "remove", "van-hoa") == 1


def test_tokens_are_printed_once_listed_without_secret_and_revoked(config, capsys):
    assert broadcastd(["token", "create", "district", "--scope", "read", "-c", str(config)]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("bct_")
    store = store_of(config)
    found = accounts.token_for(store, secret)
    assert found is not None
    assert found.name == "district"
    assert broadcastd(["token", "list", "-c", str(config)]) == 0
    listing = capsys.readouterr().out
    assert "district\tread" in listing
    assert secret not in listing
    assert broadcastd(["token", "create", "district", "-c", str(config)]) == 1
    assert broadcastd(["token", "create", "x", "--scope", "write", "-c", str(config)]) == 2
    assert broadcastd(["token", "revoke", "district", "-c", str(config)]) == 0
    assert accounts.token_for(store, secret) is None
    store.close()


def test_the_access_log_chain_catches_an_edit_behind_its_back(config, monkeypatch):
    for name in ("a-1", "a-2", "a-3"):
        assert operator(config, monkeypatch, "add", name, stdin="long enough pw\n") == 0
    store = store_of(config)
    assert accesslog.verify(store).intact
    assert accesslog.verify(store).rows == 3
    with pytest.raises(sqlite3.DatabaseError):  # the table refuses edits outright
        store._conn.execute("UPDATE access SET detail='x' WHERE seq=2")
    # someone with the file drops the guard and edits history
    store._conn.executescript(
        "DROP TRIGGER access_no_update; UPDATE access SET operator='someone' WHERE seq=2;"
    )
    status = accesslog.verify(store)
    assert not status.intact
    assert status.broken_at == 2
    store.close()
