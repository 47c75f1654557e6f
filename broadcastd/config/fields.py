"""Reusable pydantic field types (ids, durations, times of day) and pydantic errors as
`file:line:col` problems: the building blocks of the commune schema and the node agent's config."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from broadcastd.config.yamlsource import Located, YamlPath, dotted, problem_at

if TYPE_CHECKING:
    from pydantic import ValidationError

    from broadcastd.errors import Problem

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_LANG = re.compile(r"[a-z]{2,8}")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_HOSTPORT = re.compile(r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})")
_BITRATE = re.compile(r"(\d{1,3})k")


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError("expected an id of lowercase letters, digits and '-'")
    return value


def _lang(value: str) -> str:
    if not _LANG.fullmatch(value):
        raise ValueError("expected a short lowercase language tag such as 'vi' or 'dao'")
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


def _clock(value: object) -> dt.time:
    if isinstance(value, dt.time):
        return value
    m = _CLOCK.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if not m:
        raise ValueError("expected a time of day as HH:MM")
    return dt.time(int(m.group(1)), int(m.group(2)))


def _hostport(value: str) -> str:
    m = _HOSTPORT.fullmatch(value)
    if not m or not 0 < int(m.group("port")) < 65536:
        raise ValueError("expected HOST:PORT such as 127.0.0.1:1883")
    return value


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
ClockTime = Annotated[dt.time, BeforeValidator(_clock)]
HostPort = Annotated[str, Field(strict=True), AfterValidator(_hostport)]
Count = Annotated[int, Field(strict=True, ge=0)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]
Bitrate = Annotated[str, AfterValidator(_bitrate)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def validation_problems(exc: ValidationError, located: Located) -> list[Problem]:
    """pydantic errors as `file:line:col` problems (also used by the node agent's config)."""
    return _problems(exc, located)


def _problems(exc: ValidationError, located: Located) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[YamlPath, str]] = set()
    for err in exc.errors(include_url=False):
        path = _yaml_path(err["loc"])
        kind = err["type"]
        msg = _message(err)
        if kind == "too_short" and _has_item_errors(exc.errors(include_url=False), path):
            continue  # pydantic counts only the items that validated: the items' errors say why
        if (path, msg) in seen:
            continue
        seen.add((path, msg))
        if kind == "missing":
            problems.append(problem_at(located.where(path), dotted(path), msg))
        elif kind == "extra_forbidden":
            # the unknown key is the last loc part even when it looks like a pydantic branch name
            path = (*_yaml_path(err["loc"][:-1]), err["loc"][-1])
            problems.append(problem_at(located.where(path, key=True), dotted(path), msg, path[-1]))
        elif isinstance(err.get("input"), dict):
            # A whole section failed a cross-field rule: its dump would bury the message.
            problems.append(problem_at(located.where(path), dotted(path), msg))
        else:
            problems.append(problem_at(located.where(path), dotted(path), msg, err.get("input")))
    return sorted(problems, key=lambda p: (str(p.file), p.line, p.col))


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
}


def _message(err: Any) -> str:
    kind = err["type"]
    if kind in _RENAMES:
        return _RENAMES[kind]
    msg: str = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg[:1].lower() + msg[1:]
