"""Letters and addresses: what is left of Latin script that is not Vietnamese words.

A caps token in no lexicon that is not a Vietnamese syllable ("THÔNG BÁO" is two, "UBND" none) is
spelled with Vietnamese letter names ("HIV" -> "hát i vê"), the way people read an acronym aloud,
and recorded as a doubt, so `check` can suggest a lexicon entry. A web or mail address is read part
by part: parts that split into Vietnamese syllables are read as such ("dichvucong" -> "dich vu
cong"), the rest letter by letter, with "chấm" for the dots.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import TYPE_CHECKING

from broadcastd.render.normalize.common import padded
from broadcastd.render.normalize.numbers import digits

if TYPE_CHECKING:
    from collections.abc import Mapping

    from broadcastd.render.normalize.common import Ctx

# How Vietnamese read a letter of an acronym aloud ("UBND": "u bê en đê").
LETTER_NAMES: Mapping[str, str] = {
    "A": "a", "Ă": "á", "Â": "ớ", "B": "bê", "C": "xê", "D": "dê", "Đ": "đê", "E": "e",
    "Ê": "ê", "F": "ép", "G": "gờ", "H": "hát", "I": "i", "J": "di", "K": "ca", "L": "lờ",
    "M": "em", "N": "en", "O": "o", "Ô": "ô", "Ơ": "ơ", "P": "pê", "Q": "quy", "R": "e rờ",
    "S": "ét", "T": "tê", "U": "u", "Ư": "ư", "V": "vê", "W": "vê kép", "X": "ích",
    "Y": "i dài", "Z": "dét",
}  # fmt: skip
# A lone capital vowel is often a word ("Trạm Y tế", "Ô"); a lone consonant is a letter ("khu C").
_VOWELS = frozenset("AĂÂEÊIOÔƠUƯY")

_ONSET = "ngh|ng|gh|gi|kh|nh|ph|qu|th|tr|ch|[bcdghklmnprstvx]"
_NUCLEUS = (
    "uye|uya|uyu|ieu|yeu|oai|oay|oao|oeo|uay|uoi|uou|"
    "ai|ao|au|ay|eo|eu|ia|ie|iu|oa|oe|oi|oo|ua|ue|ui|uo|uu|uy|ya|ye|"
    "a|e|i|o|u|y"
)
_SYLLABLE = re.compile(rf"(?:{_ONSET})?(?:{_NUCLEUS})(?:ng|nh|ch|[cmnpt])?")
# ă â -> a, ê -> e, ô ơ -> o, ư -> u, đ -> d; the tone marks are dropped after decomposition
_BASE = str.maketrans("ăâêôơưđ", "aaeooud")
_TONES = "\u0300\u0301\u0303\u0309\u0323"


def _bare(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word.lower().translate(_BASE))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@cache
def is_syllable(word: str) -> bool:
    """Whether `word` (any case, with or without diacritics) is shaped like one Vietnamese
    syllable: "KHẨN" and "BAN" are, "UBND" and "HIV" are not."""
    return _SYLLABLE.fullmatch(_bare(word)) is not None


def spell(token: str) -> str:
    """Letter by letter with Vietnamese letter names; a tone mark on a letter is not read."""
    names = []
    for c in token.upper():
        name = LETTER_NAMES.get(c) or LETTER_NAMES.get(_toneless(c))
        if name:
            names.append(name)
    return " ".join(names)


def _toneless(c: str) -> str:
    kept = "".join(ch for ch in unicodedata.normalize("NFD", c) if ch not in _TONES)
    return unicodedata.normalize("NFC", kept)


# --- caps tokens -----------------------------------------------------------------------------

UPPER = "".join(c for c in map(chr, [*range(0x41, 0x250), *range(0x1E00, 0x1F00)]) if c.isupper())
# A whole word in capitals; an apostrophe joins a word ("H'Mông" is one word, not the letter H).
_CAPS = re.compile(rf"[{UPPER}](?<![^\W\d_][{UPPER}])(?<!'[{UPPER}])[{UPPER}]*(?![^\W\d_])(?!'\w)")


def caps(text: str, ctx: Ctx) -> str:
    return _CAPS.sub(lambda m: _caps(m, ctx), text)


def _caps(m: re.Match[str], ctx: Ctx) -> str:
    token = m.group()
    if len(token) == 1:
        return token if token in _VOWELS else padded(m, spell(token))
    if is_syllable(token):
        return token  # a word written in capitals: "THÔNG BÁO KHẨN"
    spoken = spell(token)
    ctx.doubt(token, spoken, "an all-caps word in no lexicon, spelled letter by letter")
    return padded(m, spoken)


# --- web and mail addresses -------------------------------------------------------------------

_ADDRESS = re.compile(
    r"(?i)(?<!\w)(?:https?://)?(?:[\w-]+(?:\.[\w-]+)*@)?(?:[\w-]+\.)+"
    r"(?:vn|com|net|org|gov|edu|info)(?![^\W\d_])(?:/[\w./?=&-]*[\w/])?"
)
_PART = re.compile(r"[^\W\d_]+|[0-9]+|[./@_?=&-]|:")
_SEPARATORS = {
    ".": "chấm", "/": "gạch chéo", "@": "a còng", "_": "gạch dưới", "-": "gạch ngang",
    "?": "chấm hỏi", "=": "bằng", "&": "và", ":": "",
}  # fmt: skip
_KNOWN_PARTS = {
    "vn": "vê en", "com": "com", "net": "nét", "org": "o rờ gờ", "gov": "gờ o vê",
    "www": "vê kép vê kép vê kép", "gmail": "gờ meo", "http": "", "https": "",
}  # fmt: skip
MAX_SEGMENTED = 40


# Most notices hold no address: a quick look for a domain ending or an @ spares the full pattern.
_ADDRESS_HINT = re.compile(r"\.(?:vn|com|net|org|gov|edu|info)(?![^\W\d_])|@", re.IGNORECASE)


def has_address(text: str) -> bool:
    """Whether `text` may still hold a web or mail address (a domain ending or an @)."""
    return _ADDRESS_HINT.search(text) is not None


def addresses(text: str, ctx: Ctx) -> str:
    out: list[str] = []
    last = 0
    for hint in _ADDRESS_HINT.finditer(text):
        if hint.start() < last:
            continue
        start = hint.start()  # back to where the address starts: the full pattern is slow
        while start > last and not text[start - 1].isspace() and text[start - 1] not in "(\"'<":
            start -= 1
        m = _ADDRESS.search(text, start, hint.end() + 200)
        if m is not None and m.start() <= hint.start():
            out += (text[last : m.start()], _address(m, ctx))
            last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _address(m: re.Match[str], ctx: Ctx) -> str:
    words = [
        _SEPARATORS[part] if part in _SEPARATORS else _address_part(part)
        for part in _PART.findall(m.group())
    ]
    spoken = " ".join(w for w in words if w)
    ctx.doubt(m.group(), spoken, "a web or mail address, read part by part")
    return padded(m, spoken)


def _address_part(part: str) -> str:
    lower = part.lower()
    if lower in _KNOWN_PARTS:
        return _KNOWN_PARTS[lower]
    if lower.isdigit():
        return digits(lower)
    syllables = _segment(lower) if len(lower) <= MAX_SEGMENTED else None
    return " ".join(syllables) if syllables else spell(lower)


def _segment(word: str) -> list[str] | None:
    """`word` cut into the fewest Vietnamese syllables ("baohiemxahoi" -> bao hiem xa hoi)."""
    best: list[list[str] | None] = [[]] + [None] * len(word)
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 7), end):
            head = best[start]
            if head is not None and is_syllable(word[start:end]):
                candidate = [*head, word[start:end]]
                current = best[end]
                if current is None or len(candidate) < len(current):
                    best[end] = candidate
    return best[-1]
