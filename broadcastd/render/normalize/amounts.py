"""Phone numbers, ranges, quantities with units, plain numbers and symbols.

- Phone numbers and codes are read digit by digit in the groups they are written in, or in the
  usual ones (0912 345 678, 0208 3856 789); `115` after "gọi" is "một một năm".
- `7 - 9`, `5-10%`, `7h-9h` are ranges: "đến".
- `300 kg` -> "ba trăm ki lô gam", `5°C` -> "năm độ xê", `50.000đ/kg` -> "năm mươi nghìn đồng
  một ki lô gam", `người/hộ` -> "người một hộ".
- `1.500.000` (dots group thousands), `2,5` (the comma is the decimal mark: "hai phẩy năm"),
  `-5` -> "âm năm"; a code with a leading zero (`0123`) digit by digit.
- `&` -> "và", `>` -> "trên", `≥` -> "không dưới", a dash inside a word is a space and between
  words a pause.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from broadcastd.render.normalize.common import (
    FRACTION_NEXT,
    NUM_END,
    SIGNS,
    at_numbers,
    padded,
    preceded_by,
)
from broadcastd.render.normalize.numbers import (
    MAX_CARDINAL_DIGITS,
    cardinal,
    digits,
    fraction_digits,
    integer,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from broadcastd.render.normalize.common import Ctx

# --- phone numbers and codes ----------------------------------------------------------------

_CUES = (
    "gọi ngay|gọi|số điện thoại|điện thoại|đường dây nóng|tổng đài|hotline|số máy|liên hệ|"
    "liên lạc|nhắn tin|cấp cứu|cứu hỏa|cứu hộ|công an|chữa cháy|mã số|mã|số tài khoản|"
    "tài khoản|số thẻ|căn cước công dân|chứng minh nhân dân"
)
_CUED = re.compile(r"[0-9](?<![\w.,][0-9])[0-9]{2,}(?:[ .][0-9]{2,})*" + NUM_END)
_CUE_BEFORE = re.compile(rf"(?<!\w)(?i:{_CUES})\s*:?\s*(?:(?i:số)\s+)?$")
# "mẫu số 01" is "không một"; "số 113" is the police, not a hundred and thirteen
_NUMBERED = re.compile(r"[01](?<![\w.,][01])(?:(?<=0)[0-9]+|(?<=1)1[1-5])" + NUM_END)
_NUMBERED_BEFORE = re.compile(r"(?<!\w)(?i:số|mẫu)\s+$")
_INTERNATIONAL = re.compile(
    r"\+(?<![\w+]\+)84[ .-]?([0-9]{1,3}(?:[ .-]?[0-9]{2,4}){1,3})(?![\w/-]|[.,][0-9])"
)
_DOMESTIC = re.compile(
    r"[01](?<![\w.,+/-][01])(?:(?<=0)(?:[0-9]{2,4}(?:[ .-][0-9]{2,4}){1,3}|[0-9]{8,10})"
    r"|(?<=1)[89]00[ .]?[0-9]{3,4}(?: ?[0-9]{3})?)(?![\w/-]|[.,][0-9])"
)
_GROUPS = {8: (4, 4), 9: (3, 3, 3), 10: (4, 3, 3), 11: (4, 4, 3), 12: (4, 4, 4)}
MIN_PHONE, MAX_PHONE = 8, 11


def _digit_groups(written: str) -> str:
    """ "không chín một hai, ba bốn năm, sáu bảy tám": a pause between groups."""
    groups = re.split(r"[ .-]", written)
    if len(groups) == 1:
        number = groups[0]
        sizes = _GROUPS.get(len(number))
        if sizes is None:
            sizes = (len(number),) if len(number) <= 4 else (3,) * (len(number) // 3)
        groups, pos = [], 0
        for size in sizes:
            groups.append(number[pos : pos + size])
            pos += size
        if pos < len(number):
            groups[-1] += number[pos:]
    return ", ".join(digits(g) for g in groups if g)


def phones(text: str, _ctx: Ctx) -> str:
    text = _CUED.sub(lambda m: _after_cue(m, _CUE_BEFORE, _digit_groups), text)
    text = _NUMBERED.sub(lambda m: _after_cue(m, _NUMBERED_BEFORE, digits), text)
    text = _INTERNATIONAL.sub(
        lambda m: padded(m, f"cộng tám bốn, {_digit_groups(m.group(1))}"), text
    )
    return _DOMESTIC.sub(_domestic, text)


def _after_cue(m: re.Match[str], cue: re.Pattern[str], read: Callable[[str], str]) -> str:
    """`read(number)` when `cue` is written just before it ("gọi 115"), else the number as is."""
    if not preceded_by(cue, m.string, m.start(), reach=40):
        return m.group()
    return (
        " " + read(m.group()) if m.start() and m.string[m.start() - 1] == ":" else read(m.group())
    )


def _domestic(m: re.Match[str]) -> str:
    count = sum(c.isdigit() for c in m.group())
    if not MIN_PHONE <= count <= MAX_PHONE:
        return m.group()
    return padded(m, _digit_groups(m.group()))


# --- ranges -----------------------------------------------------------------------------------

# A dash between two numbers, after an optional hour, minute or unit mark on the first: "đến"
_RANGE = re.compile(
    r"([0-9])((?:h[0-9]{0,2}|g[0-9]{2}|:[0-9]{2})'?|\s?(?:%|°C|°|oC))?\s*[-\u2013]\s*(?=[0-9])"
)


# Three or more numbers joined by dashes are a code, not a range: NPK "5-10-3"
_CHAIN = re.compile(r"[0-9](?<![\w.,][0-9])[0-9]*(?:-[0-9]+){2,}" + NUM_END)


def ranges(text: str, _ctx: Ctx) -> str:
    text = _CHAIN.sub(lambda m: m.group().replace("-", " "), text)
    return _RANGE.sub(lambda m: m.group(1) + (m.group(2) or "") + " đến ", text)


# --- quantities -------------------------------------------------------------------------------

_SIGN = rf"(?:(?<![\w.,)])[{SIGNS}])?"
NUMBER = (
    rf"{_SIGN}(?:[0-9]{{1,3}}(?:\.[0-9]{{3}})+(?![0-9])|[0-9]{{1,3}}(?:,[0-9]{{3}}){{2,}}(?![0-9])"
    r"|[0-9]+)(?:,[0-9]+|\.[0-9]{1,2}(?![0-9.]))?"
)
_UNIT_WORDS = {
    "°C": "độ xê", "oC": "độ xê", "°F": "độ ép", "°": "độ", "%": "phần trăm",
    "‰": "phần nghìn", "km2": "ki lô mét vuông", "km": "ki lô mét", "cm": "xăng ti mét",
    "mm": "mi li mét", "m2": "mét vuông", "m3": "mét khối", "m": "mét", "ha": "héc ta",
    "kg": "ki lô gam", "mg": "mi li gam", "g": "gam", "ml": "mi li lít", "l": "lít",
    "kWh": "ki lô oát giờ", "kW": "ki lô oát", "đ": "đồng", "tr": "triệu", "k": "nghìn",
    "ph": "phút", "p": "phút",
}  # fmt: skip
_PER_WORDS = {
    **{u: w for u, w in _UNIT_WORDS.items() if u[0].isalpha() and u not in ("tr", "k", "p")},
    "h": "giờ", **{w: w for w in (
        "người", "hộ", "khẩu", "con", "cây", "tháng", "năm", "ngày", "tuần", "giờ", "phút",
        "lần", "buổi", "sào", "mẫu", "thẻ", "suất", "lít", "chiếc", "bao", "gói", "liều", "trẻ",
        "cháu", "học sinh", "lượt", "ca", "vụ", "đợt", "tấn", "tạ", "yến", "ki lô gam", "mét",
        "héc ta", "đồng", "cái", "lọ", "chai", "bình", "túi", "hecta", "viên",
    )},
}  # fmt: skip


def _alternation(words: Iterable[str]) -> str:
    """Longest first: "km2" must win over "km" and "m"."""
    return "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))


_PER = rf"(?:\s?/\s?({_alternation(_PER_WORDS)}))"
_QUANTITY = re.compile(rf"({NUMBER})\s?({_alternation(_UNIT_WORDS)}){_PER}?(?![^\W\d_])")
_PER_SLASH = re.compile(
    rf"/(?:(?<=[^\W\d_]/)|(?<=[^\W\d_] /)) ?({_alternation(_PER_WORDS)})(?![^\W\d_])"
)


def _unit(unit: str, ctx: Ctx) -> str:
    if unit == "k":
        return ctx.style.thousand
    if unit == "‰":
        return f"phần {ctx.style.thousand}"
    return _UNIT_WORDS[unit]


# What the dates left of "N/M": "2/3 số hộ" is "hai phần ba", "7/10 thôn" "bảy trên mười"
_RATIO = re.compile(r"([0-9](?<![\w/.,][0-9])[0-9]{0,5})/([0-9]{1,6})" + NUM_END)
# A price per anything: "25.000đ/giấy" is "hai mươi lăm nghìn đồng một giấy"
_MONEY_PER = re.compile(r"/(?:(?<=đồng/)|(?<=đồng /)) ?(?=[^\W\d_])")


def quantities(text: str, ctx: Ctx) -> str:
    text = at_numbers(_QUANTITY, text, lambda m: _quantity(m, ctx), signed=True)
    text = _RATIO.sub(lambda m: _ratio(m, ctx), text)
    text = _PER_SLASH.sub(lambda m: f" một {_PER_WORDS[m.group(1)]} ", text)
    return _MONEY_PER.sub(" một ", text)


def _ratio(m: re.Match[str], ctx: Ctx) -> str:
    word = "phần" if FRACTION_NEXT.match(m.string, m.end()) else "trên"
    return padded(m, f"{ctx.num(int(m.group(1)))} {word} {ctx.num(int(m.group(2)))}")


def _quantity(m: re.Match[str], ctx: Ctx) -> str:
    number, unit, per = m.groups()
    out = f"{read_number(number, ctx)} {_unit(unit, ctx)}"
    if per:
        out += " một " + _PER_WORDS[per]
    return padded(m, out)


# --- plain numbers ----------------------------------------------------------------------------

_NUMBER = re.compile(NUMBER)
_SIGNS = {"-": "âm", "\u2212": "âm", "+": "cộng"}


def numbers(text: str, ctx: Ctx) -> str:
    return at_numbers(_NUMBER, text, lambda m: padded(m, read_number(m.group(), ctx)), signed=True)


def read_number(token: str, ctx: Ctx) -> str:
    """A number as written in a Vietnamese notice: dots group thousands, the comma is the decimal
    mark; "1,500,000" (commas grouping thousands) and "2.5" (a dot before one or two digits) are
    read as their writers meant them."""
    sign = _SIGNS.get(token[0])
    if sign:
        token = token[1:]
    mark, fraction = "", ""
    if token.count(",") >= 2:
        whole = _grouped(token.split(","), ctx)
    else:
        head, comma, tail = token.partition(",")
        if comma:
            mark, fraction = "phẩy", tail
        groups = head.split(".")
        if len(groups) == 2 and len(groups[1]) < 3:
            groups, mark, fraction = groups[:1], "chấm", groups[1]
        whole = _grouped(groups, ctx) if len(groups) > 1 else integer(groups[0], ctx.style)
    out = f"{whole} {mark} {fraction_digits(fraction, ctx.style)}" if fraction else whole
    return f"{sign} {out}" if sign else out


def _grouped(groups: list[str], ctx: Ctx) -> str:
    number = "".join(groups)
    if len(number) > MAX_CARDINAL_DIGITS:
        return digits(number)
    return cardinal(int(number), ctx.style)


# --- symbols ----------------------------------------------------------------------------------

_IN_WORD_DASH = re.compile(r"[-\u2010\u2011](?<=[^\W\d_].)(?=[^\W\d_])")
_DASH = re.compile(r"[-\u2013\u2014\u2212\u2010\u2011]+\s*")
_SYMBOL_WORDS = {
    "&": "và", "+": "và", "=": "bằng", "~": "khoảng", "≈": "khoảng", "<=": "không quá",
    ">=": "không dưới", "≤": "không quá", "≥": "không dưới", "<": "dưới", ">": "trên",
    "%": "phần trăm", "°": "độ", "#": "số", "@": "a còng", "$": "đô la", "€": "ơ rô",
    "\u00d7": "nhân", "/": ",",
}  # fmt: skip
_SYMBOL = re.compile(_alternation(_SYMBOL_WORDS) + "|‰")
# Whatever else is neither a letter, a space nor punctuation the engines pause at is not read.
_UNREADABLE = re.compile(r"[^\w\s.,;:!?()\[\]\"'\u201c\u201d\u2018\u2019«»…]|_")
_FORMATTING = frozenset("*•·_|")


def symbols(text: str, ctx: Ctx) -> str:
    text = _IN_WORD_DASH.sub(" ", text)
    text = _DASH.sub(", ", text)
    text = _SYMBOL.sub(lambda m: f" {_symbol(m.group(), ctx)} ", text)
    return _UNREADABLE.sub(lambda m: _unreadable(m, ctx), text)


def _symbol(symbol: str, ctx: Ctx) -> str:
    return f"phần {ctx.style.thousand}" if symbol == "‰" else _SYMBOL_WORDS[symbol]


def _unreadable(m: re.Match[str], ctx: Ctx) -> str:
    if m.group() not in _FORMATTING:
        ctx.doubt(m.group(), "", "a symbol with no reading")
    return " "
