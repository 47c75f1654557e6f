"""The configuration schema (DESIGN.md §4): frozen models, and every error with its line."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from broadcastd.config.brokercfg import Broker
from broadcastd.config.fields import (
    WEEKDAYS,
    Bitrate,
    ClockTime,
    Count,
    Duration,
    HostPort,
    Lang,
    Model,
    PositiveDuration,
    Slug,
    TimeZoneName,
    Weekday,
    validation_problems,
)
from broadcastd.errors import ConfigError
from broadcastd.models import Priority

if TYPE_CHECKING:
    from collections.abc import Mapping

    from broadcastd.config.yamlsource import Located

# Languages a TTS engine can speak. Every other language needs a recorded clip.
ENGINE_LANGUAGES: Mapping[str, frozenset[str]] = {
    "gtts": frozenset({"vi"}),
    "espeak": frozenset({"vi"}),
}


class Commune(Model):
    id: Slug
    name: Annotated[str, Field(min_length=1)]
    timezone: TimeZoneName = "Asia/Ho_Chi_Minh"
    default_language: Lang = "vi"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Signing(Model):
    private_key_file: Path


class Metrics(Model):
    listen: HostPort = "127.0.0.1:9108"
    per_node: Annotated[bool, Field(strict=True)] = False


class Slot(Model):
    at: ClockTime
    max_duration: PositiveDuration = dt.timedelta(minutes=15)
    lead: Duration = dt.timedelta(minutes=30)
    catch_up: PositiveDuration = dt.timedelta(minutes=20)


def _recording_limit(value: dt.timedelta) -> dt.timedelta:
    # Past 15 minutes a recording is no announcement, and decoding it would hold hundreds of MB.
    if not dt.timedelta(seconds=5) <= value <= dt.timedelta(minutes=15):
        raise ValueError("expected between 5s and 15m")
    return value


class Audio(Model):
    format: Literal["mp3", "opus"] = "mp3"
    bitrate: Bitrate = "32k"
    sample_rate: Literal[8000, 11025, 16000, 22050, 24000, 44100, 48000] = 22050
    loudness_lufs: Annotated[float, Field(ge=-40, le=-5)] = -16.0
    gap: Duration = dt.timedelta(seconds=1)
    intro: Path | None = None
    outro: Path | None = None
    # the longest recording `announce --audio` accepts
    max_recording: Annotated[Duration, AfterValidator(_recording_limit)] = dt.timedelta(minutes=5)


def _one_line(value: str) -> str:
    if not value.strip() or value != value.strip() or any(c in value for c in "\r\n\t"):
        raise ValueError("expected text on one line, without surrounding spaces")
    return value


LexiconText = Annotated[str, Field(strict=True, max_length=200), AfterValidator(_one_line)]


def _matching(pattern: str, expected: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(expected)
        return value

    return AfterValidator(check)


Tld = Annotated[
    str,
    Field(strict=True),
    _matching(r"[a-z]{2,3}(\.[a-z]{2})?", "expected a Google domain ending such as com or com.vn"),
]
EspeakVoiceName = Annotated[
    str,
    Field(strict=True),
    _matching(
        r"[a-z]{2,3}(-[a-z0-9]{1,8})*",
        "expected an espeak-ng voice such as vi or vi-vn-x-south (espeak-ng --voices=vi)",
    ),
]
EspeakVariant = Annotated[
    str,
    Field(strict=True),
    _matching(
        r"[A-Za-z0-9_]{1,32}",
        "expected an espeak-ng variant such as f2 or m3 (espeak-ng --voices=variant)",
    ),
]


class GttsVoice(Model):
    """gTTS's knobs: the Google domain (`com.vn`, ...) and its slow mode."""

    tld: Tld = "com"
    slow: Annotated[bool, Field(strict=True)] = False


# espeak-ng speaks at 175 words a minute unless told; announcements go slower, for listeners
# whose first language is not Vietnamese.
ESPEAK_RATE = 150


class EspeakVoice(Model):
    """espeak-ng's knobs: the voice (default: the language, e.g. `vi`; `vi-vn-x-south`), a
    variant (`f2`, `m3`, ...: `-v vi+f2`) and the rate in words per minute (`-s`)."""

    voice: EspeakVoiceName | None = None
    variant: EspeakVariant | None = None
    rate: Annotated[int, Field(strict=True, ge=80, le=450)] = ESPEAK_RATE


class Voice(Model):
    gtts: GttsVoice = GttsVoice()
    espeak: EspeakVoice = EspeakVoice()


DEFAULT_VOICE = Voice()


class Tts(Model):
    engines: Annotated[tuple[Literal["gtts", "espeak"], ...], Field(min_length=1)] = (
        "gtts",
        "espeak",
    )
    timeout: PositiveDuration = dt.timedelta(seconds=10)
    render_ahead: Duration = dt.timedelta(hours=6)
    # How numbers are read: north "một trăm linh năm, hai mươi tư nghìn", south "một trăm lẻ năm,
    # hai mươi bốn ngàn".
    numbers: Literal["north", "south"] = "north"
    # The commune's own words, applied before the built-in abbreviations: {"HTX Tân Lập": "hợp
    # tác xã Tân Lập"}. Keys match whole words, exactly as written.
    lexicon: dict[LexiconText, LexiconText] = Field(default_factory=dict)
    voices: dict[Lang, Voice] = Field(default_factory=dict)

    @property
    def languages(self) -> frozenset[str]:
        return frozenset().union(*(ENGINE_LANGUAGES[e] for e in self.engines))

    def voice(self, lang: str) -> Voice:
        return self.voices.get(lang, DEFAULT_VOICE)

    @model_validator(mode="after")
    def _voices_for_spoken_languages(self) -> Tts:
        unspoken = sorted(set(self.voices) - self.languages)
        if unspoken:
            spoken = ", ".join(sorted(self.languages))
            raise ValueError(
                f"voices: no configured TTS engine speaks {', '.join(unspoken)} (spoken: {spoken})"
            )
        return self


class NodesCfg(Model):
    heartbeat: PositiveDuration = dt.timedelta(seconds=30)
    keepalive: PositiveDuration = dt.timedelta(seconds=30)


Level = Annotated[int, Field(strict=True, ge=0, le=100)]


def _volume_schedule(value: object) -> object:
    """`volume: 70` is 70 all day; `{"06:00": 80, "20:00": 60}` is each level from its time on."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 100:
            # Checked here so the error names `volume` as written, not the "00:00" it stands for.
            raise ValueError("expected a level from 0 to 100")
        return {"00:00": value}
    if not isinstance(value, dict) or not value:
        raise ValueError(
            "expected a level from 0 to 100, or levels by time of day such as"
            " {'06:00': 80, '20:00': 60}"
        )
    return value


# time of day -> the level from then until the next entry (the last one runs past midnight)
VolumeSchedule = Annotated[dict[ClockTime, Level], BeforeValidator(_volume_schedule)]


def _targets(value: object) -> object:
    """`hamlets: all` or a list; `hamlets: ban-a` (brackets forgotten) is one clear finding, not
    one per branch of the union, and an empty list would reach nobody."""
    if isinstance(value, str) and value != "all":
        raise ValueError("expected all or a list of hamlet ids such as [ban-a, ban-b]")
    if isinstance(value, list) and not value:
        raise ValueError("expected all or at least one hamlet id")
    return value


# Which hamlets an announcement or the exercise reaches: every one, or those listed.
HamletTargets = Annotated[Literal["all"] | tuple[str, ...], BeforeValidator(_targets)]


class NodeRef(Model):
    id: Slug
    households: Count = 0


class Hamlet(Model):
    id: Slug
    name: Annotated[str, Field(min_length=1)]
    households: Count
    languages: Annotated[tuple[Lang, ...], Field(min_length=1)] = ("vi",)
    nodes: tuple[NodeRef, ...] = ()
    volume: VolumeSchedule | None = None  # None: each speaker plays at its own level


class Announcement(Model):
    id: Slug
    # Every playlist carries each item's title and must stay under 64 KiB: check, not the
    # dispatcher at air time, is where a pasted paragraph should be caught.
    title: Annotated[str, Field(min_length=1, max_length=200)]
    category: str = "general"
    text: dict[Lang, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    audio: dict[Lang, Path] = Field(default_factory=dict)
    slots: Annotated[tuple[str, ...], Field(min_length=1)]
    days: tuple[Weekday, ...] = WEEKDAYS
    from_: dt.date | None = Field(default=None, alias="from")
    until: dt.date | None = None
    hamlets: HamletTargets = "all"
    priority: Priority = "normal"

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(self.text) | frozenset(self.audio)

    def active_on(self, day: dt.date) -> bool:
        if self.from_ is not None and day < self.from_:
            return False
        if self.until is not None and day > self.until:
            return False
        return WEEKDAYS[day.weekday()] in self.days

    def targets(self, hamlet_id: str) -> bool:
        return self.hamlets == "all" or hamlet_id in self.hamlets


ORDINALS: tuple[str, ...] = ("first", "second", "third", "fourth", "last")
EXERCISE_NOTICE = "Đây là tin thử nghiệm."  # "this is a test", spoken before every exercise
DEFAULT_CORRECTION = (
    "Thông báo khẩn cấp vừa rồi là nhầm lẫn. Không có tình huống khẩn cấp. Xin bà con yên tâm."
)


def _month_day(value: str) -> str:
    ordinal, _, weekday = value.partition("-")
    if ordinal not in ORDINALS or weekday not in WEEKDAYS:
        raise ValueError(
            "expected an ordinal weekday of the month such as first-wed or last-fri "
            f"({'|'.join(ORDINALS)} + -{'|'.join(WEEKDAYS)})"
        )
    return value


def _operator(value: str) -> str:
    if not value.strip() or value != value.strip():
        raise ValueError("expected an operator name without surrounding spaces")
    return value


class Exercise(Model):
    """The monthly exercise slot: `day: first-wed` (first|second|third|fourth|last + weekday)."""

    day: Annotated[str, Field(strict=True), AfterValidator(_month_day)]
    at: ClockTime
    text: Annotated[str, Field(min_length=1)] = "Kiểm tra định kỳ hệ thống loa truyền thanh của xã."
    lang: Lang = "vi"
    hamlets: HamletTargets = "all"
    lead: Duration = dt.timedelta(minutes=30)
    catch_up: Duration = dt.timedelta(minutes=20)

    def occurs_on(self, day: dt.date) -> bool:
        ordinal, _, weekday = self.day.partition("-")
        if WEEKDAYS[day.weekday()] != weekday:
            return False
        if ordinal == "last":
            return (day + dt.timedelta(days=7)).month != day.month
        return (day.day - 1) // 7 == ORDINALS.index(ordinal)

    def targets(self, hamlet_id: str) -> bool:
        return self.hamlets == "all" or hamlet_id in self.hamlets


class Emergency(Model):
    """Who may issue emergencies, how many must agree, and the false-alarm correction."""

    approvals: Literal[1, 2] = 1
    operators: tuple[Annotated[str, Field(strict=True), AfterValidator(_operator)], ...] = ()
    request_ttl: PositiveDuration = dt.timedelta(minutes=10)
    correction: Annotated[str, Field(min_length=1)] = DEFAULT_CORRECTION
    volume: Level = 100  # every live emergency plays at this level, whatever the schedule says


def _loopback(value: str) -> str:
    host = value.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            "the console speaks plain HTTP, so it listens only on loopback "
            "(127.0.0.1, [::1] or localhost); put a TLS proxy in front for other machines"
        )
    return value


def _idle(value: dt.timedelta) -> dt.timedelta:
    if not dt.timedelta(minutes=1) <= value <= dt.timedelta(hours=24):
        raise ValueError("expected between 1m and 24h")
    return value


class ConsoleCfg(Model):
    """The web console (`broadcastd console`): where it listens, how long an idle login lasts."""

    listen: Annotated[HostPort, AfterValidator(_loopback)] = "127.0.0.1:8080"
    session_idle: Annotated[Duration, AfterValidator(_idle)] = dt.timedelta(minutes=30)


class Config(Model):
    commune: Commune
    broker: Broker = Broker()
    signing: Signing
    state_dir: Path
    metrics: Metrics = Metrics()
    slots: Annotated[dict[Slug, Slot], Field(min_length=1)]
    audio: Audio = Audio()
    tts: Tts = Tts()
    nodes: NodesCfg = NodesCfg()
    hamlets: Annotated[tuple[Hamlet, ...], Field(min_length=1)]
    announcements: tuple[Announcement, ...] = ()
    exercise: Exercise | None = None
    emergency: Emergency = Emergency()
    console: ConsoleCfg = ConsoleCfg()

    # node id -> hamlet, built on first use: every ack from a node looks its hamlet up.
    _node_hamlets: dict[str, Hamlet] | None = PrivateAttr(default=None)

    def hamlet(self, hamlet_id: str) -> Hamlet:
        for h in self.hamlets:
            if h.id == hamlet_id:
                return h
        raise KeyError(hamlet_id)

    def node_hamlets(self) -> Mapping[str, Hamlet]:
        """node id -> its hamlet (built once: the config is frozen)."""
        if self._node_hamlets is None:
            self._node_hamlets = {n.id: h for h in self.hamlets for n in h.nodes}
        return MappingProxyType(self._node_hamlets)


def config_from_yaml_data(data: Any, located: Located) -> Config:
    """Validate an already-read tree (used by the loader); raises ConfigError with locations."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            validation_problems(exc, located, Config, root_keys=("include",))
        ) from None
