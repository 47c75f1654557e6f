"""The package's architecture, enforced: no import cycles, and each room imports only the rooms
below it (README "Layout")."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "broadcastd"

# Which rooms each room may import ("kernel" is errors, models, metrics, localtime and the package
# itself).
# A module may always import its own room. node/ reads its YAML with config's building blocks
# (fields, yamlsource) but never the commune schema or loader: a speaker has no commune config.
ALLOWED: dict[str, set[str]] = {
    "kernel": set(),
    "config": {"kernel"},
    "protocol": {"kernel"},
    "plan": {"kernel", "config"},
    "render": {"kernel", "config"},
    "transport": {"kernel", "config", "protocol"},
    "journal": {"kernel", "config", "protocol"},  # it keeps the signed envelopes it journals
    "node": {"kernel", "protocol", "transport", "config.fields", "config.yamlsource"},
    "controller": {"kernel", "config", "protocol", "plan", "render", "transport", "journal"},
    "sim": {"kernel", "config", "protocol", "plan", "transport", "journal", "node", "controller"},
    # the web console reads the journal and asks the daemon through the control socket's client;
    # it never signs, renders or publishes anything itself. It shows what TTS will read with the
    # text normaliser (pure text in, text out), as `broadcastd say` does, and joins clips already
    # in the audio store into a hamlet's bulletin, as `broadcastd preview` does (no rendering),
    # and probes an uploaded recording's format and length as the daemon will. It reads the TLS
    # listener's certificates' expiry as `check` does (pki reads files; it issues nothing here).
    "console": {
        "kernel",
        "config",
        "plan",
        "journal",
        "controller.controlsocket",
        "render.normalize",
        "render.bulletin",
        "render.recording",
        "transport.pki",
    },
    "cli": {
        "kernel",
        "config",
        "protocol",
        "plan",
        "render",
        "transport",
        "journal",
        "controller",
        "sim",
        "console",
    },
}
KERNEL_MODULES = {"errors", "models", "metrics", "localtime"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, *, runtime_only: bool) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and runtime_only and _is_type_checking(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return found


def import_graph(root: Path, *, runtime_only: bool = True) -> dict[str, set[str]]:
    """module -> the package's modules it imports (a package counts as its `__init__`)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    top = root.name
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _imports(
            ast.parse(path.read_text(encoding="utf-8")), runtime_only=runtime_only
        ):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name and t.split(".")[0] == top}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    pending = list(graph.get(start, ()))
    while pending:
        node = pending.pop()
        if node not in seen:
            seen.add(node)
            pending.extend(graph.get(node, ()))
    return seen


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One closed path for every group of modules that import each other, e.g. [a, b, a]."""
    reach = {node: _reachable(graph, node) for node in graph}
    groups: list[list[str]] = []
    placed: set[str] = set()
    for node in sorted(graph):
        if node in placed or node not in reach[node]:
            continue
        group = sorted(m for m in reach[node] if node in reach[m])
        placed.update(group)
        groups.append(_closed_path(group, graph))
    return groups


def _closed_path(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One cycle through the group's first module, e.g. [a, b, a], found breadth-first."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    return [*group, start]


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in KERNEL_MODULES:
        return "kernel"
    return parts[1]


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    bad: list[str] = []
    for module, targets in sorted(graph.items()):
        mine = room(module)
        for target in sorted(targets):
            theirs = room(target)
            sub = ".".join(target.split(".")[1:3])
            if theirs in (mine, "kernel") or theirs in ALLOWED[mine] or sub in ALLOWED[mine]:
                continue
            bad.append(f"{module} imports {target} ({mine}/ may not import {theirs}/)")
    return bad


def test_the_package_has_no_import_cycle_not_even_for_type_checking() -> None:
    cycles = find_cycles(import_graph(PACKAGE, runtime_only=False))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_room_imports_a_room_above_it_even_for_type_checking() -> None:
    graph = import_graph(PACKAGE, runtime_only=False)
    assert set(ALLOWED) >= {room(m) for m in graph}, "a new room needs its line in ALLOWED"
    violations = layering_violations(graph)
    assert not violations, "\n".join(violations)


def test_a_module_inside_a_package_does_not_import_its_own_package_face() -> None:
    """`from broadcastd.config import X` inside config/ would run config/__init__ half-done."""
    graph = import_graph(PACKAGE)
    own_face = [
        f"{m} imports {t}"
        for m, targets in graph.items()
        for t in targets
        if m.startswith(f"{t}.") and t != PACKAGE.name
    ]
    assert not own_face, "\n".join(own_face)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "pkg"


def test_a_cycle_through_a_package_face_is_found_and_listed(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/config/__init__.py": "from pkg.config.load import load\nLIMIT = 3\n",
            "pkg/config/load.py": "from pkg.config.check import check\n",
            "pkg/config/check.py": "from pkg.config import LIMIT\n",  # back through the face
            "pkg/plan.py": "import pkg.config\n",
        },
    )
    assert find_cycles(import_graph(pkg)) == [
        ["pkg.config", "pkg.config.load", "pkg.config.check", "pkg.config"]
    ]


def test_a_relative_two_module_cycle_is_found_and_type_checking_imports_are_not(
    tmp_path: Path,
) -> None:
    pkg = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/daemon.py": "from . import runner\n",
            "pkg/runner.py": "from .daemon import Daemon\n",
            "pkg/ops.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.daemon import Daemon\n"
            ),
            "pkg/shell.py": "from pkg import ops\n",
        },
    )
    graph = import_graph(pkg)
    assert find_cycles(graph) == [["pkg.daemon", "pkg.runner", "pkg.daemon"]]
    assert graph["pkg.ops"] == set()
    assert graph["pkg.shell"] == {"pkg.ops"}
    assert import_graph(pkg, runtime_only=False)["pkg.ops"] == {"pkg.daemon"}


@pytest.mark.parametrize(
    ("module", "target", "allowed"),
    [
        ("broadcastd.node.agent", "broadcastd.config.schema", False),
        ("broadcastd.node.settings", "broadcastd.config.fields", True),
        ("broadcastd.sim.demo", "broadcastd.cli.report", False),
        ("broadcastd.journal.store", "broadcastd.controller.registry", False),
        ("broadcastd.controller.daemon", "broadcastd.models", True),
        ("broadcastd.console.sources", "broadcastd.controller.controlsocket", True),
        ("broadcastd.console.sources", "broadcastd.controller.dispatch", False),
        ("broadcastd.console.app", "broadcastd.render.renderer", False),
    ],
)
def test_the_layer_rule_names_what_crosses_upwards(module: str, target: str, allowed: bool) -> None:
    assert (layering_violations({module: {target}}) == []) is allowed
