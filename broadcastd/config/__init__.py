"""The commune config: guarded YAML, the frozen schema, includes, cross-checks, media probe."""

from broadcastd.config.brokercfg import Broker, PublicListener
from broadcastd.config.fields import WEEKDAYS
from broadcastd.config.load import load_config
from broadcastd.config.loaded import LoadedConfig
from broadcastd.config.schema import (
    DEFAULT_CORRECTION,
    ENGINE_LANGUAGES,
    EXERCISE_NOTICE,
    Announcement,
    Audio,
    Commune,
    Config,
    EspeakVoice,
    GttsVoice,
    Hamlet,
    Signing,
    Slot,
    Tts,
    Voice,
)

__all__ = [
    "DEFAULT_CORRECTION",
    "ENGINE_LANGUAGES",
    "EXERCISE_NOTICE",
    "WEEKDAYS",
    "Announcement",
    "Audio",
    "Broker",
    "Commune",
    "Config",
    "EspeakVoice",
    "GttsVoice",
    "Hamlet",
    "LoadedConfig",
    "PublicListener",
    "Signing",
    "Slot",
    "Tts",
    "Voice",
    "load_config",
]
