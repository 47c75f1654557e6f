"""`check`'s speech warnings: text that will still be read badly after normalisation.

Every text a TTS engine will speak (announcements, the exercise, the emergency correction) is
normalised as it will be at render time, with the commune's lexicon. Where the normaliser had to
guess (a capitalised acronym in no lexicon, spelled letter by letter; a web address read part by
part; a symbol with no reading, left out) the warning names the line the word is on and says what
will be heard instead, so staff can add a `tts.lexicon` entry or reword the text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broadcastd.config.yamlsource import Loc, dotted, problem_at
from broadcastd.render.normalize import Normalizer

if TYPE_CHECKING:
    from pathlib import Path

    from broadcastd.config import LoadedConfig
    from broadcastd.config.yamlsource import YamlPath
    from broadcastd.errors import Problem

# A folded text block rarely runs longer than this many lines past where it starts.
SEARCH_LINES = 200


def speech_warnings(loaded: LoadedConfig) -> list[Problem]:
    config = loaded.config
    normalizer = Normalizer(config.tts.lexicon, config.tts.numbers)
    texts: list[tuple[YamlPath, str, str]] = [
        (("announcements", i, "text", lang), lang, text)
        for i, a in enumerate(config.announcements)
        for lang, text in a.text.items()
    ]
    if config.exercise is not None:
        texts.append((("exercise", "text"), config.exercise.lang, config.exercise.text))
    lang = config.commune.default_language
    texts.append((("emergency", "correction"), lang, config.emergency.correction))
    sources: dict[Path, list[str]] = {}
    problems: list[Problem] = []
    for path, text_lang, text in texts:
        _, doubts = normalizer.explain(text, text_lang)
        found: list[Problem] = []
        for doubt in dict.fromkeys(doubts):
            said = f"read as {doubt.spoken!r}" if doubt.spoken else "left out"
            message = (
                f"would be {said} ({doubt.reason}); "
                "add a tts.lexicon entry or reword it to say it otherwise"
            )
            loc = _line_of(loaded.where(path), doubt.written, sources)
            found.append(problem_at(loc, dotted(path), message, doubt.written))
        problems += sorted(found, key=lambda p: (p.line, p.col))
    return problems


def _line_of(start: Loc, word: str, sources: dict[Path, list[str]]) -> Loc:
    """Where `word` is written in the text that starts at `start` (a folded block spans lines)."""
    if start.file not in sources:
        try:
            sources[start.file] = start.file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            sources[start.file] = []
    lines = sources[start.file]
    for number in range(start.line, min(len(lines), start.line + SEARCH_LINES) + 1):
        line = lines[number - 1]
        col = line.find(word, start.col - 1 if number == start.line else 0)
        if col >= 0:
            return Loc(start.file, number, col + 1)
    return start
