"""`broadcastd node-config NODE`: a ready node.yaml for one speaker; provisioning is one command.

With `--out DIR` or `--tar FILE` it makes a bundle: `node.yaml` and `password` (both 0600) and,
when speakers connect over TLS, `ca.crt` (the commune CA's certificate, never its key: the agent
trusts exactly the broker it names). Every path in node.yaml is relative to the file, so the
folder (or the unpacked archive) works wherever it is copied. Both refuse an existing path:
secrets are never written into something another local user could have prepared (see
transport/privatefiles.py).
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from broadcastd import protocol
from broadcastd.config import Config, load_config
from broadcastd.errors import EX_OK, UsageError
from broadcastd.transport import pki
from broadcastd.transport.credentials import Credentials
from broadcastd.transport.privatefiles import UnsafePathError, private_dir, write_new
from broadcastd.transport.signingkeys import SigningKeys

if TYPE_CHECKING:
    import argparse

NODE_CACHE_DIR = "/var/lib/broadcastd-node"
DEFAULT_PLAYER = "ffplay -nodisp -autoexit -loglevel error -volume {volume} {file}"
PASSWORD_FILE = "password"  # noqa: S105 - the file name, not a password
CA_FILE = "ca.crt"
# Owner of the files a root `tar -x` creates on the speaker: the user broadcastd-node.service runs
# as, so the agent can read its password (GNU tar and Python look the name up first).
SPEAKER_USER = "broadcastd-node"


def node_yaml(
    config: Config,
    node_id: str,
    *,
    password_file: Path | None,
    password: str,
    cache_dir: Path | None = None,
) -> str:
    """The text of node.yaml; relative paths in it resolve against the file's own directory."""
    hamlets = config.node_hamlets()
    if node_id not in hamlets:
        known = ", ".join(sorted(hamlets)) or "none"
        raise UsageError(f"no node {node_id!r} in the config (known nodes: {known})")
    # The key file's key: during a rotation the old one until it retires. The speaker then learns
    # the new one from the retained rotation, so it verifies what was signed before the
    # activation (still live) and after it (DESIGN.md §5).
    key = SigningKeys(config.signing.private_key_file).current
    url = config.broker.url_for_nodes
    broker: dict[str, object] = {"url": url, "username": node_id}
    if password_file is not None:
        broker["password_file"] = str(password_file)
    else:
        broker["password"] = password
    anchor = pki.trust_anchor(config)
    if anchor is not None:
        broker["ca_file"] = CA_FILE
    elif url.startswith("mqtt://") and config.broker.insecure_plaintext:
        broker["insecure_plaintext"] = True  # said in the commune config; the agent warns of it
    doc = {
        "node": {"id": node_id, "hamlet": hamlets[node_id].id, "commune": config.commune.id},
        "broker": broker,
        "public_key": protocol.public_key_b64(key.public_key()),
        "cache_dir": str(cache_dir) if cache_dir is not None else NODE_CACHE_DIR,
        "player": DEFAULT_PLAYER,
        "heartbeat": f"{int(config.nodes.heartbeat.total_seconds())}s",
        "timezone": config.commune.timezone,  # log lines show the commune's local time
    }
    name = hamlets[node_id].name
    header = f"# broadcastd-node config for {node_id} ({name}); keep this file private (0600)\n"
    if password_file is None and anchor is not None:
        header += f"# copy {anchor} from the server beside this file as {CA_FILE}\n"
    return header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _trust_file(config: Config) -> dict[str, bytes]:
    anchor = pki.trust_anchor(config)
    if anchor is None:
        return {}
    try:
        return {CA_FILE: anchor.read_bytes()}
    except OSError as exc:
        raise UsageError(
            f"{anchor}: cannot read the CA certificate speakers must trust ({exc.strerror});"
            " for the embedded broker run `broadcastd tls init` first"
        ) from None


def bundle_tar(files: dict[str, bytes], *, gzip: bool) -> bytes:
    """A tar archive of `files` at its top level (extract it into the config directory), 0600."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(body), 0o600, int(time.time())
            info.uname = info.gname = SPEAKER_USER
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def _write_tar(path: Path, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UnsafePathError(f"{path} already exists; give a new file name") from None
    except OSError as exc:
        raise UnsafePathError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    renew = [args.node] if getattr(args, "new_login", False) else []
    if renew and args.node not in config.node_hamlets():
        node_yaml(config, args.node, password_file=None, password="")  # names the known nodes
    password = Credentials.load_or_create(config, renew=renew).password(args.node)
    if renew:
        print(
            f"{args.node}: new login; reload the daemon (systemctl reload broadcastd) so the "
            "broker accepts it",
            file=sys.stderr,
        )
    out: Path | None = getattr(args, "out", None)
    tar: Path | None = getattr(args, "tar", None)
    cache_dir: Path | None = getattr(args, "cache_dir", None)
    if out is None and tar is None:
        text = node_yaml(
            config, args.node, password_file=None, password=password, cache_dir=cache_dir
        )
        print(text, end="")
        return EX_OK
    text = node_yaml(
        config,
        args.node,
        password_file=Path(PASSWORD_FILE),
        password=password,
        cache_dir=cache_dir,
    )
    files = {"node.yaml": text.encode("utf-8"), PASSWORD_FILE: (password + "\n").encode()}
    files |= _trust_file(config)
    if out is not None:
        with private_dir(out, fresh=True) as fd:
            for name, body in files.items():
                write_new(fd, name, body)
        print(f"wrote {', '.join(files)} into {out} (mode 0600, in a new 0700 dir)")
    if tar is not None:
        _write_tar(tar, bundle_tar(files, gzip=tar.name.endswith((".gz", ".tgz"))))
        print(f"wrote {tar} ({', '.join(files)}, mode 0600; extract on the speaker)")
    return EX_OK
