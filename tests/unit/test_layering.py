"""The layering of DESIGN.md, checked on the source tree.

The checker is this module: it parses every source file with ``ast`` (nothing is imported,
so a layering mistake cannot hide behind an import error) and resolves relative imports
against the ``rillet`` namespace the file is installed under.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# folder -> the import name it is installed under (pyproject's package-dir)
PACKAGES = {
    "rillet": "rillet",
    "actors": "rillet.actors",
    "transport": "rillet.transport",
    "logstore": "rillet.logstore",
    "coordinator": "rillet.coordinator",
    "connectors": "rillet.connectors",
}

# folder -> import prefixes it must never import
FORBIDDEN = {
    "logstore": [
        "pykka", "zmq", "loguru", "time", "threading", "random",
        "rillet.coordinator", "rillet.transport", "rillet.actors", "rillet.connectors",
        "rillet.cli",
    ],
    # the cores take time, randomness and I/O as arguments: no clock, threads, OS or RNG
    "coordinator": [
        "pykka", "zmq", "loguru", "cbor2", "blake3", "time", "threading", "os", "random",
        "rillet.logstore", "rillet.transport", "rillet.actors", "rillet.connectors",
        "rillet.cli",
    ],
    "transport": [
        "pykka", "loguru",
        "rillet.coordinator", "rillet.actors", "rillet.connectors", "rillet.cli",
    ],
    "actors": ["rillet.connectors", "rillet.cli"],
    "connectors": ["rillet.actors"],
}

ZMQ_MODULES = ("rillet.transport.endpoint", "rillet.transport.security")


def _module_name(path: Path) -> tuple[str, str]:
    folder = path.relative_to(ROOT).parts[0]
    rel = path.relative_to(ROOT / folder).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return folder, ".".join([PACKAGES[folder], *parts])


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - (1 if is_pkg else 0)
                base = base[: len(base) - drop] if drop else base
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _sources() -> list[Path]:
    return sorted(p for folder in PACKAGES for p in (ROOT / folder).rglob("*.py"))


def _hits(imported: set[str], prefix: str) -> list[str]:
    return sorted(i for i in imported if i == prefix or i.startswith(prefix + "."))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_layering(path: Path) -> None:
    folder, module = _module_name(path)
    imported = _imports(path, module)
    bad = [hit for prefix in FORBIDDEN.get(folder, []) for hit in _hits(imported, prefix)]
    assert not bad, f"{module} imports {bad}, which DESIGN.md's layering forbids"
    if module not in ZMQ_MODULES:
        assert not _hits(imported, "zmq"), f"{module} imports zmq; only {ZMQ_MODULES} may"


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself must be able to fail: a relative import is resolved correctly."""
    bad = ROOT / "logstore" / "__init__.py"
    module = "rillet.logstore.segment"
    src = tmp_path / "segment.py"
    src.write_text("from ..transport import codec\nimport zmq\n")
    imported = _imports(src, module)
    assert _hits(imported, "rillet.transport") == ["rillet.transport", "rillet.transport.codec"]
    assert _hits(imported, "zmq") == ["zmq"]
    assert bad.exists()


def test_a_core_reading_the_clock_is_a_violation(tmp_path: Path) -> None:
    """A deliberate violation in coordinator/: the clock, a thread, the OS and an RNG."""
    src = tmp_path / "decide.py"
    src.write_text("import time\nfrom threading import Lock\nimport os.path\nimport random\n")
    imported = _imports(src, "rillet.coordinator.control.decide")
    bad = [hit for prefix in FORBIDDEN["coordinator"] for hit in _hits(imported, prefix)]
    assert bad == ["time", "threading", "threading.Lock", "os.path", "random"]


def test_every_package_folder_is_installed() -> None:
    """Every folder with an __init__.py is listed in pyproject's packages."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    missing = []
    for folder in PACKAGES:
        for init in (ROOT / folder).rglob("__init__.py"):
            _, module = _module_name(init)
            if module not in listed:
                missing.append(module)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"
