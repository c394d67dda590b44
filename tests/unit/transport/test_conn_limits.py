"""transport/conn_limits.py: the bookkeeping of max.connections and max.connections.per.ip."""

from rillet.transport.conn_limits import ConnectionLimits


def test_limits_count_by_descriptor_and_address() -> None:
    limits = ConnectionLimits(max_connections=3, max_per_ip=2)
    refusals: list[str] = []
    limits.on_refuse = refusals.append
    assert limits.accepted(5, "10.0.0.1") and limits.accepted(6, "10.0.0.1")
    assert not limits.accepted(7, "10.0.0.1")  # per ip
    assert limits.accepted(8, "10.0.0.2")
    assert not limits.accepted(9, "10.0.0.3")  # in total
    assert (limits.refused_per_ip, limits.refused_total) == (1, 1)
    assert refusals == ["connections_refused_per_ip", "connections_refused_max_connections"]
    assert limits.open_count() == 3 and limits.open_count("10.0.0.1") == 2
    limits.closed(7)  # refused ones were never counted: nothing changes
    assert limits.open_count() == 3
    limits.closed(5)
    assert limits.accepted(9, "10.0.0.1")
    # a descriptor reused before its close was reported: the old connection is gone
    assert limits.accepted(9, "10.0.0.3")
    assert limits.open_count("10.0.0.1") == 1 and limits.open_count("10.0.0.3") == 1


def test_unlimited_by_default() -> None:
    limits = ConnectionLimits()
    assert not limits.limited
    assert all(limits.accepted(fd, "10.0.0.1") for fd in range(1000))
