"""Reusable pydantic field types (ids, durations, times of day) and pydantic errors as
`file:line:col` problems: the building blocks of the commune schema and the node agent's config."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from broadcastd.config.suggest import closest, keys_at, unknown_key_message
from broadcastd.config.yamlsource import Located, YamlPath, dotted, problem_at

if TYPE_CHECKING:
    from pydantic import ValidationError

    from broadcastd.errors import Problem

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
# A language tag is a label matched within the config (a hamlet's languages against the keys of
# `text` and `audio`), never handed to a BCP-47 consumer: TTS engines only get their own fixed
# languages. Hyphens are allowed because staff name languages in words: Cao Lan, Sán Dìu.
_LANG = re.compile(r"[a-z]{2,8}(?:-[a-z]{2,8}){0,3}")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_HOSTPORT = re.compile(r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})")
_BITRATE = re.compile(r"(\d{1,3})k")


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError("expected an id of lowercase letters, digits and '-'")
    return value


LANG_RULE = (
    "expected a language tag: lowercase letters a-z without accents, 2 to 8 per word, "
    "words joined by '-' (such as 'vi', 'dao' or 'san-diu')"
)


def is_lang_tag(value: object) -> bool:
    """Whether `value` is a language tag (LANG_RULE); for tags that arrive outside a config."""
    return isinstance(value, str) and _LANG.fullmatch(value) is not None


def _lang(value: str) -> str:
    if not is_lang_tag(value):
        raise ValueError(LANG_RULE)
    return value


MAX_DURATION_S = 366 * 86400  # no slot, lead or timeout is longer than a year


def parse_duration(value: object) -> dt.timedelta:
    """`30s`, `15m`, `6h`, `1d`, `500ms`; a bare number is seconds."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, bool):
        # pydantic reports ValueError as a validation message; a TypeError would escape it.
        raise ValueError("expected a duration such as 30s, 15m or 6h")  # noqa: TRY004
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.fullmatch(str(value))
        if not m:
            raise ValueError("expected a duration such as 30s, 15m or 6h")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0:
        raise ValueError("duration must not be negative")
    if not seconds <= MAX_DURATION_S:  # also NaN; timedelta would raise OverflowError
        raise ValueError("duration must be at most 366d")
    return dt.timedelta(seconds=seconds)


def _positive(value: dt.timedelta) -> dt.timedelta:
    # A zero heartbeat, timeout or window makes a speaker stale at once or a slot unplayable.
    if value <= dt.timedelta(0):
        raise ValueError("duration must be more than 0s")
    return value


def _clock(value: object) -> dt.time:
    if isinstance(value, dt.time):
        return value
    m = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if not m:
        raise ValueError("expected a time of day as HH:MM")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23:
        raise ValueError("the hour is out of range: expected a time of day from 00:00 to 23:59")
    if minute > 59:
        raise ValueError("the minute is out of range: expected a time of day from 00:00 to 23:59")
    return dt.time(hour, minute)


def _hostport(value: str) -> str:
    m = _HOSTPORT.fullmatch(value)
    if not m or not 0 < int(m.group("port")) < 65536:
        raise ValueError("expected HOST:PORT such as 127.0.0.1:1883")
    return value


def loopback_host(host: str | None) -> bool:
    """Whether `host` (a name or an address, IPv6 possibly in brackets) is this machine itself.

    Only `localhost` and literal loopback addresses count: any other name could be made to
    resolve elsewhere, and what crosses no network is the one thing plain MQTT may carry."""
    if not host:
        return False
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone (use an IANA name such as Asia/Ho_Chi_Minh)") from None
    return value


def _bitrate(value: str) -> str:
    m = _BITRATE.fullmatch(value)
    if not m or not 8 <= int(m.group(1)) <= 320:
        raise ValueError("expected a bitrate between 8k and 320k, such as 32k")
    return value


Slug = Annotated[str, Field(strict=True), AfterValidator(_slug)]
Lang = Annotated[str, Field(strict=True), AfterValidator(_lang)]
Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
ClockTime = Annotated[dt.time, BeforeValidator(_clock)]
HostPort = Annotated[str, Field(strict=True), AfterValidator(_hostport)]
# Households: a commune has a few thousand; a typo of many digits would overflow SQLite's integers.
Count = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]
Bitrate = Annotated[str, AfterValidator(_bitrate)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def validation_problems(
    exc: ValidationError,
    located: Located,
    model: type[BaseModel] | None = None,
    *,
    root_keys: tuple[str, ...] = (),
) -> list[Problem]:
    """pydantic errors as `file:line:col` problems (also used by the node agent's config).

    With the `model` that was validated, an unknown key names the key it probably meant (or the
    keys allowed there); `root_keys` are top-level keys the loader takes out before validating.
    """
    problems: list[Problem] = []
    seen: set[tuple[YamlPath, str]] = set()
    errors = exc.errors(include_url=False)
    unknown, meant = _unknown_keys(errors, model, root_keys)
    for err in errors:
        path = _yaml_path(err["loc"])
        kind = err["type"]
        msg = _message(err)
        if kind == "missing" and path in meant:
            continue  # the misspelled key is reported, with the right spelling
        if kind == "too_short" and _has_item_errors(errors, path):
            continue  # pydantic counts only the items that validated: the items' errors say why
        if kind == "extra_forbidden":
            path = _unknown_path(err)
            msg = unknown.get(path, msg)
        if (path, msg) in seen:
            continue
        seen.add((path, msg))
        if kind == "missing":
            problems.append(problem_at(located.where(path), dotted(path), msg))
        elif kind == "extra_forbidden":
            problems.append(problem_at(located.where(path, key=True), dotted(path), msg, path[-1]))
        elif isinstance(err.get("input"), dict) and err.get("input"):
            # A whole section failed a cross-field rule: its dump would bury the message.
            problems.append(problem_at(located.where(path), dotted(path), msg))
        else:
            problems.append(problem_at(located.where(path), dotted(path), msg, err.get("input")))
    return sorted(problems, key=lambda p: (str(p.file), p.line, p.col))


def _unknown_path(err: Any) -> YamlPath:
    # the unknown key is the last loc part even when it looks like a pydantic branch name
    return (*_yaml_path(err["loc"][:-1]), err["loc"][-1])


def _unknown_keys(
    errors: list[Any], model: type[BaseModel] | None, root_keys: tuple[str, ...]
) -> tuple[dict[YamlPath, str], set[YamlPath]]:
    """Per unknown key, its message (the key it probably meant, or the keys valid there), and the
    paths of the keys so meant: a required one is then not also reported missing."""
    unknown: dict[YamlPath, str] = {}
    meant: set[YamlPath] = set()
    if model is None:
        return unknown, meant
    for err in errors:
        if err["type"] != "extra_forbidden":
            continue
        path = _unknown_path(err)
        valid = keys_at(model, path[:-1]) + (list(root_keys) if len(path) == 1 else [])
        unknown[path] = unknown_key_message(str(path[-1]), valid)
        guess = closest(str(path[-1]), valid)
        if guess is not None:
            meant.add((*path[:-1], guess))
    return unknown, meant


def _has_item_errors(errors: list[Any], path: YamlPath) -> bool:
    n = len(path)
    for err in errors:
        inner = _yaml_path(err["loc"])
        if len(inner) > n and inner[:n] == path and isinstance(inner[n], int):
            return True
    return False


def _yaml_path(loc: tuple[int | str, ...]) -> YamlPath:
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (
            part.startswith(("function-", "literal[", "tuple[")) or part in {"str", "int"}
        ):
            continue  # pydantic's union/validator branch names, not YAML keys
        if isinstance(part, str) and part.endswith("[key]"):
            continue
        out.append("from" if part == "from_" else part)
    return tuple(out)


_RENAMES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
    # Staff write YAML: pydantic's "valid tuple" / "valid dictionary or instance of Commune"
    # name Python types they never wrote.
    "tuple_type": "expected a list, such as [a, b]",
    "list_type": "expected a list, such as [a, b]",
    "dict_type": "expected a mapping of names to values",
    "model_type": "expected a mapping of fields",
}


def _message(err: Any) -> str:
    kind = err["type"]
    if kind in _RENAMES:
        return _RENAMES[kind]
    least = (err.get("ctx") or {}).get("min_length")
    if kind == "too_short" and isinstance(least, int):
        # pydantic says "tuple should have at least 1 item after validation, not 0"
        return f"expected at least {least} {'entry' if least == 1 else 'entries'}"
    msg: str = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg[:1].lower() + msg[1:]
