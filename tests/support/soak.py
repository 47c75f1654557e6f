"""How hard the resilience suite pushes: reduced counts in `make test`, full ones in `make soak`
(BROADCASTD_SOAK=1)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SOAK = os.environ.get("BROADCASTD_SOAK") == "1"


def count(reduced: int, full: int) -> int:
    """`full` under `make soak`, `reduced` in `make test`."""
    return full if SOAK else reduced


def examples(reduced: int, full: int) -> settings:
    """Hypothesis settings for this suite: no per-example deadline (loaded CI machines)."""
    return settings(
        max_examples=count(reduced, full),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
