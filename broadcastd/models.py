"""Plain value types shared between modules: the plan, clips, acks. No behaviour, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Mapping
    from pathlib import Path

ItemKind = Literal["tts", "recording", "chime"]
AckStatus = Literal["received", "ready", "playing", "played", "failed", "expired", "rejected"]
ACK_STATUSES: tuple[AckStatus, ...] = (
    "received",
    "ready",
    "playing",
    "played",
    "failed",
    "expired",
    "rejected",
)
PlayStatus = Literal["live", "exercise"]

# ISO 639-2 "no linguistic content": what a playlist says of the intro and outro chimes' language.
CHIME_LANG = "zxx"

# The priority vocabulary, defined once: config, plan, envelopes and the node agent share it.
Priority = Literal["normal", "priority", "emergency"]
PRIORITIES: tuple[Priority, ...] = ("normal", "priority", "emergency")
PRIORITY_RANK: Mapping[str, int] = {"emergency": 0, "priority": 1, "normal": 2}


ADHOC_KINDS = ("announce", "emergency", "exercise")


def metric_slot(slot: str) -> str:
    """The `slot` label for metrics: an ad-hoc slot `announce-17` counts as `announce`, so each
    announcement does not create a new time series."""
    kind, _, number = slot.partition("-")
    return kind if kind in ADHOC_KINDS and number.isdigit() else slot


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One (announcement, language) variant to play in a slot."""

    announcement: str
    title: str
    category: str
    lang: str
    kind: ItemKind
    priority: str
    duration_s: float
    text: str | None = None  # for kind == "tts"
    recording: Path | None = None  # for kind == "recording"

    def as_json(self) -> dict[str, object]:
        return {
            "announcement": self.announcement,
            "lang": self.lang,
            "kind": self.kind,
            "priority": self.priority,
            "duration_s": round(self.duration_s, 1),
        }


@dataclass(frozen=True, slots=True)
class SlotPlan:
    """What one hamlet plays in one slot on one date."""

    date: dt.date
    slot: str
    hamlet: str
    play_at: dt.datetime  # timezone-aware
    expires_at: dt.datetime  # play_at + catch_up
    publish_at: dt.datetime  # play_at - lead
    items: tuple[PlanItem, ...]
    dropped: tuple[PlanItem, ...] = ()

    @property
    def duration_s(self) -> float:
        return sum(i.duration_s for i in self.items)

    def as_json(self) -> dict[str, object]:
        return {
            "date": self.date.isoformat(),
            "slot": self.slot,
            "hamlet": self.hamlet,
            "play_at": self.play_at.isoformat(),
            "items": [i.as_json() for i in self.items],
            "dropped": [i.as_json() for i in self.dropped],
        }


@dataclass(frozen=True, slots=True)
class Clip:
    """A rendered, encoded audio file in the content-addressed store."""

    sha256: str
    path: Path
    size: int
    duration_ms: int
    # Clips this one replaced in the store: the same speech rendered again (by the preferred TTS
    # engine once it answers). A playlist naming one of them says the same thing.
    earlier: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ack:
    """A node's acknowledgement of a playlist (DESIGN.md §5)."""

    node: str
    playlist: str
    status: AckStatus
    ts: int
    detail: str = ""


@dataclass(slots=True)
class RenderSummary:
    rendered: dict[str, int] = field(default_factory=dict)  # engine -> count
    cached: int = 0
    failed: list[str] = field(default_factory=list)  # "announcement/lang: reason"
    audio_seconds: float = 0.0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    """One journaled change of a node's reachability state, with its cause."""

    node: str
    hamlet: str
    from_: str
    to: str
    cause: str
    ts: float
