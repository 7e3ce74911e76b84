"""The package layout holds: stages as packages, no import cycle between modules (even through imports
made inside functions), no module over ~400 lines, and every module importable on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "rag"
MAX_LINES = 400
STAGES = ("documents", "model", "store", "query", "llm")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports, at the top or inside a function; ``from . import x`` and
    ``from .pkg import x`` resolve to the submodule ``x`` when it is one."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    out.add(sub)
                elif target in known:
                    out.add(target)
    out.discard(name)
    # importing a submodule runs its parents' __init__ first; that is not an edge of this module's own
    return {m for m in out if not name.startswith(m + ".")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_stages_are_packages():
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    # the stages live in their packages; the top holds the API and what every stage shares
    assert not set(top) & {"ann", "embed", "fast_embed", "ingest", "chunk", "clean", "retrieve", "decide", "answer"}


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as a list of modules (first == last), or []."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                return path[path.index(nxt):] + [nxt]
            if nxt not in done:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        done.add(node)
        return []

    for name in sorted(graph):
        if name not in done:
            found = visit(name, [name])
            if found:
                return found
    return []


def test_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle():
    graph = _graph()
    # the package itself re-exports the public API (rag/__init__ -> rag.api): not a dependency of the stages
    graph = {name: deps - {"rag"} for name, deps in graph.items() if name != "rag"}
    cycle = _find_cycle(graph)
    assert not cycle, " -> ".join(cycle)


def test_stages_do_not_reach_up():
    """A stage never imports the API, the CLI or the UI, and the store, model, documents and language model
    client stages never import the query stage."""
    for name, deps in _graph().items():
        if any(name.startswith(f"rag.{stage}") for stage in STAGES):
            assert not {d for d in deps if d in ("rag.api", "rag.cli", "rag.indexer")}, name
        if name.startswith(("rag.store", "rag.model", "rag.documents", "rag.llm")):
            assert not [d for d in deps if d.startswith("rag.query")], name


def test_no_module_is_too_long():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


IMPORT_EACH = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "rag" or m.startswith("rag.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
"""


def test_every_module_imports_on_its_own():
    """Each module imported first, with no other module of the project loaded (a cycle between modules
    fails here with an ImportError); one interpreter, the project's modules forgotten between imports."""
    modules = sorted(_modules())
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, *modules], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", result.stdout
