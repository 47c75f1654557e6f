"""Control-socket requests, parsed once from their JSON object into typed values.

Whatever arrives on the socket is checked here, field by field, before anything acts on it: a
wrong type or an unknown command is refused with a message naming the field and the value.
What needs the config (known hamlets, languages, operators) is checked by `Operations`.
Every request carries `operator`: the name the person at the keyboard gave, as claimed (it is
recorded, never verified; the socket's peer credentials are what the daemon can prove).
An announcement's recordings arrive in the request itself, `"audio": {"LANG": "<base64 of the
file>"}`, at most MAX_RECORDING_BYTES of files together; nothing of them is trusted yet (see
recordings.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from broadcastd.config.fields import LANG_RULE, is_lang_tag
from broadcastd.controller.recordings import Upload
from broadcastd.errors import BroadcastdError
from broadcastd.models import PRIORITIES, Priority
from broadcastd.protocol.envelopes import MAX_TEXT
from broadcastd.protocol.limits import brief, is_int

if TYPE_CHECKING:
    from collections.abc import Mapping

    from broadcastd.controller.controlsocket import Peer
    from broadcastd.controller.recordings import Recording

MAX_FIELD_CHARS = 200  # ids, names, hamlet lists, language tags
# All recordings of one announcement together: 5 minutes of a phone's AAC or AMR is well under
# 3 MiB; 16 MiB still takes 3 minutes of 44.1 kHz WAV.
MAX_RECORDING_BYTES = 16 * 1024 * 1024
MAX_RECORDINGS = 16  # languages in one announcement
MAX_SCHEDULE = 24  # entries of a volume schedule: one an hour is more than any commune needs
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


class RequestError(BroadcastdError):
    """A control request the daemon refuses; its message goes back to the CLI."""


@dataclass(frozen=True, slots=True)
class Announce:
    """An ad-hoc announcement: `hamlets` is None for all of them. `text` ("" for none) is in
    `lang`; `audio` is what arrived, `recordings` what the daemon kept of it (Operations)."""

    text: str
    lang: str | None
    hamlets: str | None
    priority: Priority
    now: bool
    exercise: bool
    operator: str | None
    audio: tuple[Upload, ...] = ()
    recordings: tuple[Recording, ...] = ()


@dataclass(frozen=True, slots=True)
class Cancel:
    id: str
    say: str | None
    correction: bool
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class Approve:
    id: str
    operator: str | None


@dataclass(frozen=True, slots=True)
class Stop:
    hamlets: str | None
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class Volume:
    """A volume level for hamlets (None: all of them) or for single nodes (`nodes`)."""

    level: int
    hamlets: str | None
    nodes: str | None
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class VolumeSchedule:
    """Levels by time of day for hamlets (None: all of them), in force instead of the config's
    `volume:` for every playlist made from now on; `schedule` None: back to the config's."""

    hamlets: str | None
    schedule: dict[dt.time, int] | None
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    operator: str | None = None
    v: int = 1  # the read-protocol version the client speaks (see reads.py)


@dataclass(frozen=True, slots=True)
class Read:
    """A versioned read (`hamlets`, `nodes`): it changes nothing in the daemon."""

    what: str
    v: int
    operator: str | None = None


Request = Announce | Cancel | Approve | Stop | Volume | VolumeSchedule | Status | Read
READ_COMMANDS = ("hamlets", "nodes")
MAX_READ_VERSION = 1_000_000  # any client's version fits; beyond is a malformed request


@dataclass(frozen=True, slots=True)
class Who:
    """Who asked: the operator (as claimed, or as the console authenticated them: `via`), and
    the Unix user the kernel vouches for."""

    operator: str | None
    peer: Peer
    via: str | None = None  # "console": logged in to the web console; None: as claimed

    def record(self) -> dict[str, object]:
        """What the journal keeps of it, beside each event."""
        peer = self.peer
        record: dict[str, object] = {
            "operator": self.operator,
            "unix_user": peer.user,
            "uid": peer.uid,
            "pid": peer.pid,
        }
        if self.via is not None:  # absent for the CLI, so its records keep their shape
            record["via"] = self.via
        return record

    def attribution(self) -> dict[str, object]:
        """What a reply says the journal recorded of who asked, and what of it is proven."""
        recorded: dict[str, object] = {
            "operator": self.operator,
            "operator_verified": False,  # a name typed on a command line
            "unix_user": self.peer.user,
            "unix_user_verified": self.peer.user is not None,  # the kernel's SO_PEERCRED
        }
        if self.via is not None:  # the console logged this operator in with a password
            recorded |= {"operator_verified": True, "via": self.via}
        return {"recorded": recorded}

    def describe(self) -> str:
        """For logs and the CLI: what is claimed and what is proven, said apart."""
        claimed = f"operator {self.operator!r} (as claimed)" if self.operator else "no operator"
        if self.via is not None:
            claimed = f"operator {self.operator!r} (logged in to the {self.via})"
        if self.peer.user is None:
            return f"{claimed}, Unix user unknown"
        return f"{claimed}, Unix user {self.peer.user} (uid {self.peer.uid}, pid {self.peer.pid})"


# A request that states `"via": "console"` comes from the web console, which logged its operator
# in with a password: the daemon takes that name as authenticated, from the console's user only.
VIA_CONSOLE: Final = "console"


def who_asked(
    raw: Mapping[str, object], operator: str | None, peer: Peer, *, console_uid: int
) -> Who:
    """Who asked, with `"via": "console"` taken only from a peer running as `console_uid`.

    Why the uid: the socket is 0600 in a 0700 directory, so its peers are that user or root.
    Whoever runs as the daemon's user can read the signing key and sign anything, so trusting
    the console's claim from that user hands out nothing new; root, or anyone else, who states
    `via` is refused rather than recorded as a console operator. The CLI never sends `via`.
    """
    via = _text(raw, "via")
    if via is None:
        return Who(operator, peer)
    if via != VIA_CONSOLE:
        raise RequestError(f'via must be "{VIA_CONSOLE}" or absent, got: {via!r}')
    if peer.uid is None or peer.uid != console_uid:
        raise RequestError(
            f"via {VIA_CONSOLE} is accepted only from the Unix user the console runs as"
            f" (uid {console_uid}), got: {peer.user or 'an unknown user'}"
        )
    if operator is None:
        raise RequestError(
            f"a request via the {VIA_CONSOLE} must name the operator it authenticated"
        )
    return Who(operator, peer, VIA_CONSOLE)


def parse_request(raw: Mapping[str, object]) -> Request:
    """The typed request for one JSON object from the control socket; RequestError if malformed."""
    cmd = raw.get("cmd")
    operator = _text(raw, "operator")
    if cmd == "announce":
        return _announce(raw)
    if cmd == "cancel":
        request = Cancel(
            id=_text(raw, "id") or "",
            say=_text(raw, "say", limit=MAX_TEXT),
            correction=_flag(raw, "correction"),
            operator=operator,
        )
        if request.say and request.correction:
            raise RequestError("give either --say TEXT or --correction, not both")
        return request
    if cmd == "approve":
        return Approve(id=_text(raw, "id") or "", operator=operator)
    if cmd == "stop":
        return Stop(hamlets=_text(raw, "hamlets"), operator=operator)
    if cmd in ("volume", "volume-schedule"):
        return _volume(raw, operator)
    return _read(cmd, raw, operator)


def _read(cmd: object, raw: Mapping[str, object], operator: str | None) -> Status | Read:
    """`status` and the versioned reads: they change nothing in the daemon."""
    if cmd == "status":
        return Status(operator=operator, v=_version(raw))
    if cmd in READ_COMMANDS:
        return Read(what=str(cmd), v=_version(raw), operator=operator)
    raise RequestError(f"unknown request {brief(cmd)}")


def _announce(raw: Mapping[str, object]) -> Announce:
    priority = _text(raw, "priority") or "priority"
    if priority not in PRIORITIES:
        raise RequestError(f"priority must be normal, priority or emergency, got: {priority!r}")
    exercise = _flag(raw, "exercise")
    if exercise and priority == "emergency":
        raise RequestError(
            "an exercise is never an emergency: drop --priority emergency or --exercise"
        )
    text = (_text(raw, "text", limit=MAX_TEXT) or "").strip()
    audio = _audio(raw.get("audio"))
    if not text and not audio:
        raise RequestError("announce needs --text, --audio LANG=FILE or both")
    return Announce(
        text=text,
        lang=_text(raw, "lang"),
        hamlets=_text(raw, "hamlets"),
        priority=priority,
        now=_flag(raw, "now"),
        exercise=exercise,
        operator=_text(raw, "operator"),
        audio=audio,
    )


def _audio(value: object) -> tuple[Upload, ...]:
    """`{"LANG": "<base64>", ...}`: each language's file, sizes checked before any decoding."""
    encoded = _audio_fields(value)
    size = sum(len(text) // 4 * 3 for text in encoded.values())
    if size > MAX_RECORDING_BYTES:
        raise RequestError(recordings_too_big(size))
    uploads = []
    for lang, text in encoded.items():
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"audio.{lang} is not valid base64") from None
        if not data:
            raise RequestError(f"audio.{lang}: the file is empty")
        uploads.append(Upload(lang, data))
    return tuple(uploads)


def _audio_fields(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(
            f'audio must be an object {{"LANG": "<base64 of the file>"}}, got: {brief(value)}'
        )
    if len(value) > MAX_RECORDINGS:
        raise RequestError(f"at most {MAX_RECORDINGS} recordings, got: {len(value)}")
    for lang, text in value.items():
        if not is_lang_tag(lang):
            raise RequestError(f"audio: {LANG_RULE}, got: {brief(lang)}")
        if not isinstance(text, str):
            raise RequestError(f"audio.{lang} must be the file in base64, got: {brief(text)}")
    return value


def recordings_too_big(size: int) -> str:
    """The refusal for `size` bytes of recordings (the CLI says the same before sending)."""
    mib = 1024 * 1024
    return (
        f"the recordings are too big: {size / mib:.1f} MiB, at most {MAX_RECORDING_BYTES // mib}"
        " MiB together (a phone's M4A, AMR or MP3 of a few minutes is far smaller than a WAV)"
    )


def _volume(raw: Mapping[str, object], operator: str | None) -> Volume | VolumeSchedule:
    """A level now, or (`volume-schedule`) levels by time of day from now on."""
    if raw.get("cmd") == "volume-schedule":
        hamlets = _text(raw, "hamlets", limit=MAX_TEXT)
        return VolumeSchedule(hamlets, volume_schedule(raw.get("schedule")), operator)
    level = raw.get("level")
    if not is_int(level) or not 0 <= level <= 100:
        raise RequestError(f"level must be a whole number from 0 to 100, got: {brief(level)}")
    hamlets, nodes = _text(raw, "hamlets", limit=MAX_TEXT), _text(raw, "nodes", limit=MAX_TEXT)
    if hamlets is not None and nodes is not None:
        raise RequestError("give either --hamlets or --nodes, not both")
    return Volume(level=level, hamlets=hamlets, nodes=nodes, operator=operator)


def volume_schedule(value: object) -> dict[dt.time, int] | None:
    """`{"HH:MM": level, ...}` as the config's `volume:` has it; null: the config's again
    (RequestError naming the entry otherwise; the CLI checks its arguments with it too)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not 1 <= len(value) <= MAX_SCHEDULE:
        raise RequestError(
            f'schedule must be {{"HH:MM": level, ...}} with 1 to {MAX_SCHEDULE} entries, or null,'
            f" got: {brief(value)}"
        )
    for at, level in value.items():
        if not isinstance(at, str) or not _CLOCK.fullmatch(at):
            raise RequestError(f"schedule: a time of day is HH:MM, got: {brief(at)}")
        if not is_int(level) or not 0 <= level <= 100:
            raise RequestError(
                f"schedule.{at}: a level is a whole number from 0 to 100, got: {brief(level)}"
            )
    return {dt.time.fromisoformat(at): level for at, level in value.items()}


def _text(raw: Mapping[str, object], name: str, *, limit: int = MAX_FIELD_CHARS) -> str | None:
    """A string field; absent, null and "" are all None."""
    value = raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name} must be text, got: {brief(value)}")
    if len(value) > limit:
        raise RequestError(f"{name} must be at most {limit} characters, got: {len(value)}")
    return value


def _version(raw: Mapping[str, object]) -> int:
    """The client's read-protocol version: absent means 1, the first."""
    value = raw.get("v", 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_READ_VERSION:
        raise RequestError(f"v must be a protocol version (1, 2, ...), got: {brief(value)}")
    return value


def _flag(raw: Mapping[str, object], name: str) -> bool:
    value = raw.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false, got: {brief(value)}")
    return value
