"""Well-formed requests with arbitrary field values, every client API, against real brokers.

``test_broker_robustness.py`` sends frames that do not decode (garbage, wrong CBOR); here every
request decodes and reaches its handler: each request class of ``protocol.REQUESTS`` is built
by hypothesis from its own field types (negative and huge numbers, empty and odd names, the
existing topic and group names most of the time so that requests get past their first check,
record batches or random bytes), sent to a three-broker cluster over a client connection, and
must be answered (acks=0 produce excepted) without an internal error: no UNKNOWN_SERVER_ERROR
anywhere in the answer, no broker gone, nothing logged at ERROR by any broker, and the same
connection still served after each API. The inter-broker APIs are among them (refused on the
client listener). 20 requests per API (200 with ``HYPOTHESIS_PROFILE=thorough``); a run of
600 per API found nothing when this was written. Destructive requests (deleting topics, altering
configs and ACLs, reassigning partitions) are part of it: the cluster is the test's own.
"""

from __future__ import annotations

import dataclasses
import re
import time
import types
import typing
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import ProtocolError, RequestTimedOutError

from tests.support import FAST_CLUSTER_CONFIGS, examples

pytestmark = [pytest.mark.integration]
E = P.ErrorCode

NAMES = ("t", "g", "tx", "m1")  # the topic, group, transactional id and member the test makes


def _batch(n: int) -> bytes:
    b = BatchBuilder()
    for i in range(n):
        b.append(int(time.time() * 1000), b"k%d" % i, b"v%d" % i)
    return b.build()


INTS = st.one_of(
    st.integers(-1, 3), st.integers(-1, 3),  # partitions, epochs, acks: mostly near the valid
    st.sampled_from([100, 5000, 60000, 2**31 - 1, -(2**31), 2**31, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
)
STRS = st.one_of(
    st.sampled_from(NAMES), st.sampled_from(NAMES),
    st.sampled_from(["", "a" * 300, "x.y", "..", "*", "t/../x", "__consumer_offsets",
                     "__transaction_state", "__share_group_state", "cleanup.policy",
                     "compact", "retention.ms", "range", "earliest", "t.dlq"]),
    st.text(max_size=12),
)
BYTES = st.one_of(st.binary(max_size=64), st.builds(_batch, st.integers(1, 3)))
_strategies: dict[str, st.SearchStrategy] = {}


def strategy(tp) -> st.SearchStrategy:
    """A strategy for a protocol field's type (nested message classes included)."""
    key = repr(tp)
    if key in _strategies:
        return _strategies[key]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        s = strategy(args[0])
    elif tp is bool:
        s = st.booleans()
    elif tp is str:
        s = STRS
    elif tp is bytes:
        s = BYTES
    elif tp is float:
        s = st.floats()
    elif tp is type(None):
        s = st.none()
    elif isinstance(tp, type) and issubclass(tp, int):
        s = INTS
    elif origin in (typing.Union, types.UnionType):
        s = st.one_of(*(strategy(a) for a in args))
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        s = st.lists(st.deferred(lambda a=args[0]: strategy(a)), max_size=3).map(tuple)
    elif origin is tuple:
        s = st.tuples(*(strategy(a) for a in args))
    elif origin is dict:
        s = st.dictionaries(strategy(args[0]), strategy(args[1]), max_size=3)
    elif origin is list:
        s = st.lists(strategy(args[0]), max_size=3)
    elif dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        s = st.builds(tp, **{f.name: st.deferred(lambda h=hints[f.name]: strategy(h))
                             for f in dataclasses.fields(tp) if f.init})
    else:
        raise TypeError(f"no strategy for the protocol type {tp!r}")
    _strategies[key] = s
    return s


def test_every_request_type_builds_a_strategy() -> None:
    """A new field type the builder does not know fails here, not silently in the fuzz."""
    for api, cls in P.REQUESTS.items():
        assert strategy(cls) is not None, api


_LOGGED_ERROR = re.compile(r"\S+ \S+ (ERROR|CRITICAL)\b")


def _internal_error(response) -> bool:
    return "UNKNOWN_SERVER_ERROR" in repr(response)


@pytest.mark.timeout(600)
def test_well_formed_requests_with_arbitrary_values(cluster_factory) -> None:
    cluster = cluster_factory(3, FAST_CLUSTER_CONFIGS)
    endpoint = ClientEndpoint()
    address = cluster.address(1)
    try:
        made = endpoint.request(address, P.CreateTopicsRequest(topics=(P.CreatableTopic(
            name="t", num_partitions=3, replication_factor=3, configs={}),)), 20_000).result(30)
        assert made.topics[0].error_code == E.NONE
        answered: dict[str, Counter] = {}
        bad: list[str] = []
        def fuzz(api: str) -> None:
            @settings(max_examples=examples(20), deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])
            @given(request=strategy(P.REQUESTS[api]))
            def send(request) -> None:
                try:
                    response = endpoint.request(address, request, 5000).result(15)
                except ProtocolError as e:  # an ErrorResponse: the request refused as a whole
                    response = e
                    if "UNKNOWN_SERVER_ERROR" in str(e):
                        bad.append(f"{api}: {request!r} -> {e}")
                    kind = re.sub(r"\d+", "N", str(e))[:60]
                except RequestTimedOutError:  # a long poll held past this client's 5 s
                    kind = "timed out"
                else:
                    if _internal_error(response):
                        bad.append(f"{api}: {request!r} -> {response!r}"[:2000])
                    kind = type(response).__name__
                answered.setdefault(api, Counter())[kind] += 1
                gone = [b for b in cluster.broker_ids if cluster.pid(b) is None]
                assert not gone, f"broker(s) {gone} died after {api}: {request!r}"

            send()

        for api in sorted(P.REQUESTS):
            fuzz(api)
            # the connection that sent them is still served
            assert endpoint.request(address, P.ApiVersionsRequest(), 5000).result(15)
        assert not bad, "internal errors:\n" + "\n".join(bad[:5])
        assert set(answered) == set(P.REQUESTS)
        logged = [line for b in cluster.broker_ids
                  for line in (cluster.broker_dir(b) / "stderr.log").read_text(
                      errors="replace").splitlines()
                  if _LOGGED_ERROR.match(line) or "Traceback" in line]
        assert not logged, "\n".join(logged[:20])
    finally:
        endpoint.close()
