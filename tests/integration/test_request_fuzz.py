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

import pytest
from fuzz_support import Strategies
from hypothesis import HealthCheck, Phase, given, settings
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import ProtocolError, RequestTimedOutError

from tests.support import FAST_CLUSTER_CONFIGS, examples, logged_errors

pytestmark = [pytest.mark.integration]
E = P.ErrorCode

STRATEGIES = Strategies()


def test_every_request_type_builds_a_strategy() -> None:
    """A new field type the builder does not know fails here, not silently in the fuzz."""
    for api, cls in P.REQUESTS.items():
        assert STRATEGIES.strategy(cls) is not None, api


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
        fuzzed: set[str] = set()
        bad: list[str] = []

        def fuzz(api: str) -> None:
            @settings(max_examples=examples(20), deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])
            @given(request=STRATEGIES.strategy(P.REQUESTS[api]))
            def send(request) -> None:
                try:
                    response = endpoint.request(address, request, 5000).result(15)
                except ProtocolError as e:  # an ErrorResponse: the request refused as a whole
                    response = e
                except RequestTimedOutError:  # a long poll held past this client's 5 s
                    response = None
                if _internal_error(response):
                    bad.append(f"{api}: {request!r} -> {response!r}"[:2000])
                fuzzed.add(api)
                gone = [b for b in cluster.broker_ids if cluster.pid(b) is None]
                assert not gone, f"broker(s) {gone} died after {api}: {request!r}"

            send()

        for api in sorted(P.REQUESTS):
            fuzz(api)
            # the connection that sent them is still served
            assert endpoint.request(address, P.ApiVersionsRequest(), 5000).result(15)
        assert not bad, "internal errors:\n" + "\n".join(bad[:5])
        assert fuzzed == set(P.REQUESTS)
        logged = logged_errors(cluster)
        assert not logged, "\n".join(logged[:20])
    finally:
        endpoint.close()
