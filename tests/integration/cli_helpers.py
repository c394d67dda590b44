"""Running the real ``rillet`` command as a user runs it (a subprocess), with a fresh
profile dir and data-dir default per test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def run(args, env, input_: bytes | None = None, check: bool = True, timeout: float = 90):
    proc = subprocess.run([*RILLET, *args], input=input_, capture_output=True, env=env,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"rillet {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout.decode()}\n{proc.stderr.decode()}")
    return proc


def cli_env(tmp_path: Path) -> dict[str, str]:
    """os.environ without RILLET_BROKERS, the profile and RILLET_HOME under ``tmp_path``."""
    e = {k: v for k, v in os.environ.items() if k != "RILLET_BROKERS"}
    e["RILLET_CONFIG_DIR"] = str(tmp_path / "config")
    e["RILLET_HOME"] = str(tmp_path / "home")
    return e
