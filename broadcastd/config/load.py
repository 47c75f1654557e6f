"""Reading a config from disk: includes, relative paths, schema, cross-references and media checks.

Every problem is collected and reported together: a schema error in one field does not hide a bad
reference in another, because cross-references are checked on every field that validated on its
own (`crosscheck.Parts`). An include names only regular files under the config file's directory.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broadcastd.config.crosscheck import Parts, cross_check
from broadcastd.config.loaded import LoadedConfig
from broadcastd.config.mediaprobe import probe_all
from broadcastd.config.schema import Config, config_from_yaml_data
from broadcastd.config.yamlsource import Loc, Located, dotted, problem_at, read_yaml
from broadcastd.errors import ConfigError, Problem

if TYPE_CHECKING:
    from broadcastd.config.yamlsource import YamlPath

# Path fields resolved against the directory of the file that names them.
_PATH_FIELDS: tuple[YamlPath, ...] = (
    ("signing", "private_key_file"),
    ("state_dir",),
    ("audio", "intro"),
    ("audio", "outro"),
    ("broker", "password_file"),
    ("broker", "ca_file"),
)


def load_config(path: Path | str, *, probe_media: bool = True) -> LoadedConfig:
    """Read, validate and cross-check a config file; raises ConfigError listing every problem.

    Problems name files as the caller spelled them (relative stays so).
    """
    path = Path(path)
    located = read_yaml(path, collect=True)
    if not isinstance(located.data, dict):
        if located.data is None:
            message = (
                "config is empty; expected a mapping of sections (commune, slots, hamlets, ...)"
            )
        else:
            message = (
                "config must be a mapping of sections (commune, slots, hamlets, ...), "
                f"not a {_yaml_kind(located.data)}"
            )
        raise ConfigError([Problem(path, 1, 1, "", message, has_value=False)])
    data: dict[str, Any] = located.data
    files = [path]
    problems: list[Problem] = list(located.problems)
    written: dict[YamlPath, str] = {}  # path values as the file spells them, for messages
    for p in _PATH_FIELDS:
        _resolve(data, p, path.parent, written)
    origins = _merge_includes(path, data, located, files, problems)
    announcements = data.get("announcements")
    # a mistyped `announcements: 1` is a schema error reported below, not a crash here
    for i, ann in enumerate(announcements if isinstance(announcements, list) else []):
        base = origins.get(i, path).parent
        if isinstance(ann, dict) and isinstance(ann.get("audio"), dict):
            for lang in ann["audio"]:
                _resolve(data, ("announcements", i, "audio", lang), base, written)
    config: Config | None = None
    try:
        config = config_from_yaml_data(data, located)
    except ConfigError as exc:
        problems += exc.problems
    parts = Parts.of(data)
    problems += cross_check(parts, located, written)
    clip_seconds: dict[Path, float] = {}
    if probe_media:
        state_dir = data.get("state_dir")
        cache_dir = Path(state_dir) if isinstance(state_dir, str) else None
        problems += _probe_media(parts, located, written, clip_seconds, cache_dir)
    if problems or config is None:
        raise ConfigError(_ordered(located.relabel(problems), files))
    return LoadedConfig(
        config,
        files=tuple(f.absolute() for f in files),
        located=located,
        clip_durations=clip_seconds,
    )


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"  # YAML's word for it: staff never wrote a Python dict
    return f"{type(value).__name__} value"


def _ordered(problems: list[Problem], files: list[Path]) -> list[Problem]:
    """Main file first, then included files in include order; by position within a file."""
    rank = {f: i for i, f in enumerate(files)}
    unique = list({str(p): p for p in problems}.values())  # values may be unhashable (dicts)
    return sorted(unique, key=lambda p: (rank.get(p.file, len(rank)), str(p.file), p.line, p.col))


def _resolve(
    tree: dict[str, Any], path: YamlPath, base: Path, written: dict[YamlPath, str]
) -> None:
    """Make the path at `path` absolute against `base`, remembering how it was written."""
    node: Any = tree
    for part in path[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return
    key = path[-1]
    if isinstance(node, dict) and isinstance(node.get(key), str):
        written[path] = node[key]
        value = Path(node[key]).expanduser()
        # normpath: `../audio/x.ogg` reads better in messages and compares equal to the real path.
        node[key] = os.path.normpath((base / value).absolute())


def _merge_includes(
    path: Path, data: dict[str, Any], located: Located, files: list[Path], problems: list[Problem]
) -> dict[int, Path]:
    """Append announcements from `include:` files; returns the origin file of each included item."""
    origins: dict[int, Path] = {}
    patterns = data.pop("include", None)
    if patterns is None:
        return origins
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        loc = located.where(("include",))
        problems.append(problem_at(loc, "include", "expected a list of file patterns", patterns))
        return origins
    anns = data.setdefault("announcements", [])
    if not isinstance(anns, list):
        return origins
    for i, pattern in enumerate(patterns):
        for match in _included_files(
            path.parent, pattern, located.where(("include", i)), i, problems
        ):
            inc = _read_include(match, problems)
            if inc is None:
                continue
            files.append(match)
            for j, item in enumerate(inc.data):
                origins[len(anns)] = match
                located.local[len(anns)] = j
                located.graft(("announcements", len(anns)), inc, (j,))
                anns.append(item)
    return origins


OUTSIDE = (
    "an include names files under the config file's directory (a relative pattern without '..')"
)


def _included_files(
    base: Path, pattern: str, loc: Loc, i: int, problems: list[Problem]
) -> list[Path]:
    """The files `pattern` matches under `base`. An absolute pattern, a '..' or a symlink out of
    `base` is refused: an include is how staff split their own bulletins, never a way to read
    (and echo in errors) files such as /etc/... or /proc/self/environ."""
    label = f"include[{i}]"
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        problems.append(problem_at(loc, label, OUTSIDE, pattern))
        return []
    # root_dir: metacharacters in the config's own directory name are not a pattern. Not
    # Path.glob: its '*' also matches dotfiles such as an editor's lock and swap files.
    matches = sorted(glob.glob(pattern, root_dir=base))  # noqa: PTH207
    if not matches:
        where = os.path.normpath(base.absolute() / pattern)
        problems.append(
            problem_at(loc, label, f"pattern matches no file (looked for {where})", pattern)
        )
    top = Path(os.path.realpath(base))
    found: list[Path] = []
    for rel in matches:
        real = Path(os.path.realpath(base / rel))
        if not real.is_relative_to(top):
            message = f"{OUTSIDE}; {rel} leads to {real}"
            problems.append(problem_at(loc, label, message, pattern))
            continue
        found.append(base / rel)
    return found


def _read_include(path: Path, problems: list[Problem]) -> Located | None:
    """An included file's list of announcements, or None (with the problem recorded)."""
    try:
        inc = read_yaml(path, collect=True)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    problems.extend(inc.problems)
    if inc.data is None:
        return None
    if not isinstance(inc.data, list):
        loc = inc.where(())
        message = (
            f"an included file must hold a list of announcements, not a {_yaml_kind(inc.data)}"
        )
        problems.append(problem_at(loc, "", message))
        return None
    return inc


def _probe_media(
    parts: Parts,
    located: Located,
    written: dict[YamlPath, str],
    out: dict[Path, float],
    cache_dir: Path | None,
) -> list[Problem]:
    """Every recorded clip and chime must exist and decode; measure its duration."""
    wanted: list[tuple[Path, YamlPath]] = []
    for key in ("intro", "outro"):
        p = parts.audio.get(key)
        if p is not None:
            wanted.append((p, ("audio", key)))
    for i, a in parts.announcements:
        clips = a.get("audio", {})
        wanted.extend((p, ("announcements", i, "audio", lang)) for lang, p in clips.items())
    problems: list[Problem] = []
    results = probe_all((p for p, _ in wanted), cache_dir)
    for p, path in wanted:
        seconds, error = results[p]
        if error:
            shown = written.get(path, str(p))
            problems.append(problem_at(located.where(path), dotted(path), error, shown))
        else:
            out[p] = seconds
    return problems
