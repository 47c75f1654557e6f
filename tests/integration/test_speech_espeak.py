"""The issue's example read by the real espeak-ng: before normalisation it switches to an English
voice and spells letters; after, every word is one Vietnamese word, read exactly as the sentence a
person would write out by hand."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from broadcastd.render.normalize import Normalizer

# (as staff write it, as a person reads it aloud: written by hand)
EXAMPLES = [
    (
        "UBND xã ngày 15/12/2026 lúc 7h30, 5°C, 300 kg",
        (
            "ủy ban nhân dân xã ngày mười lăm tháng mười hai năm hai nghìn không trăm hai mươi sáu "
            "lúc bảy giờ ba mươi phút, năm độ xê, ba trăm ki lô gam"
        ),
    ),
    ("UBND", "ủy ban nhân dân"),
    ("7h30", "bảy giờ ba mươi phút"),
    ("5°C", "năm độ xê"),
    ("15/12/2026", "ngày mười lăm tháng mười hai năm hai nghìn không trăm hai mươi sáu"),
    ("300 kg", "ba trăm ki lô gam"),
    ("7 - 9 giờ", "bảy đến chín giờ"),
    ("BHYT, HTX, THCS, PCCC", "bảo hiểm y tế, hợp tác xã, trung học cơ sở, phòng cháy chữa cháy"),
]


def phonemes(text: str) -> str:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (apt-get install espeak-ng)")
    return subprocess.run(
        ["espeak-ng", "-v", "vi", "-q", "-x", text], check=True, capture_output=True, text=True
    ).stdout


def test_the_raw_example_is_what_the_issue_complains_about():
    raw = phonemes(EXAMPLES[0][0])
    assert "(en)" in raw  # UBND in an English voice


@pytest.mark.parametrize(("written", "by_hand"), EXAMPLES)
def test_espeak_reads_the_normalised_text_in_vietnamese_word_for_word(written, by_hand):
    spoken = Normalizer()(written)
    assert spoken == by_hand
    heard = phonemes(spoken)
    assert "(en)" not in heard  # no switch to the English voice
    # one phoneme word per written word: nothing spelled out letter by letter, no digits merged
    assert len(heard.split()) == len(spoken.split())
