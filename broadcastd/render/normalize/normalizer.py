"""The Vietnamese text normaliser: what staff write -> what a TTS engine can read aloud.

Pure and deterministic: the same text, lexicon and number style always give the same one line.
The steps run in a fixed order, each turning what it recognises into words, so a later step
never sees digits an earlier one consumed:

1. Unicode NFKC (full-width digits, `m²`, `℃`); other scripts' digits become ASCII; bullets are
   dropped and a line break ends a sentence.
2. The commune's `tts.lexicon`, then the built-in abbreviations (both whole words).
3. Web and mail addresses; phone numbers and codes; dates; ranges; times; weekdays, ordinals,
   months and Roman numerals; quantities with units; the remaining numbers; symbols; capitals.
4. Spaces and punctuation tidied, so normalising the result again changes nothing.

The output holds no ASCII digit and none of the symbols the steps read (`% ° & + = / - ...`).
NORMALIZER_VERSION is part of every TTS render key: raise it whenever a change alters what some
text is read as, so the clips made with the old reading are rendered again.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from broadcastd.render.normalize import amounts, spelling, when
from broadcastd.render.normalize.common import Ctx, Doubt
from broadcastd.render.normalize.lexicon import Lexicon, builtin
from broadcastd.render.normalize.numbers import STYLES, NumberStyle

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

NORMALIZER_VERSION = 1
SPOKEN_LANGUAGES = frozenset({"vi"})

_STEPS: tuple[Callable[[str, Ctx], str], ...] = (
    spelling.addresses,
    amounts.phones,
    when.dates,
    amounts.ranges,
    when.times,
    when.ordinals,
    amounts.quantities,
    amounts.numbers,
    amounts.symbols,
    spelling.caps,
)

_OTHER_DIGIT = re.compile(r"(?![0-9])\d")
_BULLET = re.compile(r"(?m)^[ \t]*[-\u2013\u2014•*+·][ \t]+")
_LINE_BREAK = re.compile(r"[ \t]*[\r\n\v\f\u2028\u2029\x85][\s]*")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE = re.compile(r" (?=[,.;:!?)\]\u201d\u2019»…])")
_SPACE_AFTER = re.compile(r"(?<=[(\[\u201c\u2018«]) ")
_COMMAS = re.compile(r",(?: ?,)+")
_COMMA_AFTER_STOP = re.compile(r"(?<=[.;:!?]) ?,")
_COMMA_BEFORE_STOP = re.compile(r",(?=[.;:!?])")
_LEADING = re.compile(r"^[ ,.;:!?]+")


class Normalizer:
    """`Normalizer(lexicon, numbers)(text)` -> the line an engine reads; `explain()` also says
    where it had to guess."""

    def __init__(
        self, lexicon: Mapping[str, str] | None = None, numbers: NumberStyle = "north"
    ) -> None:
        self.lexicon = Lexicon(dict(lexicon or {}))
        self.numbers = numbers
        self.style = STYLES[numbers]

    def __call__(self, text: str, lang: str = "vi") -> str:
        return self._run(text, lang, Ctx(self.style))

    def explain(self, text: str, lang: str = "vi") -> tuple[str, list[Doubt]]:
        ctx = Ctx(self.style, [])
        spoken = self._run(text, lang, ctx)
        return spoken, ctx.doubts or []

    def _run(self, text: str, lang: str, ctx: Ctx) -> str:
        if lang not in SPOKEN_LANGUAGES:
            return _tidy(text)  # no rules for it: the engine gets the text on one line
        text = _prepare(text)
        text = builtin().apply(self.lexicon.apply(text))
        for step in _STEPS:
            text = step(text, ctx)
        return _tidy(text)


def normalize(text: str, lang: str = "vi", *, lexicon: Mapping[str, str] | None = None) -> str:
    """One-off normalisation with the northern number style."""
    return Normalizer(lexicon)(text, lang)


def _prepare(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    if _OTHER_DIGIT.search(text):
        text = _OTHER_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group())), text)
    text = text.replace("\u2044", "/")  # NFKC writes ½ with a fraction slash, U+2044
    text = _BULLET.sub("", text)
    return _LINE_BREAK.sub(_line_break, text)


def _line_break(m: re.Match[str]) -> str:
    """A line that ends without punctuation still ends a sentence: the listener needs the pause."""
    start = m.start()
    before = m.string[start - 1] if start else "."
    return " " if before in ".,;:!?" else ". "


def _tidy(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_BEFORE.sub("", text)
    text = _SPACE_AFTER.sub("", text)
    text = _COMMAS.sub(",", text)
    text = _COMMA_AFTER_STOP.sub("", text)
    text = _COMMA_BEFORE_STOP.sub("", text)
    return _LEADING.sub("", text)
