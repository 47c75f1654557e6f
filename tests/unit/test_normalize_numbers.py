"""Number words, checked against how Vietnamese say them (not against the code's own output)."""

from __future__ import annotations

import pytest

from broadcastd.render.normalize.numbers import (
    STYLES,
    cardinal,
    digits,
    fraction_digits,
    integer,
    month,
    ordinal,
    roman,
    to_roman,
)

NORTH, SOUTH = STYLES["north"], STYLES["south"]


@pytest.mark.parametrize(
    ("n", "north", "south"),
    [
        (0, "không", "không"),
        (1, "một", "một"),
        (4, "bốn", "bốn"),
        (5, "năm", "năm"),
        (10, "mười", "mười"),
        (11, "mười một", "mười một"),
        (14, "mười bốn", "mười bốn"),
        (15, "mười lăm", "mười lăm"),
        (20, "hai mươi", "hai mươi"),
        (21, "hai mươi mốt", "hai mươi mốt"),
        (24, "hai mươi tư", "hai mươi bốn"),
        (25, "hai mươi lăm", "hai mươi lăm"),
        (55, "năm mươi lăm", "năm mươi lăm"),
        (91, "chín mươi mốt", "chín mươi mốt"),
        (100, "một trăm", "một trăm"),
        (101, "một trăm linh một", "một trăm lẻ một"),
        (104, "một trăm linh bốn", "một trăm lẻ bốn"),
        (105, "một trăm linh năm", "một trăm lẻ năm"),
        (110, "một trăm mười", "một trăm mười"),
        (115, "một trăm mười lăm", "một trăm mười lăm"),
        (300, "ba trăm", "ba trăm"),
        (1000, "một nghìn", "một ngàn"),
        (1005, "một nghìn không trăm linh năm", "một ngàn không trăm lẻ năm"),
        (1010, "một nghìn không trăm mười", "một ngàn không trăm mười"),
        (1500, "một nghìn năm trăm", "một ngàn năm trăm"),
        (2026, "hai nghìn không trăm hai mươi sáu", "hai ngàn không trăm hai mươi sáu"),
        (2005, "hai nghìn không trăm linh năm", "hai ngàn không trăm lẻ năm"),
        (15000, "mười lăm nghìn", "mười lăm ngàn"),
        (24000, "hai mươi tư nghìn", "hai mươi bốn ngàn"),
        (105000, "một trăm linh năm nghìn", "một trăm lẻ năm ngàn"),
        (1_500_000, "một triệu năm trăm nghìn", "một triệu năm trăm ngàn"),
        (1_050_000, "một triệu không trăm năm mươi nghìn", "một triệu không trăm năm mươi ngàn"),
        (2_000_000, "hai triệu", "hai triệu"),
        (1_000_005, "một triệu không trăm linh năm", "một triệu không trăm lẻ năm"),
        (3_000_000_000, "ba tỷ", "ba tỷ"),
        (
            2_500_000_000_000,
            "hai nghìn năm trăm tỷ",
            "hai ngàn năm trăm tỷ",
        ),
        (-5, "âm năm", "âm năm"),
    ],
)
def test_cardinals_north_and_south(n, north, south):
    assert cardinal(n, NORTH) == north
    assert cardinal(n, SOUTH) == south


def test_digit_strings_that_are_codes_are_read_digit_by_digit():
    assert digits("0912") == "không chín một hai"
    assert integer("0123", NORTH) == "không một hai ba"
    assert integer("05", NORTH) == "năm"  # a day or an hour written with a zero: an amount
    assert integer("1" * 16, NORTH) == " ".join(["một"] * 16)


@pytest.mark.parametrize(
    ("written", "said"),
    [("5", "năm"), ("25", "hai mươi lăm"), ("05", "không năm"), ("14159", "một bốn một năm chín")],
)
def test_decimal_parts(written, said):
    assert fraction_digits(written, NORTH) == said


def test_ordinals_and_months_use_nhat_and_tu():
    assert [ordinal(n, NORTH) for n in (1, 2, 3, 4, 10, 24)] == [
        "nhất", "hai", "ba", "tư", "mười", "hai mươi tư",
    ]  # fmt: skip
    assert [month(n, NORTH) for n in (1, 4, 11, 12)] == ["một", "tư", "mười một", "mười hai"]
    assert month(4, SOUTH) == "tư"


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("I", 1), ("II", 2), ("IV", 4), ("IX", 9), ("XIII", 13), ("XXI", 21), ("MMXXVI", 2026)],
)
def test_roman_numerals(numeral, value):
    assert roman(numeral) == value
    assert to_roman(value) == numeral


@pytest.mark.parametrize("text", ["", "IIII", "VX", "IC", "ABC", "iv"])
def test_what_is_not_a_canonical_roman_numeral(text):
    assert roman(text) is None
