"""A running daemon's /metrics, read as Prometheus reads it (for tests that spawn the daemon with
`metrics.listen` on a free loopback port)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def with_metrics(config_text: str, port: int) -> str:
    """`config_text` with a `metrics:` section listening on 127.0.0.1:`port`."""
    return config_text + f"metrics: {{listen: '127.0.0.1:{port}'}}\n"


def scrape(port: int) -> str:
    """One scrape of the daemon's /metrics (blocking: a test calls it in a thread or between
    awaits)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def sample_sum(text: str, sample: str, **labels: str) -> float:
    """The sum of `sample` (e.g. `broadcastd_bad_messages_total`) over every series whose labels
    include `labels`; 0 when there is none yet (a counter appears with its first increment)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )
