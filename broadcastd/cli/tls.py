"""`broadcastd tls init|renew|show`: the commune CA and the speakers' listener certificate.

`init` once (the CA certificate goes into every node bundle), `renew` before the server
certificate expires or after `broker.public` changed (then reload the daemon: mosquitto reads
the new certificate on SIGHUP, and speakers need nothing new), `show` to see what is in use.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING

from broadcastd.config import load_config
from broadcastd.errors import EX_FAILURE, EX_OK
from broadcastd.transport import pki

if TYPE_CHECKING:
    import argparse


def _line(name: str, info: pki.CertInfo, now: dt.datetime) -> str:
    names = ", ".join((*info.dns_names, *info.addresses))
    covers = f"; names {names}" if names else ""
    return (
        f"{name}: {info.subject}, expires {info.not_after:%Y-%m-%d} "
        f"({info.days_left(now):.0f} days){covers}; sha256 {info.sha256}"
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, probe_media=False).config
    files = pki.TlsFiles.for_config(config)
    now = dt.datetime.now(dt.UTC)
    if args.action == "show":
        failed = False
        for name, found in pki.status(files).items():
            if isinstance(found, pki.PkiError):
                print(f"{name}: {found}", file=sys.stderr)
                failed = True
            else:
                print(_line(name, found, now))
        return EX_FAILURE if failed else EX_OK
    ca, server = pki.init(config) if args.action == "init" else pki.renew(config)
    print(_line("ca", ca, now))
    print(_line("server", server, now))
    hint = (
        "new bundles from `broadcastd node-config` carry ca.crt"
        if args.action == "init"
        else "reload the daemon (systemctl reload broadcastd); speakers need nothing new"
    )
    print(f"wrote {files.directory} (keys mode 0600); {hint}", file=sys.stderr)
    return EX_OK
