"""Issue 17.4: every control request is attributed, and the CLI says what it can prove.

With `emergency.approvals: 2`, cancel and stop need an operator; the journal (and its audit chain)
records the operator as claimed beside the Unix user the control socket's peer credentials prove.
A real daemon with its embedded mosquitto, driven by the real `broadcastd` CLI.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sqlite3
from typing import TYPE_CHECKING

import pytest
from support.e2e import write_commune

from broadcastd import cli
from broadcastd.controller.controlsocket import ControlError, request
from broadcastd.journal import audit

if TYPE_CHECKING:
    from pathlib import Path

    from support.e2e import E2E


def events(path: Path) -> list[tuple[str, dict[str, object]]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT kind, detail FROM events ORDER BY id").fetchall()
    finally:
        conn.close()
    return [(kind, json.loads(detail)) for kind, detail in rows if detail.startswith("{")]


async def cli_run(e2e: E2E, *argv: str) -> int:
    return await asyncio.to_thread(cli.run, [*argv, "-c", str(e2e.config_path)])


async def test_cancel_and_stop_need_an_operator_and_the_journal_says_who(tmp_path, capsys):
    e2e = write_commune(
        tmp_path,
        hamlets=2,
        nodes_per_hamlet=1,
        play_in=600,
        extra=("emergency:", "  approvals: 2", "  operators: [an, binh]"),
    )
    me = getpass.getuser()
    journal_path = e2e.config.state_dir / "journal.sqlite3"
    sock = e2e.config.state_dir / "broadcastd.sock"
    async with e2e.running(fleet=False) as run:
        await asyncio.wait_for(run.daemon.link.connected.wait(), 10)
        capsys.readouterr()
        assert await cli_run(e2e, "stop", "--all") == 1
        err = capsys.readouterr().err
        assert "stop needs --operator NAME when emergency.approvals is 2 (one of: an, binh)" in err
        assert "Traceback" not in err
        with pytest.raises(ControlError, match="cancel needs --operator"):
            await request(sock, {"cmd": "cancel", "id": "announce-1"})
        with pytest.raises(ControlError, match="unknown operator 'mallory'"):
            await request(sock, {"cmd": "stop", "hamlets": "all", "operator": "mallory"})

        said = await request(
            sock, {"cmd": "announce", "text": "Họp thôn tối nay", "now": True, "operator": "an"}
        )
        assert said["recorded"] == {
            "operator": "an",
            "operator_verified": False,
            "unix_user": me,
            "unix_user_verified": True,
        }
        assert await cli_run(e2e, "cancel", said["id"], "--operator", "binh") == 0
        err = capsys.readouterr().err
        assert f"operator 'binh' as given (not verified), from Unix user '{me}'" in err
        assert await cli_run(e2e, "stop", "--hamlets", "h01", "--operator", "an") == 0

    recorded = events(journal_path)
    kinds = [k for k, _ in recorded]
    assert kinds.count("cancel") == 2  # one signed cancel per hamlet's playlist
    assert "stop" in kinds
    for kind, detail in recorded:
        if kind in ("cancel", "stop"):
            assert detail["operator"] == ("binh" if kind == "cancel" else "an")
            assert detail["unix_user"] == me
            assert isinstance(detail["pid"], int)
    conn = sqlite3.connect(journal_path)
    (issue,) = conn.execute("SELECT detail FROM events WHERE kind='issue'").fetchone()
    conn.close()
    assert f"(operator: an, approved by: -, Unix user: {me})" in issue
    refused = [(d["cmd"], d["operator"]) for k, d in recorded if k == "refused"]
    assert refused == [("stop", None), ("cancel", None), ("stop", "mallory")]
    assert audit.verify(journal_path) is None  # the attribution is under the hash chain too
