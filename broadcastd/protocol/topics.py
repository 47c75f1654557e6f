"""Topic names of the MQTT contract (DESIGN.md §5) under `bcast/v1/<commune>/`."""

from __future__ import annotations

import re

from broadcastd.protocol.limits import SHA256_RE

_TOPIC_ID = re.compile(r"[^/+#\x00]{1,128}")


class Topics:
    """Topic names under `bcast/v1/<commune>/`."""

    def __init__(self, commune: str) -> None:
        self.commune = commune
        self.root = f"bcast/v1/{commune}"

    def controller_state(self) -> str:
        return f"{self.root}/controller/state"

    def playlist(self, hamlet: str) -> str:
        return f"{self.root}/hamlet/{hamlet}/playlist"

    def control(self, hamlet: str) -> str:
        return f"{self.root}/hamlet/{hamlet}/control"

    def keys(self) -> str:
        """The retained key-rotation control, commune-wide (daemon -> every node)."""
        return f"{self.root}/keys"

    def audio(self, sha256: str, index: int | str) -> str:
        return f"{self.root}/audio/{sha256}/{index}"

    def audio_clip_filter(self, sha256: str) -> str:
        """Every chunk of one clip: what a node subscribes to while it fetches that clip."""
        return f"{self.root}/audio/{sha256}/+"

    def audio_filter(self) -> str:
        return f"{self.root}/audio/#"

    def node_state(self, node: str) -> str:
        return f"{self.root}/node/{node}/state"

    def node_heartbeat(self, node: str) -> str:
        return f"{self.root}/node/{node}/heartbeat"

    def node_ack(self, node: str) -> str:
        return f"{self.root}/node/{node}/ack"

    def receipt(self, node: str) -> str:
        """Where the daemon confirms a node's journaled acks (daemon -> that node only)."""
        return f"{self.root}/receipt/{node}"

    def nodes_filter(self) -> str:
        return f"{self.root}/node/+/+"

    def parse(self, topic: str) -> tuple[str, ...] | None:  # noqa: PLR0911 - one return per topic kind
        """Route an inbound topic: ("controller_state",), ("playlist", hamlet), ("control",
        hamlet), ("audio", sha256, index), ("node_state"|"node_heartbeat"|"node_ack", node),
        ("receipt", node), ("keys",);
        None for anything else (including malformed ids)."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if any(not _TOPIC_ID.fullmatch(p) for p in parts):
            return None
        match parts:
            case ["controller", "state"]:
                return ("controller_state",)
            case ["keys"]:
                return ("keys",)
            case ["hamlet", hamlet, ("playlist" | "control") as kind]:
                return (kind, hamlet)
            case ["audio", sha, index] if SHA256_RE.fullmatch(sha) and index.isdecimal():
                return ("audio", sha, index)
            case ["node", node, ("state" | "heartbeat" | "ack") as kind]:
                return (f"node_{kind}", node)
            case ["receipt", node]:
                return ("receipt", node)
        return None
