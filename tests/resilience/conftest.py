"""Resilience/abuse suite: reduced counts in `make test`, full with BROADCASTD_SOAK=1 (`make soak`).

Every test here uses a real mosquitto on 127.0.0.1 and is bounded in count and in time.
"""

from __future__ import annotations

import pytest
from support.clock import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
