"""The control commands refuse a malformed id list before anything reaches the daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcastd.cli.main import run

EXAMPLE = Path(__file__).parent.parent.parent / "config" / "sang-moc.yaml"


@pytest.mark.parametrize(
    ("argv", "flag", "value"),
    [
        (["announce", "--text", "x", "--now", "--hamlets", ""], "--hamlets", ""),
        (["announce", "--text", "x", "--hamlets", "ban-chuong,"], "--hamlets", "ban-chuong,"),
        (["stop", "--hamlets", ","], "--hamlets", ","),
        (["volume", "50", "--nodes", ""], "--nodes", ""),
        (["volume-schedule", "06:00=80", "--hamlets", ""], "--hamlets", ""),
    ],
)
def test_an_empty_id_list_is_a_usage_error_not_every_hamlet(
    argv: list[str], flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The daemon reads an empty --hamlets as all of them: `--hamlets "$UNSET"` reached everyone.
    code = run([*argv, "-c", str(EXAMPLE)])
    assert code == 2
    also = ", or all" if flag == "--hamlets" else ""
    err = capsys.readouterr().err
    assert (
        err == f"broadcastd {argv[0]}: {flag} takes ids separated by commas{also}, got: {value!r}\n"
    )


@pytest.mark.parametrize("extra", [[], ["--all", "--hamlets", "ban-chuong"]])
def test_stop_names_its_hamlets_or_all(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # A bare `stop`, typed to see its usage, used to silence every speaker of the commune.
    assert run(["stop", "-c", str(EXAMPLE), *extra]) == 2
    err = capsys.readouterr().err
    assert err == "broadcastd stop: stop needs --hamlets a,b or --all (every speaker), not both\n"


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        (["25:00=50"], "schedule: a time of day is HH:MM, got: '25:00'"),
        (["06:00=150"], "schedule.06:00: a level is a whole number from 0 to 100, got: 150"),
    ],
)
def test_a_volume_schedule_the_daemon_would_refuse_is_a_usage_error(
    levels: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["volume-schedule", *levels, "-c", str(EXAMPLE)])
    assert code == 2
    assert capsys.readouterr().err == f"broadcastd volume-schedule: {message}\n"
