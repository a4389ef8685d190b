"""The layout's rules, checked so that they hold after the next change too.

docs/architecture.md describes the tree; these tests keep it true: no import cycle between
modules, the core never imports the request or web layers, modules stay small, every subpackage
names its public API, and hook files are named after the service they define.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("cds_service", "fhir_mappers", "cds_devtools")
MAX_MODULE_LINES = 400
# Packages that hold the domain rules and state: they may be used by the request path, the CLI
# and the web pages, but never import them (data flows one way).
CORE = ("db", "stats", "security", "audit", "training", "monitoring", "lifecycle", "observability")
APP_LAYER = ("main", "lifespan", "background", "state", "deps", "cds_hooks", "web", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
    }


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Modules imported when this module is imported (lazy imports inside functions excluded)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {name: _top_level_imports(path, known) for name, path in modules.items()}
    # Importing a.b.c first imports the packages a and a.b.
    for name in list(graph):
        for target in list(graph[name]):
            parts = target.split(".")
            graph[name].update(
                ".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in known
            )
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or node.startswith(nxt + "."):
                continue  # a package's own __init__ importing its submodules is not a cycle
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None and (found := visit(start)) is not None:
            return found
    return None


def test_no_import_cycle_between_modules() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("core", CORE)
def test_core_packages_do_not_import_the_request_or_web_layer(core: str) -> None:
    graph = _graph()
    upward = {
        f"{source} imports {target}"
        for source, targets in graph.items()
        if source.startswith(f"cds_service.{core}")
        for target in targets
        if target.split(".")[0] == "cds_service"
        and len(target.split(".")) > 1
        and target.split(".")[1] in APP_LAYER
    }
    assert not upward, sorted(upward)


def test_no_module_is_over_the_size_limit() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_every_subpackage_names_its_public_api() -> None:
    missing = []
    for package in PACKAGES:
        for init in sorted((REPO_ROOT / package).rglob("__init__.py")):
            tree = ast.parse(init.read_text(encoding="utf-8"))
            has_doc = ast.get_docstring(tree) is not None
            has_all = any(
                isinstance(target, ast.Name) and target.id == "__all__"
                for node in tree.body
                if isinstance(node, ast.Assign | ast.AnnAssign)
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            )
            if not (has_doc and has_all):
                missing.append(str(init.relative_to(REPO_ROOT)))
    assert not missing, f"__init__.py without a docstring or __all__: {missing}"


def test_hook_files_are_named_after_their_service_id() -> None:
    for path in sorted((REPO_ROOT / "hooks").glob("*.toml")):
        service_id = tomllib.loads(path.read_text(encoding="utf-8"))["service"]["id"]
        assert path.stem == service_id, f"{path.name} defines {service_id}"
