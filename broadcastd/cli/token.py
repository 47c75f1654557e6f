"""`broadcastd token create|list|revoke`: API tokens for other systems (read-only for now).

`create` prints the token once; only its digest is kept, so a lost token is revoked and replaced.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from broadcastd.config import load_config
from broadcastd.console import accesslog
from broadcastd.console.accounts import create_token
from broadcastd.console.store import ConsoleStore
from broadcastd.errors import EX_OK, UsageError

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    store = ConsoleStore.open(config.state_dir / "console.sqlite3")
    now = time.time()
    try:
        if args.action == "list":
            for row in store.tokens():
                used = "never" if row.last_used is None else _when(row.last_used)
                print(f"{row.name}\t{row.scope}\tcreated {_when(row.created)}\tlast used {used}")
            return EX_OK
        if args.name is None:
            raise UsageError(f"token {args.action} needs a NAME")
        if args.action == "create":
            print(create_token(store, args.name, args.scope, now))
        else:
            store.revoke_token(args.name)
            accesslog.record(store, now, "token", args.name, address="cli", detail="revoked")
            print(f"revoked {args.name}")
    finally:
        store.close()
    return EX_OK


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
