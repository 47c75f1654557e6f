"""`broadcastd keygen`: create the signing key (0600, never overwritten), print its public key.
`--rotate` replaces it with a new one while the speakers keep playing (keyrotate.py).

Only `signing.private_key_file` is read from the config, so a technician can create the key
before the rest of the commune (recordings, hamlets) is finished and passes `check`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.config.yamlsource import problem_at, read_yaml
from broadcastd.errors import EX_FAILURE, EX_OK, ConfigError, UsageError

if TYPE_CHECKING:
    import argparse


def key_path(config: Path) -> Path:
    """`signing.private_key_file`, resolved against the config file's directory."""
    located = read_yaml(config)
    data = located.data
    signing = data.get("signing") if isinstance(data, dict) else None
    value = signing.get("private_key_file") if isinstance(signing, dict) else None
    if not isinstance(value, str) or not value:
        where = located.where(("signing", "private_key_file"))
        raise ConfigError(
            [
                problem_at(
                    where,
                    "signing.private_key_file",
                    "required: the path of the Ed25519 signing key to create",
                    value,
                )
            ]
        )
    return config.parent / Path(value).expanduser()


def run(args: argparse.Namespace) -> int:
    if args.rotate:
        from broadcastd.cli import keyrotate  # noqa: PLC0415 - loads the whole config

        return keyrotate.run(args)
    if args.activate_in or args.grace or args.operator:
        raise UsageError("--activate-in, --grace and --operator go with --rotate")
    path = key_path(args.config)
    try:
        key = protocol.generate_private_key(path)
    except protocol.KeyFileExistsError as exc:
        if exc.public_key is not None:
            print(exc.public_key)
        print(f"broadcastd keygen: {path}: exists, not overwritten", file=sys.stderr)
        return EX_FAILURE
    print(protocol.public_key_b64(key))
    print(
        f"wrote {path} (mode 0600); put the public key above into every node.yaml", file=sys.stderr
    )
    return EX_OK
