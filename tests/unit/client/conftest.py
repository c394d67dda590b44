from __future__ import annotations

import pytest

from tests.unit.client.fakebroker import FakeBroker


@pytest.fixture
def broker():
    b = FakeBroker().start()
    try:
        yield b
    finally:
        b.close()
