"""Cross-reference checks between config sections, run on every field that is valid on its own.

Schema validation of the whole `Config` stops being useful for references as soon as one field is
wrong anywhere; `Parts` validates each field of each section, hamlet and announcement on its own,
so a typo in one field does not hide an unknown slot name, a text in a language no engine speaks
or a missing recording in the same announcement: everything is reported in one run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from broadcastd.config.brokercfg import Broker
from broadcastd.config.schema import (
    ENGINE_LANGUAGES,
    Announcement,
    Audio,
    Commune,
    Hamlet,
    Tts,
)
from broadcastd.config.yamlsource import Loc, Located, YamlPath, dotted, problem_at

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from broadcastd.errors import Problem

# A model's fields that validated on their own, by Python name; an absent field has its default.
Fields = dict[str, Any]


@functools.cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    annotation: Any = info.annotation
    # the field's constraints (min_length, strict, validators) are its metadata
    return TypeAdapter(Annotated[(annotation, *info.metadata)] if info.metadata else annotation)


def valid_fields(model: type[BaseModel], raw: object) -> Fields:
    """Each field of `raw` that is valid on its own; absent optional fields get their default."""
    if not isinstance(raw, dict):
        return {}
    out: Fields = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in raw:
            if not info.is_required():
                out[name] = info.get_default(call_default_factory=True)
            continue
        try:
            out[name] = _adapter(model, name).validate_python(raw[key])
        except ValidationError:
            continue  # the schema reports it, with its line
    return out


def _valid(model: type[Broker], value: object) -> Broker | None:
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _items(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


@dataclass
class Parts:
    """What validated on its own, plus the ids as written (an id is referable even if its entry
    has an error elsewhere: that error is reported once, not again as 'unknown id')."""

    slot_names: list[str] = field(default_factory=list)
    hamlet_ids: list[tuple[object, YamlPath]] = field(default_factory=list)
    node_ids: list[tuple[object, YamlPath]] = field(default_factory=list)
    announcement_ids: list[tuple[object, YamlPath]] = field(default_factory=list)
    hamlets: list[tuple[int, Fields]] = field(default_factory=list)
    announcements: list[tuple[int, Fields]] = field(default_factory=list)
    raw_announcements: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    commune: Fields = field(default_factory=dict)
    tts_engines: tuple[str, ...] | None = None
    audio: Fields = field(default_factory=dict)

    @property
    def tts_languages(self) -> frozenset[str] | None:
        if self.tts_engines is None:
            return None
        return frozenset().union(*(ENGINE_LANGUAGES[e] for e in self.tts_engines))

    def known_hamlets(self) -> list[str]:
        # a mistyped id (a list, a number) is a schema error reported elsewhere, never a known id
        return list(dict.fromkeys(hid for hid, _ in self.hamlet_ids if isinstance(hid, str)))

    @classmethod
    def of(cls, data: dict[str, Any]) -> Parts:
        parts = cls()
        slots = data.get("slots")
        if isinstance(slots, dict):
            parts.slot_names = [str(k) for k in slots]
        for i, h in enumerate(_items(data, "hamlets")):
            if not isinstance(h, dict):
                continue
            parts.hamlet_ids.append((h.get("id"), ("hamlets", i, "id")))
            for j, n in enumerate(_items(h, "nodes")):
                if isinstance(n, dict):
                    parts.node_ids.append((n.get("id"), ("hamlets", i, "nodes", j, "id")))
            parts.hamlets.append((i, valid_fields(Hamlet, h)))
        for i, a in enumerate(_items(data, "announcements")):
            if not isinstance(a, dict):
                continue
            parts.announcement_ids.append((a.get("id"), ("announcements", i, "id")))
            parts.raw_announcements.append((i, a))
            parts.announcements.append((i, valid_fields(Announcement, a)))
        parts.commune = valid_fields(Commune, data.get("commune"))
        parts.tts_engines = valid_fields(Tts, data.get("tts", {})).get("engines")
        parts.audio = valid_fields(Audio, data.get("audio", {}))
        return parts


def _unique(items: list[tuple[object, YamlPath]], located: Located, what: str) -> list[Problem]:
    seen: dict[object, Loc] = {}
    out: list[Problem] = []
    for value, path in items:
        if not isinstance(value, str):
            continue  # a missing or mistyped id is a schema error, reported there
        loc = located.where(path)
        if value in seen:
            first = seen[value]
            message = f"duplicate {what} (first at {first.file.name}:{first.line})"
            out.append(problem_at(loc, dotted(path), message, value))
        else:
            seen[value] = loc
    return out


def cross_check(
    parts: Parts, located: Located, written: Mapping[YamlPath, str] | None = None
) -> list[Problem]:
    """Every reference between sections: ids, slots, hamlets, languages, households, dates.

    `written` holds file paths as the YAML spells them (the tree holds them resolved)."""
    problems: list[Problem] = []
    problems += _unique(parts.hamlet_ids, located, "hamlet id")
    problems += _unique(parts.node_ids, located, "node id")
    problems += _unique(parts.announcement_ids, located, "announcement id")
    tts_langs = parts.tts_languages
    lang = parts.commune.get("default_language")
    if lang is not None and tts_langs is not None and lang not in tts_langs:
        path: YamlPath = ("commune", "default_language")
        spoken = ", ".join(sorted(tts_langs))
        message = f"must be a language the TTS engines speak ({spoken})"
        problems.append(problem_at(located.where(path), dotted(path), message, lang))
    for i, h in parts.hamlets:
        problems += _check_hamlet(i, h, located)
    for i, raw in parts.raw_announcements:
        problems += _check_references(parts, located, i, raw)
    raw_by_index = dict(parts.raw_announcements)
    for i, a in parts.announcements:
        problems += _check_content(parts, located, i, a, raw_by_index[i])
    problems += check_emergency(data_of(located), parts, located)
    problems += _check_broker_files(data_of(located), located, written or {})
    problems += _check_plaintext(data_of(located), located)
    return problems


def _check_plaintext(data: dict[str, Any], located: Located) -> list[Problem]:
    """Plain MQTT beyond loopback carries every speaker's password and ack in clear: refused
    unless `broker.insecure_plaintext: true` says the network is private (a VPN)."""
    broker = _valid(Broker, data.get("broker", {}))
    if broker is None:
        return []
    problems: list[Problem] = []
    for name, what in broker.plaintext_exposures():
        where: YamlPath = ("broker", name)
        message = (
            f"plain MQTT beyond loopback: {what}; keep listen on 127.0.0.1 and give speakers"
            " broker.public (TLS), or set broker.insecure_plaintext: true on a private network"
        )
        problems.append(
            problem_at(located.where(where), dotted(where), message, getattr(broker, name))
        )
    return problems


def _check_broker_files(
    data: dict[str, Any], located: Located, written: Mapping[YamlPath, str]
) -> list[Problem]:
    """An external broker's password and CA files must exist: `run` would fail on them later."""
    broker = _valid(Broker, data.get("broker", {}))
    if broker is None or broker.mode != "external":
        return []
    problems: list[Problem] = []
    for name in ("password_file", "ca_file"):
        path: Path | None = getattr(broker, name)
        if path is not None and not path.is_file():
            where: YamlPath = ("broker", name)
            message = f"file not found (looked for {path})"
            shown = written.get(where, str(path))
            problems.append(problem_at(located.where(where), dotted(where), message, shown))
    return problems


def data_of(located: Located) -> dict[str, Any]:
    return located.data if isinstance(located.data, dict) else {}


def check_emergency(data: dict[str, Any], parts: Parts, located: Located) -> list[Problem]:
    """The `exercise` and `emergency` sections against the rest: hamlets, languages, operators."""
    problems: list[Problem] = []
    exercise = data.get("exercise")
    if isinstance(exercise, dict):
        for j, hid in _strings(exercise, "hamlets"):
            problems += _unknown_hamlet(parts, located, ("exercise", "hamlets", j), hid)
        lang = exercise.get("lang", "vi")
        tts_langs = parts.tts_languages
        if tts_langs is not None and isinstance(lang, str) and lang not in tts_langs:
            path: YamlPath = ("exercise", "lang")
            message = "the exercise is spoken by TTS: use a language a TTS engine speaks"
            problems.append(problem_at(located.where(path), dotted(path), message, lang))
        if "exercise" in parts.slot_names:
            path = ("slots", "exercise")
            message = "slot name 'exercise' is reserved for the monthly exercise section"
            problems.append(problem_at(located.where(path, key=True), dotted(path), message))
    emergency = data.get("emergency")
    if isinstance(emergency, dict):
        names = _strings(emergency, "operators")
        for j, name in names:
            if [n for _, n in names].index(name) != j:
                path = ("emergency", "operators", j)
                problems.append(
                    problem_at(located.where(path), dotted(path), "operator listed twice", name)
                )
        if emergency.get("approvals") == 2 and len({n for _, n in names}) < 2:
            has_ops = "operators" in emergency
            path = ("emergency", "operators") if has_ops else ("emergency", "approvals")
            message = "two-person approval needs at least 2 named operators"
            problems.append(problem_at(located.where(path), dotted(path), message, len(names)))
    return problems


def _check_hamlet(i: int, h: Fields, located: Located) -> list[Problem]:
    problems: list[Problem] = []
    if "nodes" in h and "households" in h:
        total = sum(n.households for n in h["nodes"])
        if total > h["households"]:
            path: YamlPath = ("hamlets", i, "nodes")
            message = f"nodes cover more households than the hamlet has ({h['households']})"
            problems.append(problem_at(located.where(path), dotted(path), message, total))
    languages: tuple[str, ...] = h.get("languages", ())
    for j, lang in enumerate(languages):
        if languages.index(lang) != j:
            path = ("hamlets", i, "languages", j)
            problems.append(
                problem_at(located.where(path), dotted(path), "language listed twice", lang)
            )
    return problems


def _strings(raw: dict[str, Any], key: str) -> list[tuple[int, str]]:
    value = raw.get(key)
    return (
        [(j, v) for j, v in enumerate(value) if isinstance(v, str)]
        if isinstance(value, list)
        else []
    )


def _check_references(parts: Parts, located: Located, i: int, raw: dict[str, Any]) -> list[Problem]:
    """Slot and hamlet names, checked as written: also in an announcement with other errors."""
    problems: list[Problem] = []
    base: YamlPath = ("announcements", i)
    if parts.slot_names:
        defined = ", ".join(parts.slot_names)
        for j, slot in _strings(raw, "slots"):
            if slot not in parts.slot_names:
                path: YamlPath = (*base, "slots", j)
                message = f"unknown slot (defined: {defined})"
                problems.append(problem_at(located.where(path), dotted(path), message, slot))
    for j, hid in _strings(raw, "hamlets"):
        problems += _unknown_hamlet(parts, located, (*base, "hamlets", j), hid)
    return problems


def _unknown_hamlet(parts: Parts, located: Located, path: YamlPath, hid: str) -> list[Problem]:
    known = parts.known_hamlets()
    if hid in known:
        return []
    message = f"unknown hamlet id (defined: {', '.join(known)})" if known else "unknown hamlet id"
    return [problem_at(located.where(path), dotted(path), message, hid)]


def _check_content(
    parts: Parts, located: Located, i: int, a: Fields, raw: dict[str, Any]
) -> list[Problem]:
    problems: list[Problem] = []
    base: YamlPath = ("announcements", i)
    tts_langs = parts.tts_languages
    if tts_langs is not None and parts.tts_engines is not None:
        engines = ", ".join(parts.tts_engines)
        for lang in a.get("text", {}):
            if lang not in tts_langs:
                path: YamlPath = (*base, "text", lang)
                message = (
                    f"no configured TTS engine ({engines}) speaks this language; "
                    "give a recording under 'audio'"
                )
                problems.append(
                    problem_at(located.where(path, key=True), dotted(path), message, lang)
                )
    if a.get("text") == {} and a.get("audio") == {}:
        message = "announcement has neither text nor audio"
        problems.append(problem_at(located.where(base), dotted(base), message, raw.get("id")))
    first, until = a.get("from_"), a.get("until")
    if first is not None and until is not None and first > until:
        path = (*base, "until")
        message = f"must not be before 'from' ({first})"
        problems.append(problem_at(located.where(path), dotted(path), message, str(until)))
    return problems


__all__ = ["Parts", "cross_check"]
