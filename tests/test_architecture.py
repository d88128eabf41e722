"""The rules of docs/architecture.md, checked on the code as it is: a change that breaks one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "webapp", "pages")
TASKS = ("core.song", "core.face")
KERNEL_PREFIXES = ("core.song", "core.face", "core.variants", "core.library", "core.predict", "core.evaluate",
                   "core.train")
# What trains, evaluates or measures: never imported by what serves a page.
TRAINING = ("core.train", "core.training", "core.song.train", "core.song.ablation", "core.song.crossval",
            "core.face.train", "core.evaluate", "bench")
MAX_LINES = 700


def _modules() -> dict[str, Path]:
    files = [f for package in PACKAGES for f in (ROOT / package).rglob("*.py")] + [ROOT / "streamlit_app.py"]
    return {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f for f in files}


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name:
        if name in MODULES or name.split(".")[0] in ("bench",):
            return name if name in MODULES else name.split(".")[0]
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, top_level_only: bool = False) -> set[str]:
    """The project modules `module` imports (lazily inside functions too, unless top_level_only)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if path.name == "__init__.py" else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            found.add(_resolve(base))
            found |= {_resolve(f"{base}.{a.name}") for a in node.names if f"{base}.{a.name}" in MODULES}
    return {m for m in found if m and m != module}


GRAPH = {m: _imports(m) for m in MODULES}


def _reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_circles():
    circles = sorted(m for m in GRAPH if m in _reachable(m, GRAPH))
    assert circles == []


def test_song_and_face_never_import_each_other():
    crossing = [(a, b) for a, deps in GRAPH.items() for b in deps
                for mine, theirs in (TASKS, TASKS[::-1]) if a.startswith(mine) and b.startswith(theirs)]
    assert crossing == []


def test_the_kernel_imports_no_task():
    kernel = [m for m in GRAPH if m.startswith("core.") and not m.startswith(KERNEL_PREFIXES)]
    assert kernel, "the kernel modules are found"
    assert [(m, d) for m in kernel for d in GRAPH[m] if d.startswith(KERNEL_PREFIXES)] == []


def test_the_library_imports_no_streamlit():
    offenders = []
    for module, path in MODULES.items():
        if module.startswith("core"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            offenders += [(module, n) for n in names if n.split(".")[0] == "streamlit"]
    assert offenders == []


def test_what_serves_a_page_never_imports_training_code():
    serving = [m for m in MODULES if m.startswith(("pages", "webapp")) or m == "streamlit_app"]
    reached = {m: _reachable(m, GRAPH) for m in serving}
    assert [(m, t) for m, deps in reached.items() for t in deps if t.startswith(TRAINING)] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_700_lines(module):
    assert MODULES[module].read_text(encoding="utf-8").count("\n") <= MAX_LINES


def test_a_rule_breaker_would_be_caught():
    # The checks above see a circle, a crossing and a training import when there is one.
    graph = {"core.song.a": {"core.face.b"}, "core.face.b": {"core.song.a"}}
    assert "core.song.a" in _reachable("core.song.a", graph)
    assert _resolve("core.face.train.train_face") == "core.face.train"
