"""Secrets are written only where nobody else can steer them (issue 23 item 5): `node-config --out`
and `--tar`, `acl --out` and the broker's credentials never follow a planted symlink, never reuse a
planted file and never write into a directory someone else may write."""

from __future__ import annotations

import io
import stat
import tarfile
import textwrap

import pytest
import yaml

from broadcastd import protocol
from broadcastd.cli.main import run as cli
from broadcastd.config import load_config
from broadcastd.transport.credentials import Credentials

VICTIM = b"the signing key, say\n"


@pytest.fixture
def commune(tmp_path):
    path = tmp_path / "commune.yaml"
    path.write_text(
        textwrap.dedent("""
            commune: {id: sang-moc, name: "Xã Sảng Mộc"}
            signing: {private_key_file: ed25519.key}
            state_dir: state
            slots: {noon: {at: "11:30"}}
            hamlets:
              - {id: na-lay, name: "Nà Láy", households: 40, nodes: [{id: nl-01, households: 40}]}
        """),
        encoding="utf-8",
    )
    protocol.generate_private_key(tmp_path / "ed25519.key")
    return path


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_bytes(VICTIM)
    return path


def mode(path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_node_config_out_makes_a_fresh_private_bundle_with_relative_paths(commune, tmp_path):
    out = tmp_path / "bundle"
    assert cli(["node-config", "nl-01", "-c", str(commune), "--out", str(out)]) == 0
    assert mode(out) == 0o700
    assert sorted(p.name for p in out.iterdir()) == ["node.yaml", "password"]
    assert mode(out / "node.yaml") == mode(out / "password") == 0o600
    doc = yaml.safe_load((out / "node.yaml").read_text(encoding="utf-8"))
    assert doc["broker"]["password_file"] == "password"  # noqa: S105 - a file name
    assert doc["cache_dir"] == "/var/lib/broadcastd-node"


@pytest.mark.parametrize("planted", ["symlink", "readable-file", "empty-dir", "dir-symlink"])
def test_node_config_out_refuses_any_existing_path(commune, tmp_path, victim, capsys, planted):
    out = tmp_path / "bundle"
    if planted == "dir-symlink":
        (tmp_path / "elsewhere").mkdir()
        out.symlink_to(tmp_path / "elsewhere")
    else:
        out.mkdir()
    if planted == "symlink":
        (out / "node.yaml").symlink_to(victim)
    elif planted == "readable-file":
        (out / "password").write_text("", encoding="utf-8")
        (out / "password").chmod(0o644)
    assert cli(["node-config", "nl-01", "-c", str(commune), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out} already exists" in err
    assert "Traceback" not in err
    assert victim.read_bytes() == VICTIM
    if planted == "readable-file":
        assert (out / "password").read_text(encoding="utf-8") == ""  # no password leaked into it
    assert not (tmp_path / "elsewhere" / "node.yaml").exists()


def test_node_config_tar_holds_private_files_at_its_top_level(commune, tmp_path):
    archive = tmp_path / "nl-01.tar.gz"
    assert cli(["node-config", "nl-01", "-c", str(commune), "--tar", str(archive)]) == 0
    assert mode(archive) == 0o600
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["node.yaml", "password"]
        assert all(m.mode == 0o600 and m.isfile() for m in members.values())
        node_yaml = tar.extractfile(members["node.yaml"])
        assert node_yaml is not None
        doc = yaml.safe_load(io.TextIOWrapper(node_yaml, encoding="utf-8"))
    assert doc["broker"]["password_file"] == "password"  # noqa: S105 - a file name


@pytest.mark.parametrize("planted", ["file", "symlink"])
def test_node_config_tar_refuses_an_existing_path(commune, tmp_path, victim, capsys, planted):
    archive = tmp_path / "nl-01.tar"
    if planted == "symlink":
        archive.symlink_to(victim)
    else:
        archive.write_bytes(b"")
    assert cli(["node-config", "nl-01", "-c", str(commune), "--tar", str(archive)]) == 1
    assert f"{archive} already exists" in capsys.readouterr().err
    assert victim.read_bytes() == VICTIM


def test_acl_out_replaces_planted_files_instead_of_following_them(commune, tmp_path, victim):
    out = tmp_path / "acl-out"
    out.mkdir(mode=0o700)
    (out / "passwd").symlink_to(victim)
    (out / "acl").write_text("stale\n", encoding="utf-8")
    (out / "acl").chmod(0o644)
    assert cli(["acl", "-c", str(commune), "--out", str(out)]) == 0
    assert victim.read_bytes() == VICTIM
    for name in ("passwd", "acl"):
        assert stat.S_ISREG((out / name).lstat().st_mode)
        assert mode(out / name) == 0o600
    assert "nl-01:$7$" in (out / "passwd").read_text(encoding="utf-8")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("unsafe", ["world-writable", "symlink"])
def test_acl_out_refuses_a_directory_others_control(commune, tmp_path, capsys, unsafe):
    real = tmp_path / "shared"
    real.mkdir()
    real.chmod(0o777)
    out = real
    if unsafe == "symlink":
        real.chmod(0o700)
        out = tmp_path / "link"
        out.symlink_to(real)
    assert cli(["acl", "-c", str(commune), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert ("writable by others" if unsafe == "world-writable" else "is a symlink") in err
    assert list(real.iterdir()) == []


def test_credentials_never_follow_a_planted_temporary_file(commune, tmp_path, victim):
    config = load_config(commune, probe_media=False).config
    directory = Credentials.path_for(config).parent
    directory.mkdir(parents=True, mode=0o700)
    # What the previous writer used as its fixed temporary name: it opened it with O_TRUNC.
    (directory / "credentials.json.tmp").symlink_to(victim)
    creds = Credentials.load_or_create(config)
    assert victim.read_bytes() == VICTIM
    assert mode(creds.path) == 0o600
    assert stat.S_ISREG(creds.path.lstat().st_mode)
