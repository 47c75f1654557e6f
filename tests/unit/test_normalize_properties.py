"""Properties of the normaliser on any input: it never raises, leaves no digit and none of the
symbols it reads, and normalising its output again changes nothing."""

from __future__ import annotations

import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from broadcastd.render.normalize import Normalizer

HANDLED = set(string.digits) | set("%°&+=~<>≤≥@#/$€\u00d7‰²³-\u2013\u2014\u2212_*|\\^")
# Text built from what the steps look for: digits, separators, unit and time letters, symbols,
# capitals and Vietnamese words, so the generated cases reach deep into the rules.
PIECES = st.sampled_from(
    [
        *string.digits, ".", ",", "/", "-", "\u2013", ":", "'", " ", "  ", "\n", "h", "g", "p", "đ",
        "k", "m", "m2", "kg", "ha", "km/h", "°C", "oC", "%", "+", "&", "=", "<", ">", "≥", "(",
        ")", "ngày ", "tháng ", "năm ", "thứ ", "từ ", "đến ", "lúc ", "giờ ", "gọi ", "số ",
        "đợt ", "quý ", "lần thứ ", "UBND", "HTX", "ABC", "II", "IV", "T", "CN", "A", "x",
        "Bản Chương", "THÔNG BÁO", ".vn", "@", "www.", "com", "phút", "đồng", "/hộ", "-",
    ]
)  # fmt: skip
NOTICE_LIKE = st.lists(PIECES, max_size=40).map("".join)
NORMALIZERS = [
    Normalizer(),
    Normalizer(numbers="south"),
    Normalizer({"HTX Tân Lập": "hợp tác xã Tân Lập", "QL3C": "quốc lộ 3C", "Nà Lay": "Nà Lay"}),
]


def check(text: str) -> None:
    for normalize in NORMALIZERS:
        once = normalize(text)
        assert not HANDLED & set(once), (text, once)
        assert "\n" not in once
        assert once == once.strip()
        assert normalize(once) == once, (text, once)


@settings(max_examples=400, deadline=None)  # speed: benchmarks/normalize.py
@given(st.text())
@example("\ud800 lone surrogate 12")
@example("9" * 5000)
@example("1." * 3000)
@example("0" * 40 + "," + "5" * 40)
@example("000000000000%.vn")  # an address only once the percent is read
def test_any_unicode_string(text):
    check(text)


@settings(max_examples=1500, deadline=None)
@given(NOTICE_LIKE)
@example("từ 5 - 7/12 lúc 7h30-9h, -5°C, 50.000đ/kg, 0912 345 678, đợt II, T2-CN")
@example("1,500,000,5 2.5.5 12:30:45 24h 25h 7g 7g30 1900 1234 +84 912 345 678")
def test_notice_like_text(text):
    check(text)


@settings(deadline=None)
@given(st.lists(st.integers(min_value=-(10**15), max_value=10**15), max_size=5))
def test_numbers_of_any_size_become_words(numbers):
    text = " và ".join(f"{n:,}".replace(",", ".") for n in numbers)
    check(text)
