"""Which keys a schema accepts at a place in the YAML, and the one a misspelled key meant.

Pydantic reports an unknown key without saying what would have been right; staff who typed
`housholds` need to read "did you mean 'households'?". The schema's own annotations say which
keys each place accepts, so the suggestion can never drift from the models.
"""

from __future__ import annotations

import difflib
import types
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broadcastd.config.yamlsource import YamlPath

CUTOFF = (
    0.6  # difflib's similarity ratio: 'housholds' -> 'households' is 0.95, 'colour' -> 'nodes' 0.36
)


def keys_at(model: type[BaseModel], path: YamlPath) -> list[str]:
    """The keys (as written in YAML, aliases included) of the mapping at `path`, or [] if the
    schema has no fixed keys there (a free mapping such as `slots`, or a path it does not know)."""
    found = _models_at(model, path)
    keys: list[str] = []
    for cls in found:
        for name, info in cls.model_fields.items():
            key = info.alias or name
            if key not in keys:
                keys.append(key)
    return keys


def closest(key: str, valid: Sequence[str]) -> str | None:
    """The valid key `key` most probably meant, if one is close enough."""
    by_lower = {v.lower(): v for v in valid}
    found = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=CUTOFF)
    return by_lower[found[0]] if found else None


def unknown_key_message(key: str, valid: Sequence[str]) -> str:
    """'unknown field' with the likely intended key, or the keys allowed there."""
    guess = closest(key, valid)
    if guess is not None:
        return f"unknown field (did you mean {guess!r}?)"
    if valid:
        return f"unknown field (valid here: {', '.join(valid)})"
    return "unknown field"


def _models_at(model: type[BaseModel], path: YamlPath) -> list[type[BaseModel]]:
    """The models that may sit at `path` (more than one under a union)."""
    current: list[Any] = [model]
    for part in path:
        current = [nxt for ann in current for nxt in _step(ann, part)]
        if not current:
            return []
    return [m for ann in current for m in _unwrap(ann) if _is_model(m)]


def _step(annotation: Any, part: str | int) -> list[Any]:
    out: list[Any] = []
    for ann in _unwrap(annotation):
        origin = get_origin(ann)
        if _is_model(ann) and isinstance(part, str):
            for name, info in ann.model_fields.items():
                if part in (name, info.alias):
                    out.append(info.annotation)
        elif origin in (tuple, list) and isinstance(part, int):
            out.extend(a for a in get_args(ann) if a is not Ellipsis)
        elif origin is dict and isinstance(part, str):
            out.append(get_args(ann)[1])
    return out


def _unwrap(annotation: Any) -> list[Any]:
    """`Annotated[X, ...]` -> [X]; `X | Y` -> [X, Y]; anything else -> [itself]."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [u for arg in get_args(annotation) for u in _unwrap(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
