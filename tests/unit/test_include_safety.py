"""`include:` reads only regular files under the config file's directory, never blocks on a FIFO,
and every finding stays on one line, whatever a file or key name holds (issue 23, item 6).

`check` runs in a real process with a timeout: a FIFO that blocked the reader would otherwise
hang the test run instead of failing it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
COMMUNE = """\
commune: {id: thu, name: "Xã Thử"}
signing: {private_key_file: key}
state_dir: state
slots: {noon: {at: "11:30"}}
hamlets: [{id: ban-a, name: Bản A, households: 10}]
"""
ANNOUNCEMENT = '- {id: hop, title: Họp, text: {vi: "Mời họp."}, slots: [noon]}\n'
OUTSIDE = (
    "an include names files under the config file's directory (a relative pattern without '..')"
)


def check(cwd: Path, config: str = "c.yaml") -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from broadcastd.cli.main import main; main()",
            "check",
            "-c",
            config,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        env=env,
    )
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stderr.splitlines()


def commune(tmp_path: Path, include: str) -> Path:
    (tmp_path / "c.yaml").write_text(COMMUNE + f"include: [{include}]\n", encoding="utf-8")
    folder = tmp_path / "announcements"
    folder.mkdir()
    (folder / "a.yaml").write_text(ANNOUNCEMENT, encoding="utf-8")
    return folder


def test_a_fifo_matched_by_an_include_is_refused_at_once(tmp_path):
    folder = commune(tmp_path, "announcements/*.yaml")
    os.mkfifo(folder / "pipe.yaml")  # nobody ever writes to it
    code, err = check(tmp_path)
    assert code == 78
    assert err == [
        (
            "announcements/pipe.yaml:1:1: not a regular file (a FIFO); name a YAML file, "
            "got: 'announcements/pipe.yaml'"
        )
    ]


def test_a_fifo_as_the_config_file_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "c.yaml")
    code, err = check(tmp_path)
    assert code == 78
    assert err == ["c.yaml:1:1: not a regular file (a FIFO); name a YAML file, got: 'c.yaml'"]


def test_a_symlink_out_of_the_config_directory_is_refused(tmp_path):
    secret = tmp_path / "elsewhere" / "secret.yaml"
    secret.parent.mkdir()
    secret.write_text(ANNOUNCEMENT.replace("hop", "leak"), encoding="utf-8")
    site = tmp_path / "site"
    site.mkdir()
    folder = commune(site, "announcements/*.yaml")
    (folder / "leak.yaml").symlink_to(secret)
    code, err = check(site)
    assert code == 78
    assert err == [
        (
            f"c.yaml:6:11: include[0]: {OUTSIDE}; announcements/leak.yaml leads to {secret}, "
            "got: 'announcements/*.yaml'"
        )
    ]


def test_absolute_and_parent_patterns_are_refused_without_reading(tmp_path):
    (tmp_path / "c.yaml").write_text(
        COMMUNE + "include: [/proc/self/environ, ../*.yaml]\n", encoding="utf-8"
    )
    code, err = check(tmp_path)
    assert code == 78
    assert err == [
        f"c.yaml:6:11: include[0]: {OUTSIDE}, got: '/proc/self/environ'",
        f"c.yaml:6:31: include[1]: {OUTSIDE}, got: '../*.yaml'",
    ]


def test_a_symlink_inside_the_directory_is_followed(tmp_path):
    folder = commune(tmp_path, "announcements/*.yaml")
    shared = tmp_path / "shared.yaml"
    shared.write_text(ANNOUNCEMENT.replace("hop", "chung"), encoding="utf-8")
    (folder / "chung.yaml").symlink_to(shared)
    code, err = check(tmp_path)
    assert (code, [line for line in err if "warning" not in line]) == (0, [])


def test_a_newline_in_a_key_or_a_file_name_stays_on_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text(
        COMMUNE.replace("households: 10", '"house\\nholds": 10') + "include: [announcements/*]\n",
        encoding="utf-8",
    )
    folder = tmp_path / "announcements"
    folder.mkdir()
    (folder / "bad\nname.yaml").write_text("- [not, a, mapping\n", encoding="utf-8")
    code, err = check(tmp_path)
    assert code == 78
    assert err == [
        (
            "c.yaml:5:36: hamlets[0].house\\nholds: unknown field (did you mean 'households'?), "
            "got: 'house\\nholds'"
        ),
        (
            "announcements/bad\\nname.yaml:2:1: invalid YAML: expected ',' or ']', but got "
            "'<stream end>'"
        ),
    ]
