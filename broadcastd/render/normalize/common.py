"""What every normalisation step shares: the number style, the doubts it records, word padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from broadcastd.render.normalize.numbers import Style, cardinal

if TYPE_CHECKING:
    import re

# ASCII digits only: a pattern's \d would also match other scripts' digits, which the steps
# neither expect nor can read (they are turned into ASCII before the steps run).
D = "[0-9]"
# After a number: not glued to a letter, a digit or a slash, and no separator followed by a digit.
NUM_END = r"(?![\w/]|[.,:][0-9])"


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
