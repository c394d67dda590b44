"""listeners / advertised.listeners parsing (actors/listeners.py)."""

import pytest
from rillet.actors.configs import ConfigError, validate_broker_configs
from rillet.actors.listeners import Listener, advertised_addresses, parse_listeners


def test_a_list_of_named_listeners_parses():
    got = parse_listeners("CLIENT://127.0.0.1:9092, broker://:0,KAFKA://[::1]:9094")
    assert got == {
        "CLIENT": Listener("CLIENT", "127.0.0.1", 9092),
        "BROKER": Listener("BROKER", "", 0),
        "KAFKA": Listener("KAFKA", "[::1]", 9094),
    }
    assert got["BROKER"].wildcard and not got["CLIENT"].wildcard
    assert parse_listeners("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CLIENT:127.0.0.1:9092", "NAME://HOST:PORT"),
        ("KAFAK://h:1", "did you mean 'KAFKA'"),
        ("CLIENT://h:1,CLIENT://h:2", "given twice"),
        ("CLIENT://h", "needs a port"),
        ("CLIENT://h:70000", "needs a port"),
        ("CLIENT://[::1:9", "unbalanced"),
    ],
)
def test_a_bad_listener_is_refused_with_its_entry_named(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_listeners(text)


def test_advertised_addresses_default_to_the_bound_ones_and_refuse_wildcards():
    bound = parse_listeners("CLIENT://10.0.0.5:9092,KAFKA://0.0.0.0:9094")
    assert advertised_addresses(bound, "KAFKA://db1:9094") == {
        "CLIENT": "10.0.0.5:9092",
        "KAFKA": "db1:9094",
    }
    with pytest.raises(ConfigError, match="wildcard host"):
        advertised_addresses(bound, "")
    with pytest.raises(ConfigError, match="wildcard host"):
        advertised_addresses(bound, "KAFKA://0.0.0.0:9094")
    with pytest.raises(ConfigError, match="not a bound listener"):
        advertised_addresses(bound, "KAFKA://db1:9094,BROKER://db1:9093")


def test_the_broker_config_refuses_a_malformed_listeners_value():
    with pytest.raises(ConfigError, match="did you mean"):
        validate_broker_configs({"listeners": "CLEINT://127.0.0.1:0"})
    assert validate_broker_configs({"listeners": "KAFKA://127.0.0.1:0"})["listeners"]
