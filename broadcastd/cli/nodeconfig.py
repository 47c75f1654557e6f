"""`broadcastd node-config NODE`: a ready node.yaml for one speaker; provisioning is one command."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import yaml

from broadcastd import protocol
from broadcastd.config import Config, load_config
from broadcastd.errors import EX_OK, UsageError
from broadcastd.transport.broker import Credentials

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

NODE_CACHE_DIR = "/var/lib/broadcastd-node"
DEFAULT_PLAYER = "ffplay -nodisp -autoexit -loglevel error -volume {volume} {file}"


def node_yaml(
    config: Config,
    node_id: str,
    *,
    password_file: Path | None,
    password: str,
    cache_dir: Path | None = None,
) -> str:
    hamlets = config.node_hamlets()
    if node_id not in hamlets:
        known = ", ".join(sorted(hamlets)) or "none"
        raise UsageError(f"no node {node_id!r} in the config (known nodes: {known})")
    key = protocol.load_private_key(config.signing.private_key_file)
    broker: dict[str, object] = {"url": config.broker.url_for_nodes, "username": node_id}
    if password_file is not None:
        broker["password_file"] = str(password_file)
    else:
        broker["password"] = password
    doc = {
        "node": {"id": node_id, "hamlet": hamlets[node_id].id, "commune": config.commune.id},
        "broker": broker,
        "public_key": protocol.public_key_b64(key.public_key()),
        "cache_dir": str(cache_dir.absolute()) if cache_dir is not None else NODE_CACHE_DIR,
        "player": DEFAULT_PLAYER,
        "heartbeat": f"{int(config.nodes.heartbeat.total_seconds())}s",
    }
    name = hamlets[node_id].name
    header = f"# broadcastd-node config for {node_id} ({name}); keep this file private (0600)\n"
    return header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    password = Credentials.load_or_create(config).password(args.node)
    out: Path | None = getattr(args, "out", None)
    cache_dir: Path | None = getattr(args, "cache_dir", None)
    if out is None:
        text = node_yaml(
            config, args.node, password_file=None, password=password, cache_dir=cache_dir
        )
        print(text, end="")
        return EX_OK
    out.mkdir(parents=True, exist_ok=True)
    pw_path = (out / "password").absolute()
    text = node_yaml(
        config, args.node, password_file=pw_path, password=password, cache_dir=cache_dir
    )
    for path, body in ((pw_path, password + "\n"), (out / "node.yaml", text)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
    print(f"wrote {out / 'node.yaml'} and {pw_path}")
    return EX_OK
