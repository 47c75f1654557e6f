"""The commune config: guarded YAML, the frozen schema, includes, cross-checks, media probe."""

from broadcastd.config.fields import WEEKDAYS
from broadcastd.config.load import load_config
from broadcastd.config.loaded import LoadedConfig
from broadcastd.config.schema import (
    DEFAULT_CORRECTION,
    ENGINE_LANGUAGES,
    EXERCISE_NOTICE,
    Announcement,
    Audio,
    Broker,
    Commune,
    Config,
    Hamlet,
    Signing,
    Slot,
    Tts,
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
    "Hamlet",
    "LoadedConfig",
    "Signing",
    "Slot",
    "Tts",
    "load_config",
]
