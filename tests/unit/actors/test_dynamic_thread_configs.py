"""The thread-pool keys among the dynamic broker configs (actors/dynamic_configs.py): a new
value in the metadata image resizes the lane (the thread test of the runtime itself is
tests/unit/actors/test_runtime_resize.py; the real broker: test_dynamic_threads.py)."""

from __future__ import annotations

import pytest
from rillet.actors import dynamic_configs as dc
from rillet.actors import runtime
from rillet.actors.configs import ConfigError, validate_broker_configs
from rillet.coordinator import broker_configs as bc
from rillet.coordinator import metadata as md


class _Log:
    def info(self, *_a) -> None:
        pass

    def warning(self, *_a) -> None:
        pass


@pytest.mark.parametrize("key", sorted(dc.THREAD_LANES))
def test_a_thread_key_resizes_its_lane_and_back(key, monkeypatch):
    resized: list[tuple[str, int]] = []
    monkeypatch.setattr(runtime, "configure", lambda lane, n: resized.append((lane, n)) or [])
    configs = validate_broker_configs({key: "8"})
    live = dc.LiveBrokerConfigs(1, configs)
    image = md.replay([bc.SetBrokerConfig(broker="1", name=key, value="2")])
    assert live.on_image(image, _Log()) == {key}
    back = md.replay([bc.SetBrokerConfig(broker="1", name=key, value=None)], image)
    assert live.on_image(back, _Log()) == {key}
    assert resized == [(dc.THREAD_LANES[key], 2), (dc.THREAD_LANES[key], 8)]
    assert not live.entries(image)[[e[0] for e in live.entries(image)].index(key)][3]  # dynamic


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_thread_count_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError):
        dc.validate("1", {"num.io.threads": value})
