"""A clock the test sets by hand, handed to the code under test wherever it takes `clock`/`now`."""

from __future__ import annotations

import time


class FakeClock:
    """Stands still until the test moves it: `clock.t = ...` or `clock.t += ...`."""

    def __init__(self, t: float | None = None) -> None:
        self.t = time.time() if t is None else t

    def __call__(self) -> float:
        return self.t
