"""Times in log lines (issue 17, item 6): the commune's wall clock with its offset, on the daemon
and on a speaker, whose node.yaml names the commune's zone."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import logging
import re
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from support.communes import write_sang_moc

from broadcastd import protocol
from broadcastd.cli import console as console_cli
from broadcastd.cli.nodeconfig import node_yaml
from broadcastd.config import load_config
from broadcastd.errors import ConfigError
from broadcastd.localtime import local_time, use_log_zone
from broadcastd.node.settings import load_node_config

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
TS = dt.datetime(2026, 12, 6, 12, 55, tzinfo=dt.UTC).timestamp()


def test_a_time_reads_as_the_commune_wall_clock_with_its_offset():
    assert local_time(TS, HCM) == "2026-12-06 19:55:00+07:00"
    assert local_time(TS + 0.9, dt.UTC) == "2026-12-06 12:55:00+00:00"
    assert re.fullmatch(r"2026-12-0[67] \d\d:\d\d:00[+-]\d\d:\d\d", local_time(TS))  # this machine


@pytest.fixture
def root_stream() -> Iterator[tuple[logging.Handler, io.StringIO]]:
    """A plain handler on the root logger, as `logging.basicConfig` installs; every root
    handler's formatter is put back afterwards."""
    root = logging.getLogger()
    saved = [(h, h.formatter) for h in root.handlers]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    yield handler, stream
    root.removeHandler(handler)
    for h, formatter in saved:
        h.setFormatter(formatter)


def test_log_lines_are_stamped_in_the_zone_asked_for_each_line(root_stream):
    handler, stream = root_stream
    zone = [HCM]
    use_log_zone(lambda: zone[0])  # `broadcastd run`: the running config's zone
    record = logging.LogRecord("broadcastd", logging.INFO, __file__, 1, "config reloaded", (), None)
    record.created = TS
    handler.handle(record)
    zone[0] = ZoneInfo("Europe/Paris")  # a reload changed the commune's zone
    handler.handle(record)
    use_log_zone(HCM)  # `broadcastd-node`: node.yaml's zone
    handler.handle(record)
    assert stream.getvalue().splitlines() == [
        "2026-12-06 19:55:00+07:00 INFO config reloaded",
        "2026-12-06 13:55:00+01:00 INFO config reloaded",
        "2026-12-06 19:55:00+07:00 INFO config reloaded",
    ]


def test_the_console_logs_in_the_communes_zone(root_stream, tmp_path, monkeypatch):
    handler, stream = root_stream
    record = logging.LogRecord("broadcastd", logging.INFO, __file__, 1, "console up", (), None)
    record.created = TS

    async def serve(_loaded: object) -> None:
        handler.handle(record)

    monkeypatch.setattr(console_cli, "serve", serve)
    assert console_cli.run(argparse.Namespace(config=write_sang_moc(tmp_path))) == 0
    assert stream.getvalue() == "2026-12-06 19:55:00+07:00 INFO console up\n"


def test_node_config_writes_the_commune_zone_and_the_agent_reads_it(tmp_path: Path):
    path = write_sang_moc(tmp_path)
    protocol.generate_private_key(tmp_path / "ed25519.key")
    config = load_config(path, probe_media=False).config
    node = tmp_path / "node.yaml"
    node.write_text(node_yaml(config, "bc-01", password_file=None, password="pw"), "utf-8")  # noqa: S106 - a test login
    assert "timezone: Asia/Ho_Chi_Minh\n" in node.read_text("utf-8")
    assert load_node_config(node).tz == HCM

    # A node.yaml from before: the speaker's own zone. A wrong name: a config error at its line.
    lines = node.read_text("utf-8").splitlines()
    older = [line for line in lines if not line.startswith("timezone:")]
    node.write_text("\n".join(older) + "\n", "utf-8")
    assert load_node_config(node).tz is None
    node.write_text("\n".join([*older, "timezone: Asia/Sang_Moc"]) + "\n", "utf-8")
    with pytest.raises(ConfigError, match="timezone: unknown time zone") as caught:
        load_node_config(node)
    assert f"{node}:{len(older) + 1}:" in str(caught.value)
