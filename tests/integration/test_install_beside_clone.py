"""The namespace-import trap (issue #21): a script run from the folder that holds the clone
(``~/src/script.py`` beside ``~/src/rillet/``) does ``from rillet import Admin``. With an
editable install Python's path finder takes the clone's folder for a namespace package
before setuptools' editable finder is asked ("cannot import name 'Admin' from 'rillet'
(unknown location)"); an installed (non-editable) package is a regular package on
sys.path, which wins over a namespace portion, so the README's first command installs
without ``-e``.

The default-suite test lays out what a wheel installs (pyproject's package-dir, packages and
package-data, as links into this checkout) instead of running pip (a build takes ~20 s);
the slow one runs the README's first command's install from a fresh clone for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "from rillet import Admin, Producer\nimport rillet.actors.configs\nprint('ok', Admin.__module__)\n"
TRAP = "cannot import name 'Admin' from 'rillet' (unknown location)"


def _beside_a_clone(tmp_path: Path, clone: Path) -> Path:
    """``tmp/src/rillet`` -> the clone, and ``tmp/src/script.py``: the user's layout."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "rillet").symlink_to(clone, target_is_directory=True)
    (src / "script.py").write_text(SCRIPT)
    return src


def _wheel_layout(target: Path) -> None:
    """What ``pip install .`` puts in site-packages, from pyproject.toml, linked."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = tool["package-dir"]
    data = tool.get("package-data", {})
    for package in tool["packages"]:
        top = max((p for p in dirs if package == p or package.startswith(p + ".")), key=len)
        source = ROOT / dirs[top] / package[len(top):].lstrip(".").replace(".", "/")
        dest = target / package.replace(".", "/")
        dest.mkdir(parents=True, exist_ok=True)
        for f in source.glob("*.py"):
            (dest / f.name).symlink_to(f)
        for pattern in data.get(package, ()):
            for f in source.glob(pattern):
                (dest / f.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
                (dest / f.relative_to(source)).symlink_to(f)


def _run(python: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "script.py"], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})


def test_a_script_beside_the_clone_imports_the_installed_package(tmp_path) -> None:
    src = _beside_a_clone(tmp_path, ROOT)
    editable = any(getattr(f, "__module__", "").startswith("__editable__")
                   for f in sys.meta_path)
    if editable:  # the trap, reproduced with this checkout's editable install (CI's)
        trapped = _run(sys.executable, src, PYTHONPATH="")
        assert trapped.returncode != 0 and TRAP in trapped.stderr, trapped.stderr
    # installed as the README's first command installs it: the package wins
    site = tmp_path / "site"
    _wheel_layout(site)
    ok = _run(sys.executable, src, PYTHONPATH=str(site))
    assert ok.returncode == 0 and ok.stdout.startswith("ok rillet"), ok.stderr
    # ... and that command is a regular install
    first = re.search(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text()).group(1)
    assert re.search(r"pip install -q \. ", first) and " -e " not in first, first


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_readme_first_install_from_a_fresh_clone_then_a_script_beside_it(tmp_path) -> None:
    """The README's install for real: a fresh clone, a venv, ``pip install -q .`` (the
    dependencies come from this venv, so only the build runs), a script beside the clone."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=60)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True, check=True
                             ).stdout.strip()
    deps = next(p for p in sys.path if p.endswith("site-packages"))
    Path(purelib, "_deps.pth").write_text(deps + "\n")  # its .pth files are not run
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "."], cwd=clone,
                   check=True, timeout=240)
    src = _beside_a_clone(tmp_path, clone)
    ok = _run(python, src, PYTHONPATH="")
    assert ok.returncode == 0 and ok.stdout.startswith("ok rillet"), ok.stderr
    cli = subprocess.run([str(venv / "bin" / "rillet"), "--help"], capture_output=True,
                         text=True, timeout=60)
    assert cli.returncode == 0 and "cluster" in cli.stdout, cli.stderr
    # the README's first command runs from the clone's root, whose rillet/ folder is not the
    # installed package: the brokers it starts must not import it (they once did: "No module
    # named 'rillet.actors'")
    rillet = str(venv / "bin" / "rillet")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": ""}
    data = str(tmp_path / "data")
    try:
        up = subprocess.run([rillet, "cluster", "up", "-n", "1", "--data-dir", data,
                             "--detach"], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=120)
        assert up.returncode == 0 and "running" in up.stdout, up.stdout + up.stderr
        made = subprocess.run([rillet, "topic", "create", "beside", "-p", "1"], cwd=clone,
                              env=env, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stdout + made.stderr
    finally:
        subprocess.run([rillet, "cluster", "down", "--data-dir", data], cwd=clone, env=env,
                       capture_output=True, timeout=120)
