"""`broadcastd operator add|passwd|remove|list`: the console's accounts.

The password is read from standard input (one line) or, at a terminal, prompted twice; it is
never an argument, where `ps` and shell history would show it.
"""

from __future__ import annotations

import getpass
import sys
import time
from typing import TYPE_CHECKING

from broadcastd.config import load_config
from broadcastd.console.accounts import remove_operator, set_operator
from broadcastd.console.store import ConsoleStore
from broadcastd.errors import EX_OK, UsageError

if TYPE_CHECKING:
    import argparse


def read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise UsageError("no password on standard input")
    return line.removesuffix("\n").removesuffix("\r")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    store = ConsoleStore.open(config.state_dir / "console.sqlite3")
    now = time.time()
    try:
        if args.action == "list":
            for row in store.operators():
                print(f"{row.name}\t{row.role}")
            return EX_OK
        if args.name is None:
            raise UsageError(f"operator {args.action} needs a NAME")
        if args.action == "remove":
            remove_operator(store, args.name, now)
            print(f"removed {args.name}; their sessions are ended")
        elif args.action == "add":
            set_operator(
                store,
                config,
                args.name,
                password=read_password(),
                role=args.role or "viewer",
                now=now,
                create=True,
            )
            print(f"added {args.name} ({args.role or 'viewer'})")
        else:
            set_operator(
                store,
                config,
                args.name,
                password=read_password(),
                role=args.role,
                now=now,
                create=False,
            )
            print(f"changed {args.name}; their sessions are ended")
    finally:
        store.close()
    return EX_OK
