"""`tts.numbers`, `tts.lexicon` and `tts.voices` in the config: accepted as written, and every
mistake reported at its line like any other config error."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import pytest

from broadcastd.config import load_config
from broadcastd.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

HEAD = """\
commune: {id: x, name: "X"}
signing: {private_key_file: key}
state_dir: state
slots:
  noon: {at: "11:30"}
hamlets:
  - {id: a, name: A, households: 1}
"""


def write(tmp_path: Path, tts: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(HEAD + textwrap.dedent(tts), encoding="utf-8")
    return path


def test_a_tts_section_with_lexicon_numbers_and_voices_loads(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """\
            tts:
              engines: [gtts, espeak]
              numbers: south
              lexicon:
                "HTX Tân Lập": "hợp tác xã Tân Lập"
                "Sảng Mộc": "Sảng Mộc"
              voices:
                vi: {gtts: {tld: com.vn, slow: true}, espeak: {voice: vi-vn-x-south, rate: 130}}
            """,
        )
    ).config
    assert config.tts.numbers == "south"
    assert config.tts.lexicon == {"HTX Tân Lập": "hợp tác xã Tân Lập", "Sảng Mộc": "Sảng Mộc"}
    vi = config.tts.voice("vi")
    assert (vi.gtts.tld, vi.gtts.slow) == ("com.vn", True)
    assert (vi.espeak.voice, vi.espeak.variant, vi.espeak.rate) == ("vi-vn-x-south", None, 130)


def test_defaults_are_north_no_lexicon_and_a_slower_espeak(tmp_path):
    config = load_config(write(tmp_path, "")).config
    assert (config.tts.numbers, config.tts.lexicon) == ("north", {})
    assert config.tts.voice("vi").espeak.rate == 150  # espeak-ng's own default is 175


RATE = "input should be greater than or equal to 80"
VARIANT = "expected an espeak-ng variant such as f2 or m3 (espeak-ng --voices=variant)"
TLD = "expected a Google domain ending such as com or com.vn"
LEXICON = "expected text on one line, without surrounding spaces"


@pytest.mark.parametrize(
    ("tts", "expected"),
    [
        (
            "tts: {numbers: central}\n",
            "c.yaml:8:16: tts.numbers: input should be 'north' or 'south', got: 'central'",
        ),
        (
            'tts:\n  lexicon: {"Nà Lay": ""}\n',
            f"c.yaml:9:23: tts.lexicon.Nà Lay: {LEXICON}, got: ''",
        ),
        (
            "tts:\n  voices:\n    vi: {espeak: {rate: 20}}\n",
            f"c.yaml:10:25: tts.voices.vi.espeak.rate: {RATE}, got: 20",
        ),
        (
            "tts:\n  voices:\n    vi: {espeak: {variant: f 2}}\n",
            f"c.yaml:10:28: tts.voices.vi.espeak.variant: {VARIANT}, got: 'f 2'",
        ),
        (
            "tts:\n  voices:\n    vi: {gtts: {tld: google.com}}\n",
            f"c.yaml:10:22: tts.voices.vi.gtts.tld: {TLD}, got: 'google.com'",
        ),
        (
            "tts:\n  voices:\n    dao: {espeak: {rate: 120}}\n",
            "c.yaml:9:3: tts: voices: no configured TTS engine speaks dao (spoken: vi)",
        ),
    ],
)
def test_mistakes_are_reported_at_their_line(tmp_path, tts, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, tts))
    lines = [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]
    assert lines == [expected]
