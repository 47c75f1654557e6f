"""`broadcastd acl`: mosquitto password and ACL entries for the controller and every node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broadcastd.config import load_config
from broadcastd.transport.credentials import (
    Credentials,
    acl_text,
    password_file_lines,
    write_broker_files,
)

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    # Media files do not affect who may publish where; skip probing them.
    config = load_config(args.config, probe_media=False).config
    if args.out is not None:
        passwd, acl, creds = write_broker_files(config, args.out)
        print(f"wrote {passwd} and {acl} ({len(creds.passwords)} users, mode 0600)")
        print(f"passwords are kept in {creds.path}")
        return 0
    creds = Credentials.load_or_create(config)
    print("# mosquitto password_file")
    print(password_file_lines(creds), end="")
    print()
    print("# mosquitto acl_file")
    print(acl_text(config), end="")
    return 0
