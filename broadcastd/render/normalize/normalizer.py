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
from broadcastd.render.normalize.spelling import UPPER

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

# Digits of other scripts are rare: look for them only past the Latin and Vietnamese letters.
_BEYOND_LATIN = re.compile(r"[^\x00-\u02ff\u1e00-\u1eff\u2000-\u206f]")
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")
_BULLET = re.compile(r"(?m)^[ \t]*[-\u2013\u2014•*+·][ \t]+")
_LINE_BREAK = re.compile(r"[\r\n\v\f\u2028\u2029\x85]\s*")
# "cúm A/H5N1": a slash between codes in capitals is read as a space, not as "trên"
_CODE_SLASH = re.compile(rf"/(?<=[0-9{UPPER}]/)(?=[{UPPER}])")
# a space before punctuation goes, unless the mark starts a word (".vn" must not join "vn")
_SPACE_BEFORE = re.compile(r" (?=[,.;:!?)\]\u201d\u2019»…](?!\w))")
_SPACE_AFTER = re.compile(r"([(\[\u201c\u2018«]) ")
# Tidying never joins two words: a mark that starts a word (".vn") keeps what is around it.
_COMMAS = re.compile(r",(?: ?,)+")
_COMMA_AFTER_STOP = re.compile(r"([.;:!?]) ?, ?")
_COMMA_BEFORE_STOP = re.compile(r",(?=[.;:!?](?!\w))")
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

    def _run(self, text: str, lang: str, ctx: Ctx, *, again: bool = True) -> str:
        if lang not in SPOKEN_LANGUAGES:
            return _tidy(text)  # no rules for it: the engine gets the text on one line
        text = _prepare(text)
        text = builtin().apply(self.lexicon.apply(text))
        text = _CODE_SLASH.sub(" ", text)
        for step in _STEPS:
            text = step(text, ctx)
        text = _tidy(text)
        # A later step can make an address out of what the address step saw as none ("12%.vn"
        # becomes "phần trăm.vn"); reading it once more keeps normalising idempotent.
        if again and spelling.has_address(text):
            return self._run(text, lang, ctx, again=False)
        return text


def normalize(text: str, lang: str = "vi", *, lexicon: Mapping[str, str] | None = None) -> str:
    """One-off normalisation with the northern number style."""
    return Normalizer(lexicon)(text, lang)


def _prepare(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    if _BEYOND_LATIN.search(text) and _OTHER_DIGIT.search(text):
        text = _OTHER_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group())), text)
    text = text.replace("\u2044", "/")  # NFKC writes ½ with a fraction slash, U+2044
    text = _BULLET.sub("", text)
    return _LINE_BREAK.sub(_line_break, text)


def _line_break(m: re.Match[str]) -> str:
    """A line that ends without punctuation still ends a sentence: the listener needs the pause."""
    text, pos = m.string, m.start()
    while pos and text[pos - 1] in " \t":
        pos -= 1
    return " " if not pos or text[pos - 1] in ".,;:!?" else ". "


def _tidy(text: str) -> str:
    """One line, no space before a mark, no comma next to a full stop; the rules run until the
    text stops changing (one removal can bring two marks together for another)."""
    text = " ".join(text.split())
    for _ in range(4):
        before = text
        text = _SPACE_BEFORE.sub("", text)
        text = _SPACE_AFTER.sub(r"\1", text)
        text = _COMMAS.sub(",", text)
        text = _COMMA_AFTER_STOP.sub(_comma_after_stop, text)
        text = _COMMA_BEFORE_STOP.sub("", text)
        text = _LEADING.sub("", text).rstrip()
        if text == before:
            break
    return text


def _comma_after_stop(m: re.Match[str]) -> str:
    """ "đến.," -> "đến."; a word right after keeps its space: ".,vn" must not become ".vn"."""
    end = m.end()
    return m.group(1) + (" " if end < len(m.string) and m.string[end].isalnum() else "")
