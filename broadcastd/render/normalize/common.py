"""What every normalisation step shares: the number style, the doubts it records, word padding."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.render.normalize.numbers import Style, cardinal

if TYPE_CHECKING:
    from collections.abc import Callable

# ASCII digits only: a pattern's \d would also match other scripts' digits, which the steps
# neither expect nor can read (they are turned into ASCII before the steps run).
_DIGITS = re.compile(r"[0-9]+")
SIGNS = "-\u2212+"
# After a number: not glued to a letter, a digit or a slash, and no separator followed by a digit.
NUM_END = r"(?![\w/]|[.,:][0-9])"
# After "N/M", a part of a whole ("2/3 số hộ": hai phần ba) or a count ("7/10 thôn": bảy trên
# mười): either way not a date.
FRACTION_NEXT = re.compile(r"\s*(?:số|diện tích|tổng|dân số|phần)(?!\w)")
COUNT_NEXT = re.compile(
    r"\s*(?:thôn|bản|hộ|người|xã|trường|học sinh|em|trẻ|cháu|ca|con|chỉ tiêu|tiêu chí|lớp)(?!\w)"
)


@dataclass(frozen=True, slots=True)
class Doubt:
    """A place the normaliser had to guess: what was written, what it will say, and why."""

    written: str
    spoken: str
    reason: str


@dataclass(slots=True)
class Ctx:
    style: Style
    doubts: list[Doubt] | None = None  # collected only when someone asks (`check`, `say`)

    def doubt(self, written: str, spoken: str, reason: str) -> None:
        if self.doubts is not None:
            self.doubts.append(Doubt(written, spoken, reason))

    def num(self, n: int) -> str:
        return cardinal(n, self.style)


def padded(m: re.Match[str], words: str) -> str:
    """`words` in place of the match, with a space where it would touch a letter or digit."""
    text, start, end = m.string, m.start(), m.end()
    if start > 0 and text[start - 1].isalnum():
        words = " " + words
    if end < len(text) and text[end].isalnum():
        words += " "
    return words


def at_numbers(
    pattern: re.Pattern[str],
    text: str,
    repl: Callable[[re.Match[str]], str],
    *,
    signed: bool = False,
) -> str:
    """`pattern.sub(repl, text)`, with `pattern` tried only where a run of digits starts (or, when
    `signed`, at the sign just before it).

    A pattern that begins with a look-behind or an optional word is otherwise tried at every
    position of the text; over 10 kB the twenty or so steps took 13 ms that way.
    """
    out: list[str] = []
    last = 0
    for run in _DIGITS.finditer(text):
        pos = run.start()
        if signed and pos > last and text[pos - 1] in SIGNS:
            pos -= 1
        if pos < last:
            continue
        m = pattern.match(text, pos)
        if m is None and pos < run.start():
            m = pattern.match(text, run.start())
        if m is not None and m.end() > m.start():
            out += (text[last : m.start()], repl(m))
            last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def preceded_by(pattern: re.Pattern[str], text: str, pos: int, reach: int = 24) -> bool:
    """Whether `pattern` (ending in `$`) matches the text just before `pos`."""
    return pattern.search(text, max(0, pos - reach), pos) is not None
