"""Reading a config from disk: includes, relative paths, cross-references, and media checks."""

from __future__ import annotations

import glob
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from broadcastd.config import ENGINE_LANGUAGES, Config, config_from_yaml_data
from broadcastd.errors import ConfigError, Problem
from broadcastd.yamlsrc import Located, Loc, YamlPath, dotted, problem_at, read_yaml

# Path fields resolved against the directory of the file that names them.
_PATH_FIELDS: tuple[YamlPath, ...] = (
    ("signing", "private_key_file"),
    ("state_dir",),
    ("audio", "intro"),
    ("audio", "outro"),
    ("broker", "password_file"),
    ("broker", "ca_file"),
)
FFPROBE_TIMEOUT_S = 10.0


def load(path: Path, *, probe_media: bool = True) -> Config:
    path = path.absolute()
    located = read_yaml(path)
    if not isinstance(located.data, dict):
        kind = "empty" if located.data is None else type(located.data).__name__
        raise ConfigError(
            [
                Problem(
                    path,
                    1,
                    1,
                    "",
                    "config must be a mapping of sections (commune, slots, hamlets, ...)",
                    kind,
                )
            ]
        )
    data: dict[str, Any] = located.data
    raw = _copy(data)  # the values as written, for messages
    files = [path]
    problems: list[Problem] = []
    for p in _PATH_FIELDS:
        _resolve(data, p, path.parent)
    origins = _merge_includes(path, data, located, files, problems)
    for i, ann in enumerate(data.get("announcements") or []):
        base = origins.get(i, path).parent
        if isinstance(ann, dict) and isinstance(ann.get("audio"), dict):
            for lang in ann["audio"]:
                _resolve(ann, ("audio", lang), base)
    if problems:
        raise ConfigError(problems)
    config = config_from_yaml_data(data, located)
    problems = cross_check(config, located, raw)
    clip_seconds: dict[Path, float] = {}
    if probe_media:
        problems += _probe_media(config, located, clip_seconds)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (str(p.file), p.line, p.col)))
    config._files = tuple(files)  # noqa: SLF001 - the loader owns these private fields
    config._clip_seconds = clip_seconds  # noqa: SLF001
    config._located = located  # noqa: SLF001
    return config


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _resolve(tree: dict[str, Any], path: YamlPath, base: Path) -> None:
    node: Any = tree
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and isinstance(node.get(path[-1]), str):
        value = Path(node[path[-1]]).expanduser()
        node[path[-1]] = str(value if value.is_absolute() else (base / value))


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
        problems.append(
            problem_at(
                located.where(("include",)), "include", "expected a list of file patterns", patterns
            )
        )
        return origins
    anns = data.setdefault("announcements", [])
    if not isinstance(anns, list):
        return origins
    for i, pattern in enumerate(patterns):
        matches = sorted(glob.glob(str(path.parent / pattern)))  # noqa: PTH207 - glob patterns may contain '..'
        if not matches:
            problems.append(
                problem_at(
                    located.where(("include", i)),
                    f"include[{i}]",
                    "pattern matches no file",
                    pattern,
                )
            )
        for match in matches:
            inc_path = Path(match)
            try:
                inc = read_yaml(inc_path)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            if inc.data is None:
                continue
            if not isinstance(inc.data, list):
                problems.append(
                    Problem(
                        inc_path,
                        1,
                        1,
                        "",
                        "an included file must hold a list of announcements",
                        type(inc.data).__name__,
                    )
                )
                continue
            files.append(inc_path)
            for j, item in enumerate(inc.data):
                n = len(anns)
                anns.append(item)
                origins[n] = inc_path
                located.graft(("announcements", n), inc, (j,))
    return origins


def _unique(items: list[tuple[str, YamlPath]], located: Located, what: str) -> list[Problem]:
    seen: dict[str, Loc] = {}
    out: list[Problem] = []
    for value, path in items:
        loc = located.where(path)
        if value in seen:
            out.append(
                problem_at(
                    loc,
                    dotted(path),
                    f"duplicate {what} (first at {seen[value].file.name}:{seen[value].line})",
                    value,
                )
            )
        else:
            seen[value] = loc
    return out


def cross_check(config: Config, located: Located, raw: dict[str, Any]) -> list[Problem]:
    """Every reference between sections: ids, slots, hamlets, languages, households, dates."""
    del raw
    problems: list[Problem] = []
    problems += _unique(
        [(h.id, ("hamlets", i, "id")) for i, h in enumerate(config.hamlets)], located, "hamlet id"
    )
    problems += _unique(
        [
            (n.id, ("hamlets", i, "nodes", j, "id"))
            for i, h in enumerate(config.hamlets)
            for j, n in enumerate(h.nodes)
        ],
        located,
        "node id",
    )
    problems += _unique(
        [(a.id, ("announcements", i, "id")) for i, a in enumerate(config.announcements)],
        located,
        "announcement id",
    )
    tts_langs = config.tts.languages
    if config.commune.default_language not in tts_langs:
        path: YamlPath = ("commune", "default_language")
        problems.append(
            problem_at(
                located.where(path),
                dotted(path),
                f"must be a language the TTS engines speak ({', '.join(sorted(tts_langs))})",
                config.commune.default_language,
            )
        )
    for i, h in enumerate(config.hamlets):
        total = sum(n.households for n in h.nodes)
        if total > h.households:
            path = ("hamlets", i, "nodes")
            problems.append(
                problem_at(
                    located.where(path),
                    dotted(path),
                    f"nodes cover more households than the hamlet has ({h.households})",
                    total,
                )
            )
        for j, lang in enumerate(h.languages):
            if h.languages.index(lang) != j:
                path = ("hamlets", i, "languages", j)
                problems.append(
                    problem_at(located.where(path), dotted(path), "language listed twice", lang)
                )
    hamlet_ids = {h.id for h in config.hamlets}
    for i, a in enumerate(config.announcements):
        problems += _check_announcement(config, located, i, a, hamlet_ids, tts_langs)
    return problems


def _check_announcement(
    config: Config,
    located: Located,
    i: int,
    a: Any,
    hamlet_ids: set[str],
    tts_langs: frozenset[str],
) -> list[Problem]:
    problems: list[Problem] = []
    base: YamlPath = ("announcements", i)
    for j, slot in enumerate(a.slots):
        if slot not in config.slots:
            path = (*base, "slots", j)
            problems.append(
                problem_at(
                    located.where(path),
                    dotted(path),
                    f"unknown slot (defined: {', '.join(config.slots)})",
                    slot,
                )
            )
    if a.hamlets != "all":
        for j, hid in enumerate(a.hamlets):
            if hid not in hamlet_ids:
                path = (*base, "hamlets", j)
                problems.append(
                    problem_at(located.where(path), dotted(path), "unknown hamlet id", hid)
                )
    for lang in a.text:
        if lang not in tts_langs:
            path = (*base, "text", lang)
            engines = ", ".join(e for e in config.tts.engines)
            problems.append(
                problem_at(
                    located.where(path, key=True),
                    dotted(path),
                    f"no configured TTS engine ({engines}) speaks this language; give a recording under 'audio'",
                    lang,
                )
            )
    if not a.text and not a.audio:
        path = base
        problems.append(
            problem_at(
                located.where(path),
                dotted((*base, "text")),
                "announcement has neither text nor audio",
                a.id,
            )
        )
    if a.from_ is not None and a.until is not None and a.from_ > a.until:
        path = (*base, "until")
        problems.append(
            problem_at(
                located.where(path),
                dotted(path),
                f"must not be before 'from' ({a.from_})",
                str(a.until),
            )
        )
    return problems


def _probe_media(config: Config, located: Located, out: dict[Path, float]) -> list[Problem]:
    """Every recorded clip and chime must exist and decode; measure its duration."""
    wanted: list[tuple[Path, YamlPath]] = []
    for key in ("intro", "outro"):
        p = getattr(config.audio, key)
        if p is not None:
            wanted.append((p, ("audio", key)))
    for i, a in enumerate(config.announcements):
        wanted.extend((p, ("announcements", i, "audio", lang)) for lang, p in a.audio.items())
    problems: list[Problem] = []
    unique = sorted({p for p, _ in wanted})
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(unique, pool.map(probe_duration, unique), strict=True))
    for p, path in wanted:
        seconds, error = results[p]
        if error:
            problems.append(problem_at(located.where(path), dotted(path), error, str(p)))
        else:
            out[p] = seconds
    return problems


def probe_duration(path: Path) -> tuple[float, str]:
    """(seconds, "") for a decodable audio file, or (0, reason)."""
    if not path.is_file():
        return 0.0, "file not found"
    try:
        proc = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_type",
                "-of",
                "json",
                str(path),
            ],
            capture_output=True,
            timeout=FFPROBE_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        return 0.0, "cannot check audio: ffprobe (ffmpeg) is not installed"
    except subprocess.TimeoutExpired:
        return 0.0, "audio file could not be read in time"
    try:
        info = json.loads(proc.stdout or b"{}")
        has_audio = any(s.get("codec_type") == "audio" for s in info.get("streams", []))
        seconds = float(info.get("format", {}).get("duration", 0.0))
    except (ValueError, TypeError, AttributeError):
        has_audio, seconds = False, 0.0
    if proc.returncode != 0 or not has_audio or seconds <= 0:
        return 0.0, "not a decodable audio file"
    return seconds, ""


__all__ = ["ENGINE_LANGUAGES", "cross_check", "load", "probe_duration"]
