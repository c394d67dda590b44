"""free_port's machine-wide claims (rillet/launcher.py): a port chosen for one cluster is not
chosen again for another within the hour, even by another process, so two clusters
starting at once cannot both plan to bind it."""

from __future__ import annotations

import os
import time

import pytest

from rillet import launcher

pytestmark = pytest.mark.timeout(30)


def test_a_claimed_port_is_not_handed_out_again(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(launcher, "_RESERVED", tmp_path / "ports")
    assert launcher._reserve(20001)
    assert not launcher._reserve(20001)  # claimed within the hour
    assert launcher._reserve(20002)
    old = time.time() - launcher._RESERVATION_S - 10
    os.utime(tmp_path / "ports" / "20001", (old, old))
    assert launcher._reserve(20001)  # an old claim is taken over
    assert not launcher._reserve(20001)
    ports = {launcher.free_port() for _ in range(200)}
    assert len(ports) == 200  # never the same port twice
    assert all(str(p) in os.listdir(tmp_path / "ports") for p in ports)
