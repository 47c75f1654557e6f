"""Dates, times, weekdays, months, ordinals and Roman numerals, as a notice is read aloud.

`15/12/2026` -> "ngày mười lăm tháng mười hai năm hai nghìn không trăm hai mươi sáu" ("ngày" is
not doubled after a written "ngày"); `5-7/12` -> "ngày năm đến bảy tháng mười hai"; `12/2026` ->
"tháng mười hai năm ..."; `7h30`, `07:30`, `7h30'` -> "bảy giờ ba mươi phút"; `19 giờ 30` gets its
"phút"; `thứ 2` -> "thứ hai", `thứ 4` -> "thứ tư", `lần thứ 1` -> "lần thứ nhất"; `T2-T6` -> "thứ
hai đến thứ sáu"; `tháng 4` -> "tháng tư"; `đợt II` -> "đợt hai", `lần thứ IV` -> "lần thứ tư".
A day/month pair is a date unless a fraction is meant ("2/3 số hộ") or it is "24/7".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from broadcastd.render.normalize.common import (
    COUNT_NEXT,
    FRACTION_NEXT,
    NUM_END,
    at_numbers,
    padded,
    preceded_by,
)
from broadcastd.render.normalize.numbers import month, ordinal, roman

if TYPE_CHECKING:
    from broadcastd.render.normalize.common import Ctx

_DT = (
    r"[0-9]{1,2}/[0-9]{1,2}(?:/(?:[0-9]{4}|[0-9]{2}))?"
    r"|[0-9]{1,2}-[0-9]{1,2}-(?:[0-9]{4}|[0-9]{2})"
    r"|[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4}"
)
_DAY_WORD = r"(?i:ngày|mùng|mồng)"
_DATE = re.compile(
    rf"(?<![\w/.,-])(?:([0-9]{{1,2}})\s*[-\u2013]\s*)?({_DT})"
    rf"(?:(\s*(?:[-\u2013]|đến)\s*)(?:{_DAY_WORD}\s+)?({_DT}))?(?![\w/]|[.,][0-9])"
)
# "ngày 15/12" already says "ngày"; "mùng 5/12" says "mùng"
_DAY_WORD_BEFORE = re.compile(rf"(?<!\w){_DAY_WORD}\s+$")
# A number's first digit, not glued to what is before it. Patterns that start with a character
# class let the regex engine skip straight to the places where they can match.
_FIRST = r"[0-9](?<![\w/.,-][0-9])"
_ISO_DATE = re.compile(rf"({_FIRST}[0-9]{{3}})-([0-9]{{2}})-([0-9]{{2}})(?![\w/]|[.,][0-9])")
_MONTH_YEAR = re.compile(rf"({_FIRST}[0-9]?)/([0-9]{{4}})(?![\w/]|[.,][0-9])")
_MONTH_WORD_BEFORE = re.compile(r"(?<!\w)(?i:tháng)\s+$")
_ROUND_THE_CLOCK = "24/7"


def _parse(token: str) -> tuple[int, int, str | None] | None:
    parts = re.split(r"[/.-]", token)
    day, mon = int(parts[0]), int(parts[1])
    if not (1 <= day <= 31 and 1 <= mon <= 12):
        return None
    return day, mon, parts[2] if len(parts) > 2 else None


def _day_month(ctx: Ctx, day: int, mon: int, year: str | None) -> str:
    """ "mười lăm tháng mười hai năm ..." (the caller says "ngày")."""
    out = f"{ctx.num(day)} tháng {month(mon, ctx.style)}"
    return f"{out} năm {ctx.num(int(year))}" if year else out


def dates(text: str, ctx: Ctx) -> str:
    text = _ISO_DATE.sub(lambda m: _iso(m, ctx), text)
    text = at_numbers(_DATE, text, lambda m: _date(m, ctx))
    return _MONTH_YEAR.sub(lambda m: _month_year(m, ctx), text)


def _iso(m: re.Match[str], ctx: Ctx) -> str:
    year, mon, day = m.groups()
    if not (1 <= int(day) <= 31 and 1 <= int(mon) <= 12):
        return m.group()
    return padded(m, "ngày " + _day_month(ctx, int(day), int(mon), year))


def _date(m: re.Match[str], ctx: Ctx) -> str:
    first_day, first, sep, second = m.groups()
    parsed = _parse(first)
    if parsed is None:
        return m.group()
    day, mon, year = parsed
    if year is None and first_day is None and second is None:
        after = m.end()
        if first == _ROUND_THE_CLOCK or any(
            p.match(m.string, after) for p in (FRACTION_NEXT, COUNT_NEXT)
        ):
            return m.group()
    lead = "" if preceded_by(_DAY_WORD_BEFORE, m.string, m.start()) else "ngày "
    if first_day is not None:
        if not 1 <= int(first_day) < day:
            return m.group()
        out = f"{lead}{ctx.num(int(first_day))} đến {_day_month(ctx, day, mon, year)}"
    else:
        out = f"{lead}{_day_month(ctx, day, mon, year)}"
    if second is not None:
        then = _parse(second)
        if then is None:  # not a date after all: later steps read it as numbers
            return padded(m, f"{out}{sep}{second}")
        out += " đến ngày " + _day_month(ctx, *then)
    return padded(m, out)


def _month_year(m: re.Match[str], ctx: Ctx) -> str:
    mon, year = m.groups()
    if not 1 <= int(mon) <= 12:
        return m.group()
    lead = "" if preceded_by(_MONTH_WORD_BEFORE, m.string, m.start()) else "tháng "
    return padded(m, f"{lead}{month(int(mon), ctx.style)} năm {ctx.num(int(year))}")


# --- times ---------------------------------------------------------------------------------------

_CLOCK_FIRST = r"[0-9](?<![\w.,:][0-9])"
_CLOCK = re.compile(
    rf"({_CLOCK_FIRST}[0-9]?)(?:h ?|g|:)([0-5][0-9])(?::([0-5][0-9]))?"
    r"(?: ?(?:'|phút|ph|p)(?![^\W\d_]))?(?![\w:])"
)
_HOURS = re.compile(rf"({_CLOCK_FIRST}[0-9]{{0,2}}) ?h(?![\w'])")
# "19 giờ 30" is said with its "phút"
_GIO_MINUTES = re.compile(r"([0-9](?<![\w.,][0-9])[0-9]?\s+giờ\s+[0-5]?[0-9])(?!\s*phút)" + NUM_END)


def times(text: str, ctx: Ctx) -> str:
    text = _CLOCK.sub(lambda m: _clock(m, ctx), text)
    text = _HOURS.sub(lambda m: padded(m, f"{ctx.num(int(m.group(1)))} giờ"), text)
    return _GIO_MINUTES.sub(r"\1 phút", text)


def _clock(m: re.Match[str], ctx: Ctx) -> str:
    hours, minutes, seconds = m.groups()
    if int(hours) > 24:
        return m.group()
    out = f"{ctx.num(int(hours))} giờ"
    if int(minutes) or seconds:
        out += f" {ctx.num(int(minutes))} phút"
    if seconds and int(seconds):
        out += f" {ctx.num(int(seconds))} giây"
    return padded(m, out)


# --- weekdays, ordinals, months, Roman numerals -------------------------------------------------

# Each pattern starts with a character class, so the regex engine skips to where it can match.
_THU = r"[tT](?<!\w[tT])(?:hứ|HỨ)"
_TO = r"\s*(?:[-\u2013]|đến)\s*"
_WEEKDAYS_T = re.compile(rf"T(?<!\wT)([2-7]){_TO}(?:T([2-7])|((?i:chủ nhật)))(?!\w)")
_WEEKDAYS = re.compile(rf"({_THU})\s*([2-7]){_TO}(?:(?:{_THU}\s*)?([2-7])|((?i:chủ nhật)))(?!\w)")
_WEEKDAY = re.compile(r"T(?<!\wT)([2-7])(?!\w)")
_ORDINAL = re.compile(rf"({_THU})\s+([0-9]{{1,3}})" + NUM_END)
_MONTH = re.compile(r"([tT](?<!\w[tT])(?:háng|HÁNG))\s+(0?[1-9]|1[0-2])" + NUM_END)
_ROMAN_CUES = (
    "lần thứ|thứ|đợt|quý|khóa|khoá|kỳ|kì|phần|mục|chương|thế kỷ|thế kỉ|giai đoạn|vòng|loại|"
    "hạng|nhóm|đại hội|lần|tập|cấp|báo động|tiết|bài|khu vực|vùng"
)
_ROMAN = re.compile(r"[IVXLCDM](?<=\s[IVXLCDM])[IVXLCDM]{0,8}(?![\w'])")
_ROMAN_CUE_BEFORE = re.compile(rf"(?<!\w)((?i:{_ROMAN_CUES}))\s+$")


def ordinals(text: str, ctx: Ctx) -> str:
    text = _WEEKDAYS_T.sub(lambda m: _weekdays(m, "thứ", *m.group(1, 2, 3), ctx=ctx), text)
    text = _WEEKDAYS.sub(lambda m: _weekdays(m, *m.group(1, 2, 3, 4), ctx=ctx), text)
    text = _WEEKDAY.sub(lambda m: padded(m, f"thứ {ctx.num(int(m.group(1)))}"), text)
    text = _ROMAN.sub(lambda m: _roman(m, ctx), text)
    text = _ORDINAL.sub(lambda m: f"{m.group(1)} {ordinal(int(m.group(2)), ctx.style)}", text)
    return _MONTH.sub(lambda m: f"{m.group(1)} {month(int(m.group(2)), ctx.style)}", text)


def _weekdays(m: re.Match[str], *parts: str | None, ctx: Ctx) -> str:
    """ "thứ hai đến thứ sáu" from (the "thứ" as written, first day, last day or "chủ nhật")."""
    word, first, last, sunday = parts
    end = "chủ nhật" if sunday else f"thứ {ordinal(int(last or 0), ctx.style)}"
    return padded(m, f"{word} {ordinal(int(first or 0), ctx.style)} đến {end}")


def _roman(m: re.Match[str], ctx: Ctx) -> str:
    cue = _ROMAN_CUE_BEFORE.search(m.string, max(0, m.start() - 16), m.start())
    value = roman(m.group())
    if cue is None or value is None:
        return m.group()
    return ordinal(value, ctx.style) if cue.group(1).lower().endswith("thứ") else ctx.num(value)
