"""The synthetic commune the benchmarks run against: `hamlets` x `per_hamlet` nodes, one slot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broadcastd import protocol
from broadcastd.config import load_config
from broadcastd.transport import pki
from broadcastd.transport.broker import free_port

if TYPE_CHECKING:
    from pathlib import Path


def write_commune(  # noqa: PLR0913 - every knob is keyword-only and named
    root: Path,
    *,
    hamlets: int,
    per_hamlet: int,
    prefix: str,
    heartbeat: str,
    keepalive: str,
    tls: bool = False,
) -> Path:
    """Write `root/commune.yaml` and its signing key. Node ids are `<prefix><hh>-<nnn>` in hamlet
    `<prefix><hh>`, one household each, so a node's hamlet is its id up to the dash.

    `tls`: the speakers' TLS listener too (`broker.public`, host `localhost` on 127.0.0.1, with
    the commune CA and certificate `broadcastd tls init` makes), which the nodes then use."""
    public = f", public: {{host: localhost, port: {free_port()}, bind: 127.0.0.1}}" if tls else ""
    lines = [
        "commune: {id: bench, name: Bench, timezone: Asia/Ho_Chi_Minh}",
        f"broker: {{mode: embedded, listen: '127.0.0.1:{free_port()}'{public}}}",
        "signing: {private_key_file: ed25519.key}",
        "state_dir: state",
        "slots:",
        "  noon: {at: '11:30', max_duration: 15m, lead: 30m, catch_up: 20m}",
        "tts: {engines: [espeak], timeout: 10s}",
        f"nodes: {{heartbeat: {heartbeat}, keepalive: {keepalive}}}",
        "hamlets:",
    ]
    for h in range(hamlets):
        hamlet = f"{prefix}{h:02d}"
        nodes = ", ".join(f"{{id: {hamlet}-{n:03d}, households: 1}}" for n in range(per_hamlet))
        lines += [
            f"  - id: {hamlet}",
            f"    name: {hamlet.upper()}",
            f"    households: {per_hamlet}",
        ]
        lines.append(f"    nodes: [{nodes}]")
    path = root / "commune.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    protocol.generate_private_key(root / "ed25519.key")
    if tls:
        pki.init(load_config(path, probe_media=False).config)
    return path
