"""The benchmarks under bench/ still import: every name a script takes from rillet, from the
test helpers or from a sibling script exists (nothing runs: a script is parsed with ``ast``).

bench/group_rebalance_bench.py imported a ``wait_until`` that had moved out of
tests/integration/group_members.py (eb8a78f, 2026-12-06) and failed at start until it was next
run two days later; the suite runs no benchmark, so this is what notices.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))
SIBLINGS = {p.stem for p in SCRIPTS}

pytestmark = pytest.mark.timeout(60)


def _optional(tree: ast.AST) -> set[ast.AST]:
    """Imports tried under ``except ImportError`` (e2e_hops.py's trace marks, which exist only
    with its patch applied)."""
    out: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            out.update(n for stmt in node.body for n in ast.walk(stmt))
    return out


def _imports(path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(module, names, line) of every import of rillet, tests or a sibling script, at any
    depth of the file (imports inside functions too), but those tried (``_optional``)."""
    out = []
    tree = ast.parse(path.read_text(), str(path))
    optional = _optional(tree)
    for node in ast.walk(tree):
        if node in optional:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top in ("rillet", "tests") or top in SIBLINGS:
                out.append((node.module, tuple(a.name for a in node.names), node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in ("rillet", "tests") or top in SIBLINGS:
                    out.append((alias.name, (), node.lineno))
    return out


def test_the_checker_sees_the_imports_it_checks() -> None:
    """Not vacuous: the benchmarks are found, a script's imports at any depth are read, and
    only an import tried under ``except ImportError`` is left out."""
    assert len(SCRIPTS) > 20
    rebalance = {m for m, _, _ in _imports(BENCH / "group_rebalance_bench.py")}
    assert {"tests.integration.group_members", "tests.support", "rillet.launcher"} <= rebalance
    hops = {m for m, _, _ in _imports(BENCH / "e2e_hops.py")}
    assert "e2e_latency" in hops and "rillet.actors" in hops  # a sibling; one in a function
    assert "rillet._trace" not in hops  # tried: exists only with bench/e2e_hops.patch


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_name_a_benchmark_imports_exists(script: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their siblings by name
    monkeypatch.syspath_prepend(str(ROOT))
    missing = []
    for module, names, line in _imports(script):
        if module.split(".")[0] in SIBLINGS:
            if not (BENCH / f"{module.split('.')[0]}.py").exists():
                missing.append(f"line {line}: {module}")
            continue  # a sibling script is parsed, not imported (some run at import)
        try:
            loaded = importlib.import_module(module)
        except ImportError as e:
            missing.append(f"line {line}: {module} ({e})")
            continue
        for name in names:
            if name != "*" and not hasattr(loaded, name):
                try:  # a submodule named in ``from package import module``
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    missing.append(f"line {line}: {module}.{name}")
    assert not missing, f"{script.name} imports what does not exist: {missing}"
