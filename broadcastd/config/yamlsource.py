"""A guarded YAML reader that remembers where every value came from.

PyYAML composes the document into nodes; we convert the nodes ourselves so that we can reject
duplicate keys, bound alias expansion ("billion laughs"), and record `file:line:col` for every path.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from broadcastd.errors import ConfigError, Problem

MAX_BYTES = 1024 * 1024
MAX_VALUES = 100_000
MAX_DEPTH = 64

Key: TypeAlias = str | int
YamlPath: TypeAlias = tuple[Key, ...]


@dataclass(frozen=True, slots=True)
class Loc:
    file: Path
    line: int
    col: int


@dataclass(slots=True)
class Located:
    """A plain Python tree plus the location of every value (and of every mapping key)."""

    data: Any
    values: dict[YamlPath, Loc] = field(default_factory=dict)
    keys: dict[YamlPath, Loc] = field(default_factory=dict)
    # Problems that did not stop the reading (duplicate keys: the first value is kept).
    problems: list[Problem] = field(default_factory=list)
    # An included announcement's place in the merged list -> its place in its own file.
    local: dict[int, int] = field(default_factory=dict)

    def where(self, path: YamlPath, *, key: bool = False) -> Loc:
        """The location of `path`, or of its nearest ancestor that exists."""
        probe = tuple(path)
        while True:
            if key and probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return Loc(Path("?"), 1, 1)
            probe = probe[:-1]

    def relabel(self, problems: list[Problem]) -> list[Problem]:
        """Number an included announcement as staff see it in its own file (`announcements[0]`
        is the first one there), not by its place in the merged list."""
        out: list[Problem] = []
        for p in problems:
            m = _MERGED.match(p.path)
            if m and int(m.group(1)) in self.local:
                local = f"announcements[{self.local[int(m.group(1))]}]"
                p = replace(p, path=local + p.path[m.end() :])  # noqa: PLW2901 - the relabelled one
            out.append(p)
        return out

    def graft(self, prefix: YamlPath, other: Located, other_prefix: YamlPath = ()) -> None:
        """Record `other`'s locations under `prefix` (used for `include:`)."""
        n = len(other_prefix)
        for src, dst in ((other.values, self.values), (other.keys, self.keys)):
            for p, loc in src.items():
                if p[:n] == other_prefix:
                    dst[prefix + p[n:]] = loc


_MERGED = re.compile(r"announcements\[(\d+)\]")


def problem_at(loc: Loc, path: str, message: str, *args: object) -> Problem:
    if args:
        return Problem(loc.file, loc.line, loc.col, path, message, args[0])
    return Problem(loc.file, loc.line, loc.col, path, message, has_value=False)


class _Loader(yaml.SafeLoader):
    """SafeLoader used only to compose nodes and construct scalars."""


_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")


def read_yaml(path: Path, *, collect: bool = False) -> Located:
    """Read one YAML file under the hostile-input guards; raises ConfigError with one line.

    Duplicate keys are all reported: raised together at the end, or with `collect` left in
    `problems` for the caller to report with everything else it finds.
    """
    display = path
    raw = _read_regular(path)
    text = _decode(display, raw)
    _reject_tabs(display, text)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            [Problem(display, line, col, "", f"invalid YAML: {msg}", has_value=False)]
        ) from None
    except yaml.reader.ReaderError as exc:
        # A control character such as NUL: PyYAML's own text spans lines and counts characters.
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        message = "invalid YAML: a control character is not allowed"
        raise ConfigError([Problem(display, line, col, "", message, char)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            [Problem(display, 1, 1, "", f"invalid YAML: {exc}", has_value=False)]
        ) from None
    except RecursionError:
        # PyYAML composes recursively: thousands of nested '[' exhaust the stack before our
        # MAX_DEPTH check sees the tree.
        raise ConfigError(
            [
                Problem(
                    display,
                    1,
                    1,
                    "",
                    f"document nests deeper than {MAX_DEPTH} levels",
                    has_value=False,
                )
            ]
        ) from None
    out = Located(None)
    if node is None:
        out.data = None
        return out
    out.data = _Converter(display, out).convert(node, ())
    if out.problems and not collect:
        raise ConfigError(out.problems)
    return out


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _read_regular(path: Path) -> bytes:
    """The first MAX_BYTES + 1 bytes of a regular file. Opened non-blocking and checked with
    fstat before reading: a FIFO or a device named as config would otherwise block `check` and a
    reload forever (and a blocked reload stops the daemon answering signals)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        message = f"cannot read file {_absolute(path)}: {exc.strerror}"
        raise ConfigError([Problem(path, 1, 1, "", message, str(path))]) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a file")
            message = f"not a regular file ({kind}); name a YAML file"
            raise ConfigError([Problem(path, 1, 1, "", message, str(path))])
        if st.st_size > MAX_BYTES:
            raise ConfigError([_too_big(path, st.st_size)])
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        message = f"cannot read file {_absolute(path)}: {exc.strerror}"
        raise ConfigError([Problem(path, 1, 1, "", message, str(path))]) from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:  # it grew while we read it
        raise ConfigError([_too_big(path, len(raw))])
    return raw


def _absolute(path: Path) -> str:
    return os.path.normpath(path.absolute())


def _too_big(path: Path, size: int) -> Problem:
    return Problem(path, 1, 1, "", f"file is larger than {MAX_BYTES // 1024} KiB", f"{size} bytes")


def _decode(file: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        bad = raw[exc.start : exc.start + 1].hex()
        raise ConfigError(
            [Problem(file, line, col, "", "file is not valid UTF-8", f"byte 0x{bad}")]
        ) from None
    return text.removeprefix("\ufeff")


def _reject_tabs(file: Path, text: str) -> None:
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip(" ")
        if stripped.startswith("\t"):
            col = len(line) - len(stripped) + 1
            raise ConfigError(
                [
                    Problem(
                        file,
                        lineno,
                        col,
                        "",
                        "tab used for indentation; indent with spaces",
                        has_value=False,
                    )
                ]
            )


# The tags plain YAML resolves to by itself (an explicit !!str or !!int is the same thing).
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "value", "merge", "seq", "map")
)


class _Converter:
    def __init__(self, file: Path, out: Located) -> None:
        self.file = file
        self.out = out
        self.count = 0
        self.loader = _Loader("")
        self.active: set[int] = set()

    def loc(self, node: yaml.Node) -> Loc:
        return Loc(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, node: yaml.Node, path: YamlPath, message: str) -> ConfigError:
        loc = self.loc(node)
        return ConfigError([problem_at(loc, dotted(path), message)])

    def convert(self, node: yaml.Node, path: YamlPath) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            # Report where the expansion started, not the deep path it reached.
            message = f"document expands to more than {MAX_VALUES} values (alias bomb?)"
            loc = self.out.keys.get(path[:1], self.loc(node))
            raise ConfigError([problem_at(loc, dotted(path[:1]), message)])
        if len(path) > MAX_DEPTH or id(node) in self.active:
            message = f"document nests deeper than {MAX_DEPTH} levels (or an alias contains itself)"
            raise self.fail(node, path[:1], message)
        self.out.values.setdefault(path, self.loc(node))
        if node.tag not in _PLAIN_TAGS:
            # A safe loader would build bytes from !!binary and drop !foo silently: neither is
            # anything staff meant to write, and both hide what the value really is.
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            message = "YAML tags are not supported; write the plain value"
            raise ConfigError([problem_at(self.loc(node), dotted(path), message, tag)])
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(child, (*path, i)) for i, child in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        raise self.fail(node, path, "unsupported YAML node")

    def mapping(self, node: yaml.MappingNode, path: YamlPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first: dict[str, Loc] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, path, "mapping keys must be plain words")
            key = str(key_node.value)
            if key == "<<":
                raise self.fail(
                    key_node, path, "merge keys ('<<') are not supported; write the fields out"
                )
            if key in first:
                # Reported, and the first value kept, so the rest of the file is still checked.
                message = f"duplicate key (first defined at line {first[key].line})"
                loc = self.loc(key_node)
                self.out.problems.append(problem_at(loc, dotted((*path, key)), message, key))
                continue
            first[key] = self.loc(key_node)
            self.out.keys[(*path, key)] = first[key]
            result[key] = self.convert(value_node, (*path, key))
        return result

    def scalar(self, node: yaml.ScalarNode) -> Any:
        # YAML 1.1 reads 11:30 as the base-60 integer 690; staff mean a clock time.
        if node.tag in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
        ) and _SEXAGESIMAL.fullmatch(node.value):
            return node.value
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, yaml.YAMLError):
            # e.g. a date-shaped value like 2026-13-45: keep the text, validation reports it.
            return node.value


def dotted(path: YamlPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
