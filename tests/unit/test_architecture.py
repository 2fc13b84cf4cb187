"""The shape of the package (issue #19, docs/architecture.rst), checked on its source.

Size limits (a class past 300 lines or a function past 60 usually holds two jobs), no mixin that needs its
host's attributes, no reach into another room's private names, and the layering: no import loop between
rooms, and ``client/`` imports nothing else of the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_jules"
NAME = PACKAGE.name
MAX_MODULE, MAX_CLASS, MAX_FUNCTION, MAX_MIXIN = 600, 300, 60, 100
# The provider-info dict literal is data, not logic.
EXEMPT_FUNCTIONS = {"get_provider_info.py:get_provider_info"}
SHARED_PRIVATE = {f"{NAME}._compat"}  # the package's own shared compatibility module


@dataclass(frozen=True)
class Module:
    path: Path
    name: str  # dotted
    tree: ast.Module

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(PACKAGE))

    @property
    def room(self) -> str:
        """The top-level part of the package a module belongs to: a subpackage, or a top-level module."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else parts[0]


def modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(Module(path, ".".join(parts), ast.parse(path.read_text(), str(path))))
    return found


def _span(node: ast.AST) -> int:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])  # type: ignore[attr-defined]
    return node.end_lineno - start + 1  # type: ignore[attr-defined]


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _imports(module: Module) -> Iterator[tuple[str, list[str]]]:
    """(imported module, imported names) for every import of the package's own modules."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == NAME:
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name.split(".")
                if module.path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == NAME:
                yield target, [alias.name for alias in node.names]


def _room_of(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


ALL = modules()


def _none(found: dict[str, int] | list[str], what: str) -> None:
    """Fail with every finding listed (pytest would truncate the diff of a long list)."""
    if found:
        lines = [f"{k}: {v}" for k, v in found.items()] if isinstance(found, dict) else list(found)
        pytest.fail(f"{what}:\n  " + "\n  ".join(sorted(lines)), pytrace=False)


def test_no_module_is_too_long() -> None:
    long = {m.rel: n for m in ALL if (n := len(m.path.read_text().splitlines())) > MAX_MODULE}
    _none(long, f"modules over {MAX_MODULE} lines")


def test_no_class_is_too_long() -> None:
    long = {
        f"{m.rel}:{node.name}": _span(node)
        for m in ALL
        for node in ast.walk(m.tree)
        if isinstance(node, ast.ClassDef) and _span(node) > MAX_CLASS
    }
    _none(long, f"classes over {MAX_CLASS} lines")


def test_no_function_is_too_long() -> None:
    long = {
        f"{m.rel}:{f.name}": _span(f)
        for m in ALL
        for f in _functions(m.tree)
        if _span(f) > MAX_FUNCTION and f"{m.rel}:{f.name}" not in EXEMPT_FUNCTIONS
    }
    _none(long, f"functions over {MAX_FUNCTION} lines")


def test_no_mixin_is_too_long() -> None:
    long = {
        f"{m.rel}:{node.name}": _span(node)
        for m in ALL
        for node in ast.walk(m.tree)
        if isinstance(node, ast.ClassDef) and node.name.endswith("Mixin") and _span(node) > MAX_MIXIN
    }
    _none(long, f"mixins over {MAX_MIXIN} lines")


def test_no_getattr_of_host_attributes_with_a_default() -> None:
    reads = [
        f"{m.rel}:{node.lineno}"
        for m in ALL
        for node in ast.walk(m.tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) == 3
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "self"
        and isinstance(node.args[1], ast.Constant)
    ]
    _none(reads, 'getattr(self, "<name>", default) reads a host attribute no type checker sees')


def test_no_room_imports_another_rooms_private_names() -> None:
    reaches = []
    for m in ALL:
        for target, names in _imports(m):
            if target in SHARED_PRIVATE or _room_of(target) == m.room:
                continue
            private_module = any(part.startswith("_") for part in target.split(".")[1:])
            private_names = [n for n in names if n.startswith("_") and not n.endswith("__")]
            if private_module or private_names:
                reaches.append(f"{m.rel} -> {target} {private_names or ''}".strip())
    _none(reaches, "imports of another room's private module or names")


def test_the_client_imports_nothing_else_of_the_package() -> None:
    outside = sorted(
        f"{m.rel} -> {target}"
        for m in ALL
        if m.room == "client"
        for target, _ in _imports(m)
        if _room_of(target) != "client" and target != NAME  # the version string
    )
    _none(outside, "client/ stands alone (ARCHITECTURE: usable and testable without the rest)")


def _room_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for m in ALL:
        for target, _ in _imports(m):
            if target == NAME:  # the version string
                continue
            other = _room_of(target)
            if other != m.room:
                graph.setdefault(m.room, set()).add(other)
    return graph


def test_no_import_loop_between_rooms() -> None:
    graph = _room_graph()
    loops = []

    def visit(room: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(room, ())):
            if nxt in path:
                loop = [*path[path.index(nxt) :], nxt]
                if loop[0] == min(loop[:-1]):
                    loops.append(" -> ".join(loop))
            else:
                visit(nxt, [*path, nxt])

    for room in sorted(graph):
        visit(room, [room])
    _none(sorted(set(loops)), "import loops between rooms")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("class A:\n" + "    x = 1\n" * 400, "classes"),
        ("def f():\n" + "    x = 1\n" * 70, "functions"),
    ],
)
def test_the_checks_catch_what_they_look_for(source: str, expected: str) -> None:
    tree = ast.parse(source)
    node = tree.body[0]
    assert _span(node) > (MAX_CLASS if expected == "classes" else MAX_FUNCTION)
