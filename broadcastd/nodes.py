"""Node reachability (DESIGN.md §6): a pure state machine over an injected clock."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Transition:
    """One journaled change of a node's reachability state, with its cause."""

    node: str
    hamlet: str
    from_: str
    to: str
    cause: str
    ts: float
