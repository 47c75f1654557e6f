"""The Prometheus rules and example config pass promtool, and the rule unit tests really bite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROM = Path(__file__).resolve().parents[2] / "config" / "prometheus"


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        # Never skip: untested alert rules are how a silent commune goes unnoticed.
        pytest.fail("promtool is not installed (apt-get install prometheus)")
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_rules_are_valid():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_rule_unit_tests_pass():
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_prometheus_config_is_valid():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("original", "broken", "alert"),
    [
        ("< 0.8", "< 0.5", "BroadcastdHamletBelowTarget"),
        ("for: 15m", "for: 25m", "BroadcastdNodesOffline"),
        ("> 300", "> 30000", "BroadcastdSlotNotDispatched"),
        ('result!="ok"', 'result="ok"', "BroadcastdTtsFailing"),
        ("foreign_playlist|", "foreign-playlist|", "BroadcastdNodeMessagesRefused"),
        ("86400 < 21", "86400 < 2", "BroadcastdTlsCertificateExpiring"),
    ],
)
def test_rule_tests_catch_a_broken_rule(tmp_path, original, broken, alert):
    rules = (PROM / "alerts.yml").read_text()
    assert original in rules
    (tmp_path / "alerts.yml").write_text(rules.replace(original, broken, 1))
    shutil.copy(PROM / "alerts_test.yml", tmp_path)
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr
