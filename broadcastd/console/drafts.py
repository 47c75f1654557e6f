"""What an operator asks the daemon for, read from a form and checked before anything is shown or
sent: an announcement, a cancel, a stop, a volume change; and who will hear it.

Each draft knows its `fields` (the values its confirmation page shows, carries as hidden fields
and covers with its token, see confirm.py) and its `payload` (the control request the daemon
gets, always with the explicit hamlets the page listed, never "all": what was confirmed is what
is sent, even if the daemon's config has changed since). A form is refused with a FormError
whose message id the page translates.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from broadcastd.console.i18n import N_
from broadcastd.models import PRIORITIES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from broadcastd.config import Config
    from broadcastd.console.live import Live

MAX_TEXT: Final = 1024  # the longest text the daemon renders (its protocol's MAX_TEXT)
REQUEST_TEXT: Final = 200  # what the journal keeps of a pending emergency's text
_WIRE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,198}[a-z0-9])?")  # the daemon's id grammar
# The most recording bytes the daemon takes in one announcement (controller/requests.py; the
# console does not import the daemon's code, a test keeps the two equal).
MAX_RECORDING_BYTES: Final = 16 * 1024 * 1024
# A recording travels in the form as base64url (no percent-encoding, so its size is known).
MAX_AUDIO_CHARS: Final = -(-MAX_RECORDING_BYTES // 3) * 4
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
TARGETS: Final = ("all", "lang", "list")
CORRECTIONS: Final = ("none", "config", "text")

Fields = dict[str, list[str]]


class FormError(Exception):
    """A form the console refuses to act on; `message` is a message id, `params` its values."""

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


def one(fields: Mapping[str, list[str]], name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _ids(fields: Mapping[str, list[str]], name: str) -> list[str]:
    """Ids from repeated fields (checkboxes) or one comma-separated field (a confirmation
    page's hidden input), in order, each once."""
    found = [v.strip() for value in fields.get(name, ()) for v in value.split(",") if v.strip()]
    return list(dict.fromkeys(found))


def _text(fields: Mapping[str, list[str]], name: str) -> str:
    # One form of line break: a text confirmed on one phone is byte for byte the one sent.
    text = one(fields, name).replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > MAX_TEXT:
        raise FormError(
            N_("The text is %(length)s characters long; at most %(limit)s."),
            length=len(text),
            limit=MAX_TEXT,
        )
    return text


def _hamlets(config: Config, wanted: list[str]) -> tuple[str, ...]:
    known = [h.id for h in config.hamlets]
    unknown = [h for h in wanted if h not in known]
    if unknown:
        raise FormError(N_("Unknown hamlet: %(hamlet)s."), hamlet=unknown[0])
    if not wanted:
        raise FormError(N_("Choose at least one hamlet."))
    return tuple(h for h in known if h in wanted)  # the config's order, as every page lists them


def hamlet_languages(config: Config) -> list[str]:
    return sorted({lang for h in config.hamlets for lang in h.languages})


@dataclass(frozen=True, slots=True)
class AnnounceDraft:
    text: str
    lang: str  # the language the text is read in
    target: str  # all | lang | list: how the hamlets were chosen
    target_lang: str  # for `lang`: the hamlets where this language is spoken
    hamlets: tuple[str, ...]
    priority: str
    now: bool  # else at the next slot
    exercise: bool
    audio: str = ""  # a recording or an uploaded file, base64url
    audio_lang: str = ""  # the language spoken in it

    @property
    def audio_bytes(self) -> int:
        return len(self.audio) // 4 * 3 - self.audio.count("=")

    def fields(self) -> dict[str, str]:
        return {
            "audio": self.audio,
            "audio_lang": self.audio_lang,
            "text": self.text,
            "lang": self.lang,
            "target": self.target,
            "target_lang": self.target_lang,
            "hamlet": ",".join(self.hamlets),
            "priority": self.priority,
            "when": "now" if self.now else "slot",
            "exercise": "1" if self.exercise else "",
        }

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "cmd": "announce",
            "text": self.text,
            "lang": self.lang,
            "hamlets": ",".join(self.hamlets),
            "priority": self.priority,
            "now": self.now,
            "exercise": self.exercise,
        }
        if self.audio:
            standard = self.audio.replace("-", "+").replace("_", "/")
            payload["audio"] = {self.audio_lang: standard}
        return payload


def _audio(fields: Mapping[str, list[str]], config: Config) -> tuple[str, str]:
    """The form's recording (base64url, padded) and its language, checked; ("", "") if none."""
    audio = one(fields, "audio").strip()
    if not audio:
        return "", ""
    mib = 1024 * 1024
    if len(audio) > MAX_AUDIO_CHARS:
        raise FormError(
            N_("This file is %(mib)s MiB; at most %(limit)s MiB."),
            mib=f"{len(audio) * 3 / 4 / mib:.1f}",
            limit=MAX_RECORDING_BYTES // mib,
        )
    if len(audio) % 4 or not _BASE64URL.fullmatch(audio):
        raise FormError(N_("This is not an audio file."))
    lang = one(fields, "audio_lang")
    if lang not in hamlet_languages(config):
        raise FormError(N_("Choose the language spoken in the recording."))
    return audio, lang


def _two_person(config: Config, priority: str, text: str, audio: str) -> None:
    """An emergency under the two-person rule is a short text the second approver reads."""
    if priority != "emergency" or config.emergency.approvals != 2:
        return
    if audio:
        raise FormError(N_("An emergency that needs a second approver is sent as text."))
    if len(text) > REQUEST_TEXT:
        raise FormError(
            N_(
                "An emergency that needs a second approver has at most %(limit)s characters, "
                "so that the approver reads all of it."
            ),
            limit=REQUEST_TEXT,
        )


def parse_announce(fields: Mapping[str, list[str]], config: Config) -> AnnounceDraft:
    text = _text(fields, "text")
    audio, audio_lang = _audio(fields, config)
    if not text and not audio:
        raise FormError(N_("Write the text to announce, or record or choose an audio file."))
    lang = one(fields, "lang") or config.commune.default_language
    if lang not in config.tts.languages:
        raise FormError(N_("No text-to-speech engine speaks %(lang)s."), lang=lang)
    priority = one(fields, "priority") or "priority"
    if priority not in PRIORITIES:
        raise FormError(N_("Choose a priority."))
    exercise = one(fields, "exercise") not in ("", "0")
    if exercise and priority == "emergency":
        raise FormError(N_("An exercise is never an emergency."))
    _two_person(config, priority, text, audio)
    target = one(fields, "target") or "all"
    target_lang = ""
    if target == "all":
        hamlets = tuple(h.id for h in config.hamlets)
    elif target == "lang":
        target_lang = one(fields, "target_lang")
        if target_lang not in hamlet_languages(config):
            raise FormError(N_("Choose a language spoken in some hamlet."))
        hamlets = tuple(h.id for h in config.hamlets if target_lang in h.languages)
    elif target == "list":
        hamlets = _hamlets(config, _ids(fields, "hamlet"))
    else:
        raise FormError(N_("Choose which hamlets will hear it."))
    now = one(fields, "when") == "now" or priority == "emergency"  # an emergency never waits
    return AnnounceDraft(
        text, lang, target, target_lang, hamlets, priority, now, exercise, audio, audio_lang
    )


@dataclass(frozen=True, slots=True)
class CancelDraft:
    id: str  # a playlist, an ad-hoc announcement (announce-N) or a pending request (req-N)
    correction: str  # none | config (emergency.correction) | text (`say`)
    say: str

    def fields(self) -> dict[str, str]:
        return {"id": self.id, "correction": self.correction, "say": self.say}

    def payload(self) -> dict[str, Any]:
        return {
            "cmd": "cancel",
            "id": self.id,
            "say": self.say or None,
            "correction": self.correction == "config",
        }


def check_id(value: str) -> str:
    if not _WIRE_ID.fullmatch(value):
        raise FormError(N_("No such announcement or playlist."))
    return value


def parse_cancel(fields: Mapping[str, list[str]], config: Config) -> CancelDraft:
    target = check_id(one(fields, "id"))
    correction = one(fields, "correction") or "none"
    if correction not in CORRECTIONS:
        raise FormError(N_("Choose whether a correction follows."))
    say = _text(fields, "say") if correction == "text" else ""
    if correction == "text" and not say:
        raise FormError(N_("Write the correction to read."))
    if correction == "config" and not config.emergency.correction:
        raise FormError(N_("The config has no standard correction (emergency.correction)."))
    return CancelDraft(target, correction, say)


@dataclass(frozen=True, slots=True)
class StopDraft:
    hamlets: tuple[str, ...]
    everywhere: bool

    def fields(self) -> dict[str, str]:
        return {"hamlet": ",".join(self.hamlets)}

    def payload(self) -> dict[str, Any]:
        return {"cmd": "stop", "hamlets": ",".join(self.hamlets)}


def parse_stop(fields: Mapping[str, list[str]], config: Config) -> StopDraft:
    wanted = _ids(fields, "hamlet")
    everywhere = wanted == ["all"]
    hamlets = tuple(h.id for h in config.hamlets) if everywhere else _hamlets(config, wanted)
    return StopDraft(hamlets, everywhere or len(hamlets) == len(config.hamlets))


@dataclass(frozen=True, slots=True)
class VolumeDraft:
    level: int
    hamlets: tuple[str, ...]  # or
    nodes: tuple[str, ...]  # only these speakers

    def fields(self) -> dict[str, str]:
        return {
            "level": str(self.level),
            "hamlet": ",".join(self.hamlets),
            "node": ",".join(self.nodes),
        }

    def payload(self) -> dict[str, Any]:
        return {
            "cmd": "volume",
            "level": self.level,
            "hamlets": ",".join(self.hamlets) or None,
            "nodes": ",".join(self.nodes) or None,
        }


def parse_volume(
    fields: Mapping[str, list[str]], config: Config, *, need_level: bool = True
) -> VolumeDraft:
    raw = one(fields, "level").strip()
    level = int(raw) if raw.isdigit() and len(raw) <= 3 else -1
    if need_level and not 0 <= level <= 100:  # the volume scale
        raise FormError(N_("The volume is a whole number from 0 to 100."))
    nodes = _ids(fields, "node")
    if nodes:
        known = config.node_hamlets()
        unknown = [n for n in nodes if n not in known]
        if unknown:
            raise FormError(N_("Unknown speaker: %(node)s."), node=unknown[0])
        return VolumeDraft(level, (), tuple(nodes))
    wanted = _ids(fields, "hamlet")
    everywhere = not wanted or wanted == ["all"]
    hamlets = tuple(h.id for h in config.hamlets) if everywhere else _hamlets(config, wanted)
    return VolumeDraft(level, hamlets, ())


@dataclass(frozen=True, slots=True)
class Reach:
    """One hamlet an action reaches: its households, and how many are on a speaker online now
    (None while the daemon does not answer)."""

    id: str
    name: str
    households: int
    households_live: int | None
    nodes_online: int | None
    nodes_total: int


def audience(config: Config, live: Live, hamlets: tuple[str, ...]) -> list[Reach]:
    reach = []
    for h in config.hamlets:
        if h.id not in hamlets:
            continue
        now = live.hamlet(h.id) if live.daemon else None
        reach.append(
            Reach(
                id=h.id,
                name=h.name,
                households=h.households,
                households_live=None if now is None else int(now.get("households_live", 0)),
                nodes_online=None if now is None else int(now.get("nodes_online", 0)),
                nodes_total=len(h.nodes),
            )
        )
    return reach


def next_slot(config: Config, now: dt.datetime) -> tuple[str, dt.datetime]:
    """The slot an announcement "at the next slot" plays in, as the daemon picks it."""
    best: tuple[str, dt.datetime] | None = None
    for offset in (0, 1):
        day = now.date() + dt.timedelta(days=offset)
        for name, slot in config.slots.items():
            at = dt.datetime.combine(day, slot.at, tzinfo=config.commune.tz)
            if at > now and (best is None or at < best[1]):
                best = (name, at)
    if best is None:  # a config has at least one slot, so tomorrow has one
        raise FormError(N_("No slot is configured."))
    return best
