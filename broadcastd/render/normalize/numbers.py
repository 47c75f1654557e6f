"""Numbers as Vietnamese words: cardinals, decimals, digit strings, ordinals, months, Roman.

Written here rather than taken from num2words (`lang="vi"`, 0.5.14), whose output a listener would
hear as wrong: 2026 -> "hai nghìn lẻ hai mươi sáu" (no "không trăm"), -5 -> "mười lăm",
2,5 -> "hai phẩy năm mươi", and neither "linh" nor "tư" is available. The rules are short:

- groups of three under nghìn / triệu / tỷ; a group after a higher one is read in full, so a zero
  hundred is said ("hai nghìn không trăm hai mươi sáu") and a zero ten is "linh" (north) or "lẻ"
  (south): "một trăm linh năm";
- after "mươi", 1 is "mốt", 4 is "tư" (north; "bốn" south) and 5 is "lăm"; after "mười", 5 is
  "lăm" too;
- the north says "nghìn", the south "ngàn".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NumberStyle = Literal["north", "south"]

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
# Beyond this, a digit string is an identifier, not an amount: it is read digit by digit.
MAX_CARDINAL_DIGITS = 15


@dataclass(frozen=True, slots=True)
class Style:
    """The words that differ between the northern standard and southern usage."""

    zero_ten: str  # 105: "một trăm linh năm" / "một trăm lẻ năm"
    thousand: str  # "nghìn" / "ngàn"
    four_after_tens: str  # 24: "hai mươi tư" / "hai mươi bốn"


STYLES: dict[str, Style] = {
    "north": Style("linh", "nghìn", "tư"),
    "south": Style("lẻ", "ngàn", "bốn"),
}


def _below_thousand(n: int, style: Style, *, full: bool) -> list[str]:
    """0 < n < 1000; `full` when a higher group precedes (then the hundreds are always said)."""
    hundreds, rest = divmod(n, 100)
    words = [DIGITS[hundreds], "trăm"] if hundreds or full else []
    if rest == 0:
        return words
    if rest < 10:
        return [*words, style.zero_ten, DIGITS[rest]] if words else [DIGITS[rest]]
    return words + _tens(rest, style)


def _tens(n: int, style: Style) -> list[str]:
    """10 <= n < 100."""
    tens, units = divmod(n, 10)
    words = ["mười"] if tens == 1 else [DIGITS[tens], "mươi"]
    if units == 0:
        return words
    if units == 5:
        return [*words, "lăm"]
    if tens > 1 and units == 1:
        return [*words, "mốt"]
    if tens > 1 and units == 4:
        return [*words, style.four_after_tens]
    return [*words, DIGITS[units]]


def _spell(n: int, style: Style, *, full: bool) -> list[str]:
    for size, name in ((10**9, "tỷ"), (10**6, "triệu"), (1000, style.thousand)):
        if n >= size:
            high, low = divmod(n, size)
            words = [*_spell(high, style, full=full), name]
            return words + _spell(low, style, full=True) if low else words
    return _below_thousand(n, style, full=full) if n else []


def cardinal(n: int, style: Style) -> str:
    """0 -> "không", 2026 -> "hai nghìn không trăm hai mươi sáu", -3 -> "âm ba"."""
    if n < 0:
        return "âm " + cardinal(-n, style)
    return " ".join(_spell(n, style, full=False)) if n else DIGITS[0]


def digits(text: str) -> str:
    """Each ASCII digit as a word: "0912" -> "không chín một hai"."""
    return " ".join(DIGITS[ord(c) - 48] for c in text if "0" <= c <= "9")


def integer(text: str, style: Style) -> str:
    """An unsigned digit string as a listener expects it: an amount, or digit by digit when it is
    a code (leading zero, three digits or more) or too long to be an amount."""
    if len(text) > MAX_CARDINAL_DIGITS or (len(text) >= 3 and text[0] == "0"):
        return digits(text)
    return cardinal(int(text), style)


def fraction_digits(text: str, style: Style) -> str:
    """The part after "phẩy": short parts as a number ("2,25" -> "hai mươi lăm"), others (and a
    leading zero: "0,05" -> "không năm") digit by digit."""
    if len(text) <= 2 and text[0] != "0":
        return cardinal(int(text), style)
    return digits(text)


def ordinal(n: int, style: Style) -> str:
    """What follows "thứ": 1 -> "nhất", 4 -> "tư", otherwise the cardinal."""
    if n == 1:
        return "nhất"
    if n == 4:
        return "tư"
    return cardinal(n, style)


def month(n: int, style: Style) -> str:
    """What follows "tháng": April is "tháng tư" everywhere."""
    return "tư" if n == 4 else cardinal(n, style)


_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman(text: str) -> int | None:
    """The value of a canonical Roman numeral (I..MMMCMXCIX), None if `text` is not one."""
    if not text or any(c not in _ROMAN for c in text):
        return None
    total = 0
    for i, c in enumerate(text):
        value = _ROMAN[c]
        total += -value if i + 1 < len(text) and _ROMAN[text[i + 1]] > value else value
    return total if 0 < total < 4000 and to_roman(total) == text else None


def to_roman(n: int) -> str:
    out = []
    for value, letters in (
        (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
        (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
    ):  # fmt: skip
        count, n = divmod(n, value)
        out.append(letters * count)
    return "".join(out)
