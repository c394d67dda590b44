"""Fixtures of the streams DSL tests: ``store_factory`` (the real ``stores.build``) and
``driver(topology, ...)``, a TopologyTestDriver closed after the test."""

from __future__ import annotations

import pytest

from rillet.streams.stores import build


@pytest.fixture
def store_factory():
    return build


@pytest.fixture
def driver(store_factory):
    """``driver(topology, **kw)``: a TopologyTestDriver, closed after the test."""
    from rillet.streams.driver import TopologyTestDriver

    made = []

    def make(topology, application_id="test", **kw):
        d = TopologyTestDriver(topology, application_id, store_factory=store_factory, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()
