"""Prometheus' own linter over an exposition text: what `promtool check metrics` reports."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def promtool_findings(exposition: str) -> tuple[int, list[str]]:
    """promtool's exit code and its non-empty output lines for `exposition`."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed (apt-get install prometheus)")
    result = subprocess.run(
        [exe, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    return result.returncode, lines
