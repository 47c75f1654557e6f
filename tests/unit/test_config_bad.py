"""`broadcastd check` on broken configs: the exact error line, exit 78, never a traceback.

Each file in tests/data/bad/ holds one mistake; EXPECTED is the line a user sees for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broadcastd.cli.main import run

BAD = Path(__file__).parent.parent / "data" / "bad"
ROOT = Path(__file__).parent.parent.parent
MAPPING = "config must be a mapping of sections (commune, slots, hamlets, ...)"
NO_TTS = (
    "no configured TTS engine (gtts, espeak) speaks this language; give a recording under 'audio'"
)
LANG_RULE = (
    "expected a language tag: lowercase letters a-z without accents, 2 to 8 per word, "
    "words joined by '-' (such as 'vi', 'dao' or 'san-diu')"
)
OUTSIDE = (
    "an include names files under the config file's directory (a relative pattern without '..')"
)

EXPECTED: dict[str, list[str]] = {
    "unknown-field": [
        (
            "unknown-field.yaml:17:5: hamlets[1].colour: unknown field "
            "(valid here: id, name, households, languages, nodes, volume), got: 'colour'"
        )
    ],
    "misspelled-key": [
        (
            "misspelled-key.yaml:10:5: hamlets[0].housholds: unknown field "
            "(did you mean 'households'?), got: 'housholds'"
        )
    ],
    "bad-language-tag": [
        f"bad-language-tag.yaml:11:21: hamlets[0].languages[1]: {LANG_RULE}, got: 'Sán Dìu'"
    ],
    "newline-in-id": [
        (
            "newline-in-id.yaml:12:14: hamlets[0].nodes[0].id: expected an id of lowercase "
            "letters, digits and '-', got: 'b1\\n'"
        ),
        (
            "newline-in-id.yaml:13:34: broker.listen: expected HOST:PORT such as 127.0.0.1:1883, "
            "got: '127.0.0.1:1883\\n'"
        ),
        f"newline-in-id.yaml:17:20: announcements[0].text.vi\\n: {LANG_RULE}, got: 'vi\\n'",
    ],
    "include-outside": [
        f"include-outside.yaml:13:11: include[0]: {OUTSIDE}, got: '/etc/*.conf'",
        f"include-outside.yaml:13:24: include[1]: {OUTSIDE}, got: 'inc/../../good/*.yaml'",
    ],
    "errors-reported-together": [
        (
            "errors-reported-together.yaml:12:26: hamlets[0].languages[2]: language listed twice, "
            "got: 'dao'"
        ),
        (
            "errors-reported-together.yaml:14:7: hamlets[0].nodes: nodes cover more households "
            "than the hamlet has (40), got: 50"
        ),
        (
            "errors-reported-together.yaml:15:5: hamlets[0].nodes: duplicate key (first defined at "
            "line 13), got: 'nodes'"
        ),
        f"errors-reported-together.yaml:19:53: announcements[0].text.dao: {NO_TTS}, got: 'dao'",
        (
            "errors-reported-together.yaml:20:18: announcements[0].audio.dao: file not found "
            f"(looked for {BAD / 'recordings' / 'tiem-phong-dao.ogg'}), "
            "got: 'recordings/tiem-phong-dao.ogg'"
        ),
        (
            "errors-reported-together.yaml:21:19: announcements[0].slots[1]: unknown slot "
            "(defined: noon, afternoon), got: 'evening'"
        ),
        (
            "errors-reported-together.yaml:22:15: announcements[0].priority: input should be "
            "'normal', 'priority' or 'emergency', got: 'urgent'"
        ),
        (
            "errors-reported-together.yaml:24:12: announcements[0].until: must not be before "
            "'from' (2026-12-05), got: '2026-11-20'"
        ),
    ],
    "missing-field": ["missing-field.yaml:14:5: hamlets[1].households: required field is missing"],
    "missing-signing-key": [
        "missing-signing-key.yaml:2:10: signing.private_key_file: required field is missing"
    ],
    "duplicate-key": [
        (
            "duplicate-key.yaml:22:5: announcements[0].title: duplicate key "
            "(first defined at line 21), got: 'title'"
        )
    ],
    "tab-indent": ["tab-indent.yaml:10:1: tab used for indentation; indent with spaces"],
    "not-utf8": ["not-utf8.yaml:15:13: file is not valid UTF-8, got: 'byte 0xe1'"],
    "bad-clock-time": [
        (
            "bad-clock-time.yaml:6:19: slots.afternoon.at: the hour is out of range: expected a "
            "time of day from 00:00 to 23:59, got: '25:00'"
        )
    ],
    "bad-duration": [
        (
            "bad-duration.yaml:5:37: slots.noon.max_duration: expected a duration such as "
            "30s, 15m or 6h, got: '15 minutes'"
        )
    ],
    "unknown-slot": [
        (
            "unknown-slot.yaml:23:19: announcements[0].slots[1]: unknown slot "
            "(defined: noon, afternoon), got: 'evening'"
        )
    ],
    "unknown-hamlet": [
        (
            "unknown-hamlet.yaml:24:22: announcements[0].hamlets[1]: unknown hamlet id "
            "(defined: ban-a, ban-b), got: 'ban-z'"
        )
    ],
    "duplicate-hamlet-id": [
        (
            "duplicate-hamlet-id.yaml:14:9: hamlets[1].id: duplicate hamlet id "
            "(first at duplicate-hamlet-id.yaml:8), got: 'ban-a'"
        )
    ],
    "duplicate-node-id": [
        (
            "duplicate-node-id.yaml:18:14: hamlets[1].nodes[0].id: duplicate node id "
            "(first at duplicate-node-id.yaml:13), got: 'a-01'"
        )
    ],
    "node-households": [
        (
            "node-households.yaml:18:7: hamlets[1].nodes: nodes cover more households than the "
            "hamlet has (30), got: 35"
        )
    ],
    "negative-households": [
        (
            "negative-households.yaml:16:17: hamlets[1].households: input should be greater than "
            "or equal to 0, got: -5"
        )
    ],
    "huge-households": [
        (
            "huge-households.yaml:16:17: hamlets[1].households: input should be less than or "
            "equal to 1000000, got: 99999999999999999999"
        )
    ],
    "empty-sections": [
        "empty-sections.yaml:4:8: slots: expected at least 1 entry, got: {}",
        "empty-sections.yaml:5:10: hamlets: expected at least 1 entry, got: []",
    ],
    "long-title": [
        (
            "long-title.yaml:21:12: announcements[0].title: string should have at most 200 "
            f"characters, got: '{'Tiêm phòng ' * 6}Tiêm phòng..."
        )
    ],
    "hamlets-without-brackets": [
        (
            "hamlets-without-brackets.yaml:24:14: announcements[0].hamlets: expected all or a "
            "list of hamlet ids such as [ban-a, ban-b], got: 'ban-a'"
        )
    ],
    "no-hamlets-targeted": [
        (
            "no-hamlets-targeted.yaml:24:14: announcements[0].hamlets: expected all or at least "
            "one hamlet id, got: []"
        )
    ],
    "list-written-as-word": [
        (
            "list-written-as-word.yaml:11:16: hamlets[0].languages: expected a list, such as "
            "[a, b], got: 'vi'"
        )
    ],
    "zero-heartbeat": [
        "zero-heartbeat.yaml:3:20: nodes.heartbeat: duration must be more than 0s, got: '0s'"
    ],
    "volume-out-of-range": [
        (
            "volume-out-of-range.yaml:17:13: hamlets[1].volume: expected a level from 0 to 100, "
            "got: 170"
        )
    ],
    "yaml-tag": [
        (
            "yaml-tag.yaml:15:11: hamlets[1].name: YAML tags are not supported; write the plain "
            "value, got: '!!binary'"
        )
    ],
    "text-without-tts": [
        f"text-without-tts.yaml:22:53: announcements[0].text.dao: {NO_TTS}, got: 'dao'"
    ],
    "missing-recording": [
        (
            "missing-recording.yaml:23:18: announcements[0].audio.dao: file not found "
            f"(looked for {BAD / 'recordings' / 'tiem-phong-dao.ogg'}), "
            "got: 'recordings/tiem-phong-dao.ogg'"
        )
    ],
    "undecodable-recording": [
        (
            "undecodable-recording.yaml:23:18: announcements[0].audio.dao: not a decodable audio "
            "file, got: 'not-audio.ogg'"
        )
    ],
    "from-after-until": [
        (
            "from-after-until.yaml:25:12: announcements[0].until: must not be before 'from' "
            "(2026-12-05), got: '2026-11-20'"
        )
    ],
    "bad-timezone": [
        (
            "bad-timezone.yaml:1:46: commune.timezone: unknown time zone (use an IANA name such as "
            "Asia/Ho_Chi_Minh), got: 'Asia/Hanoi'"
        )
    ],
    "bad-id": [
        (
            "bad-id.yaml:14:9: hamlets[1].id: expected an id of lowercase letters, digits and '-', "
            "got: 'Bản Chương'"
        )
    ],
    "missing-broker-ca": [
        (
            "missing-broker-ca.yaml:4:67: broker.ca_file: file not found "
            f"(looked for {BAD / 'district-ca.pem'}), got: 'district-ca.pem'"
        ),
    ],
    "external-broker-without-url": [
        (
            "external-broker-without-url.yaml:4:9: broker: an external broker needs 'url' "
            "(mqtt://host:1883 or mqtts://host:8883)"
        )
    ],
    "include-matches-nothing": [
        (
            "include-matches-nothing.yaml:24:11: include[0]: pattern matches no file "
            f"(looked for {BAD / 'thong-bao' / '*.yaml'}), got: 'thong-bao/*.yaml'"
        )
    ],
    "include-with-error": [
        (
            # numbered within its own file, where it is the first announcement
            "inc/tiem-phong-2.yaml:6:13: announcements[0].priority: input should be 'normal', "
            "'priority' or 'emergency', got: 'urgent'"
        )
    ],
    "list-document": [f"list-document.yaml:1:1: {MAPPING}, not a list"],
    "scalar-document": [f"scalar-document.yaml:1:1: {MAPPING}, not a string"],
    "empty": [
        (
            "empty.yaml:1:1: config is empty; expected a mapping of sections "
            "(commune, slots, hamlets, ...)"
        )
    ],
    "merge-key": [
        (
            "merge-key.yaml:7:5: slots.afternoon: merge keys ('<<') are not supported; "
            "write the fields out"
        )
    ],
    "alias-bomb": [
        "alias-bomb.yaml:6:1: f: document expands to more than 100000 values (alias bomb?)"
    ],
    "deep-nesting": [
        (
            "deep-nesting.yaml:1:74: commune: document nests deeper than 64 levels "
            "(or an alias contains itself)"
        )
    ],
    "invalid-yaml": [
        "invalid-yaml.yaml:7:1: invalid YAML: expected ',' or '}', but got '<scalar>'"
    ],
    # Not one kind of error: several independent ones, all reported at once (schema errors do
    # not hide cross-reference errors, even inside the same announcement).
    "many-errors": [
        (
            "many-errors.yaml:10:17: hamlets[0].households: input should be a valid integer, "
            "got: 'many'"
        ),
        (
            "many-errors.yaml:17:14: hamlets[1].nodes[0].id: duplicate node id "
            "(first at many-errors.yaml:12), got: 'a-01'"
        ),
        (
            "many-errors.yaml:22:19: announcements[0].slots[1]: unknown slot (defined: noon), "
            "got: 'evening'"
        ),
        (
            "many-errors.yaml:27:22: announcements[1].hamlets[1]: unknown hamlet id "
            "(defined: ban-a, ban-b), got: 'ban-z'"
        ),
        (
            "many-errors.yaml:28:15: announcements[1].priority: input should be 'normal', "
            "'priority' or 'emergency', got: 'urgent'"
        ),
    ],
}


def check(capsys: pytest.CaptureFixture[str], name: str) -> tuple[int, list[str], str]:
    code = run(["check", "-c", name])
    out, err = capsys.readouterr()
    return code, err.splitlines(), out


def test_every_bad_file_has_an_expectation() -> None:
    files = {p.stem for p in BAD.glob("*.yaml")}
    assert files == set(EXPECTED)
    assert len(files - {"many-errors"}) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_config_exact_lines(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(BAD)
    started = time.perf_counter()
    code, err, out = check(capsys, f"{name}.yaml")
    assert time.perf_counter() - started < 5
    assert code == 78
    assert err == EXPECTED[name]
    n = len(EXPECTED[name])
    assert out == f"{name}.yaml: {n} error{'s' if n > 1 else ''}\n"
    assert "Traceback" not in "".join(err) + out


def test_oversize_file_is_refused_without_reading_it_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# filler\n" + ("#" + "x" * 99 + "\n") * 11_000)  # 1.1 MB of comments
    monkeypatch.chdir(tmp_path)
    code, err, _ = check(capsys, "big.yaml")
    assert code == 78
    assert err == [f"big.yaml:1:1: file is larger than 1024 KiB, got: '{big.stat().st_size} bytes'"]


def test_nesting_beyond_the_parser_stack_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    monkeypatch.chdir(tmp_path)
    code, err, _ = check(capsys, "deep.yaml")
    assert code == 78
    assert err == ["deep.yaml:1:1: document nests deeper than 64 levels"]


def test_control_character_is_one_line_at_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nul.yaml").write_bytes('commune: {id: x, name: "Bản\x00B"}\n'.encode())
    monkeypatch.chdir(tmp_path)
    code, err, _ = check(capsys, "nul.yaml")
    assert code == 78
    # the column counts characters, as every other finding's does: 'ả' is one
    assert err == ["nul.yaml:1:28: invalid YAML: a control character is not allowed, got: '\\x00'"]


def test_missing_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, err, _ = check(capsys, "nope.yaml")
    assert code == 78
    assert err == [
        (
            f"nope.yaml:1:1: cannot read file {tmp_path / 'nope.yaml'}: No such file or directory, "
            "got: 'nope.yaml'"
        )
    ]


def _installed_broadcastd() -> str:
    script = Path(sys.executable).parent / "broadcastd"
    found = str(script) if script.exists() else shutil.which("broadcastd")
    if found is None:
        pytest.fail("the broadcastd console script is not installed (pip install -e .)")
    return found


def test_installed_script_reports_in_a_real_process() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [_installed_broadcastd(), "check", "-c", "many-errors.yaml"],
        cwd=BAD,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert proc.returncode == 78
    assert proc.stderr.splitlines() == EXPECTED["many-errors"]
    assert proc.stdout == "many-errors.yaml: 5 errors\n"
    assert "Traceback" not in proc.stderr


def test_include_error_names_the_included_file_with_absolute_config_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err, _ = check(capsys, str(BAD / "include-with-error.yaml"))
    assert code == 78
    assert err[0].startswith(f"{BAD / 'inc' / 'tiem-phong-2.yaml'}:6:13: ")


def test_reader_leaving_early_is_no_traceback() -> None:
    # `broadcastd schedule --json | head`: stdout closes while a month's plan is still coming.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [_installed_broadcastd(), "schedule", "-c", "config/sang-moc.yaml", "--days", "30"]
    with subprocess.Popen(
        [*argv, "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.read(1) == b"["
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert err == ""
    assert code == 1


def test_included_mapping_is_named_in_yaml_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        (BAD / "negative-households.yaml").read_text().replace("households: -5", "households: 30")
    )
    (tmp_path / "c.yaml").write_text(f"include: [inc/*.yaml]\n{text}")
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "one.yaml").write_text("id: not-a-list\n")
    monkeypatch.chdir(tmp_path)
    code, err, _ = check(capsys, "c.yaml")
    assert code == 78
    assert err == [
        "inc/one.yaml:1:1: an included file must hold a list of announcements, not a mapping"
    ]
