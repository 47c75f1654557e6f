"""Vietnamese text normalisation before TTS: numbers, dates, times, units, abbreviations."""

from broadcastd.render.normalize.common import Doubt
from broadcastd.render.normalize.lexicon import ABBREVIATIONS
from broadcastd.render.normalize.normalizer import (
    NORMALIZER_VERSION,
    SPOKEN_LANGUAGES,
    Normalizer,
    normalize,
)
from broadcastd.render.normalize.numbers import NumberStyle

__all__ = [
    "ABBREVIATIONS",
    "NORMALIZER_VERSION",
    "SPOKEN_LANGUAGES",
    "Doubt",
    "Normalizer",
    "NumberStyle",
    "normalize",
]
