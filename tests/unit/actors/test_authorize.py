"""Authorization in the client session (actors/authorize.py, authorize_rules.py), in one
process: which part of a request is dispatched, what the refused part is answered, the
typed refusals, and a real ClientSession fed a request with a principal on its lease
(Metadata hides topics; ACL requests; the inter-broker listener is not checked)."""

from __future__ import annotations

import pytest
from rillet.actors import authorize
from rillet.actors.authorize import Authorizer, Who
from rillet.actors.authorize_rules import RULES
from rillet.actors.session import BrokerContext, ClientSession, Inbound, Listener
from rillet.coordinator import acl_store
from rillet.coordinator import metadata as md
from rillet.coordinator.acl import AclBinding
from rillet.transport import codec
from rillet.transport import protocol as P

E = P.ErrorCode
ON = Authorizer(True, frozenset({"User:admin"}), False)


def _b(name, op, pattern="LITERAL", principal="User:alice", rt="TOPIC", perm="ALLOW"):
    return AclBinding(resource_type=rt, resource_name=name, pattern_type=pattern,
                      principal=principal, host="*", operation=op, permission=perm)


ACLS = frozenset({
    _b("orders", "WRITE", "PREFIXED"),
    _b("orders", "READ", "PREFIXED", "User:bob"),
    _b("billing", "READ", rt="GROUP", principal="User:bob"),
    _b("orders-secret", "ALL", principal="User:*", perm="DENY"),
})


def _who(principal="User:alice", acls=ACLS, auth=ON) -> Who:
    return Who(principal, "10.0.0.1", acls, auth)


def _gate(w, req):
    answers = []
    dispatched, respond = authorize.gate(w, req, answers.append)
    return dispatched, respond, answers


def _produce(*names, tid=None, acks=-1):
    return P.ProduceRequest(acks=acks, timeout_ms=1000, transactional_id=tid, topics=tuple(
        P.ProduceTopic(name=n, partitions=(P.ProducePartition(partition=0, records=b"x"),))
        for n in names))


def test_a_produce_writes_only_the_topics_the_principal_may_write():
    dispatched, respond, answers = _gate(_who(), _produce("orders-eu", "payments",
                                                          "orders-secret"))
    assert [t.name for t in dispatched.topics] == ["orders-eu"]  # nothing else is appended
    assert not answers
    respond(P.ProduceResponse(topics=(P.ProduceTopicResponse(name="orders-eu", partitions=(
        P.ProducePartitionResponse(partition=0),)),)))
    codes = {t.name: t.partitions[0].error_code for t in answers[0].topics}
    assert codes == {"orders-eu": 0, "payments": E.TOPIC_AUTHORIZATION_FAILED,
                     "orders-secret": E.TOPIC_AUTHORIZATION_FAILED}  # DENY wins over ALLOW
    assert "User:alice is not authorized to WRITE TOPIC 'payments'" in (
        answers[0].topics[1].partitions[0].error_message)
    # bob may read but not write
    dispatched, _, _ = _gate(_who("User:bob"), _produce("orders-eu"))
    assert dispatched.topics == ()


def test_a_client_fetch_reads_only_what_it_may_and_opens_no_fetch_session():
    fetch = P.FetchRequest(topics=tuple(P.FetchTopic(name=n, partitions=(
        P.FetchPartition(partition=0, fetch_offset=0),)) for n in ("orders-eu", "payments")))
    dispatched, respond, answers = _gate(_who("User:bob"), fetch)
    assert [t.name for t in dispatched.topics] == ["orders-eu"]
    respond(P.FetchResponse())
    assert answers[0].topics[0].partitions[0].error_code == E.TOPIC_AUTHORIZATION_FAILED
    session = P.FetchRequest(topics=fetch.topics, session_epoch=P.INITIAL_EPOCH)
    _, _, answers = _gate(_who("User:bob"), session)
    assert answers[0].error_code == E.CLUSTER_AUTHORIZATION_FAILED


def test_a_transactional_produce_needs_write_on_its_transactional_id():
    dispatched, respond, _ = _gate(_who(), _produce("orders-eu", tid="tx-1"))
    assert dispatched.topics == ()
    answers = []
    authorize.gate(_who(), _produce("orders-eu", tid="tx-1"), answers.append)[1](
        P.ProduceResponse())
    assert answers[0].topics[0].partitions[0].error_code == (
        E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    acls = ACLS | {_b("tx-1", "WRITE", rt="TRANSACTIONAL_ID")}
    assert _gate(_who(acls=acls), _produce("orders-eu", tid="tx-1"))[0] is not None


def test_metadata_hides_what_the_principal_may_not_describe():
    every = P.MetadataRequest()
    dispatched, respond, answers = _gate(_who("User:bob"), every)
    assert dispatched is every
    respond(P.MetadataResponse(topics=tuple(P.TopicMetadata(name=n) for n in (
        "orders-eu", "payments", "orders-secret"))))
    assert [t.name for t in answers[0].topics] == ["orders-eu"]  # READ implies DESCRIBE
    named = P.MetadataRequest(topics=("orders-eu", "payments", "no-such-topic"))
    dispatched, respond, answers = _gate(_who("User:bob"), named)
    assert dispatched.topics == ("orders-eu",)
    respond(P.MetadataResponse(topics=(P.TopicMetadata(name="orders-eu"),)))
    # asked for by name: refused whether it exists or not (existence does not leak)
    assert {t.name: t.error_code for t in answers[0].topics} == {
        "orders-eu": 0, "payments": E.TOPIC_AUTHORIZATION_FAILED,
        "no-such-topic": E.TOPIC_AUTHORIZATION_FAILED}


def test_controller_requests_with_nothing_allowed_are_answered_at_once():
    req = P.CreateTopicsRequest(topics=(P.CreatableTopic(name="payments"),))
    dispatched, _, answers = _gate(_who(), req)
    assert dispatched is None
    assert answers[0].topics[0].error_code == E.TOPIC_AUTHORIZATION_FAILED
    # CREATE on the CLUSTER allows any topic
    acls = ACLS | {_b("kafka-cluster", "CREATE", rt="CLUSTER")}
    assert _gate(_who(acls=acls), req)[0] is req


def test_group_requests_get_typed_refusals():
    hb = P.ConsumerGroupHeartbeatRequest(group_id="other", member_id="", member_epoch=0)
    dispatched, _, answers = _gate(_who("User:bob"), hb)
    assert dispatched is None
    assert isinstance(answers[0], P.ConsumerGroupHeartbeatResponse)
    assert answers[0].error_code == E.GROUP_AUTHORIZATION_FAILED
    hb = P.ConsumerGroupHeartbeatRequest(group_id="billing", member_id="", member_epoch=0,
                                         subscribed_topic_names=("orders-eu",))
    assert _gate(_who("User:bob"), hb)[0] is hb
    hb = P.ConsumerGroupHeartbeatRequest(group_id="billing", member_id="", member_epoch=0,
                                         subscribed_topic_names=("orders-eu", "payments"))
    _, _, answers = _gate(_who("User:bob"), hb)  # subscribed to a topic it may not describe
    assert answers[0].error_code == E.TOPIC_AUTHORIZATION_FAILED
    commit = P.OffsetCommitRequest(group_id="billing", topics=(P.OffsetCommitTopic(
        name="payments", partitions=(P.OffsetCommitPartition(partition=0,
                                                             committed_offset=1),)),))
    _, _, answers = _gate(_who("User:bob"), commit)
    assert answers[0].error_code == E.TOPIC_AUTHORIZATION_FAILED  # READ on the topic too


def test_super_users_may_do_anything_and_errors_pass_through_merges():
    for req in (_produce("payments"), P.CreateAclsRequest(creations=()),
                P.DeleteGroupsRequest(groups_names=("g",))):
        assert _gate(_who("User:admin"), req)[0] is req
    dispatched, respond, answers = _gate(_who(), _produce("orders-eu", "payments"))
    error = P.ErrorResponse(error_code=E.UNKNOWN_SERVER_ERROR, error_message="boom")
    respond(error)
    assert answers == [error]


def test_every_client_api_has_a_rule():
    """A new API must say which ACL it needs (without a rule: ALTER on the CLUSTER)."""
    inter_broker = set(P.INTER_BROKER_APIS)
    missing = [cls.__name__ for cls in P.REQUESTS.values()
               if cls not in RULES and cls not in inter_broker]
    assert missing == []


# ------------------------------------------------------------------- a real session


class _Lease:
    def __init__(self, user_id):
        self.user_id, self.peer_address = user_id, "10.0.0.1"

    def release(self):
        pass


@pytest.fixture
def session():
    image = md.replay([
        md.CreateTopic(name="orders-eu", topic_id="t1"),
        md.CreateTopic(name="payments", topic_id="t2"),
        *(acl_store.add_record(b) for b in ACLS),
    ])
    sent = []

    def make(configs, internal=False):
        ctx = BrokerContext(broker_id=1, host="h", port=1, cluster_id="c",
                            broker_configs=configs, send=lambda peer, f: sent.append(f),
                            ticker=None, image=image)
        s = ClientSession(ctx, b"peer", Listener("x", internal, ctx.send))

        def ask(req, user_id):
            sent.clear()
            s.on_receive(Inbound(codec.encode_request(req, 7), _Lease(user_id)))
            return codec.decode_response(sent[0])[1]

        ask.denied = lambda: ctx.counter_values().get("authorization_denied", 0)
        return ask

    return make


ON_CONFIGS = {"authorizer.class.name": "rillet", "super.users": "User:admin"}


def test_a_session_answers_for_the_principal_of_its_connection(session):
    ask = session(ON_CONFIGS)
    names = lambda r: [t.name for t in r.topics]  # noqa: E731
    assert names(ask(P.MetadataRequest(), "User:bob")) == ["orders-eu"]
    assert names(ask(P.MetadataRequest(), None)) == []  # plaintext: User:ANONYMOUS
    assert ask.denied() == 0  # leaving out what it may not see is no refusal
    payments = ask(P.MetadataRequest(topics=("payments",)), "User:bob")
    assert payments.topics[0].error_code == E.TOPIC_AUTHORIZATION_FAILED
    assert ask.denied() == 1  # counted for BrokerCounters (docs/runtime.md)
    assert names(ask(P.MetadataRequest(), "User:admin")) == ["orders-eu", "payments"]
    acls = ask(P.DescribeAclsRequest(), "User:admin")
    assert len(acls.bindings) == len(ACLS)
    assert ask(P.DescribeAclsRequest(), "User:bob").error_code == E.CLUSTER_AUTHORIZATION_FAILED
    # off: nothing hidden, and ACL requests say so
    ask = session({})
    assert names(ask(P.MetadataRequest(), "User:bob")) == ["orders-eu", "payments"]
    assert ask(P.DescribeAclsRequest(), "User:admin").error_code == E.SECURITY_DISABLED
    # the inter-broker listener is brokers' own: not checked
    ask = session(ON_CONFIGS, internal=True)
    assert names(ask(P.MetadataRequest(), None)) == ["orders-eu", "payments"]


@pytest.mark.parametrize("configs,match", [
    ({"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer"}, "one authorizer"),
    ({"super.users": "admin"}, "TYPE:NAME"),
    ({"allow.everyone.if.no.acl.found": "yes"}, "true, false"),
    # (a KAFKA listener beside the authorizer is served now: its requests are checked too,
    # tests/unit/test_kafka_sasl.py)
])
def test_authorizer_configs_are_validated(configs, match):
    from rillet.actors.configs import ConfigError, validate_broker_configs

    with pytest.raises(ConfigError, match=match):
        validate_broker_configs(configs)


def test_authorizer_configs_read_as_kafka_names_them():
    from rillet.actors.configs import validate_broker_configs

    assert not authorize.authorizer_of(validate_broker_configs({})).enabled
    auth = authorize.authorizer_of(validate_broker_configs({
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin; User:ops", "allow.everyone.if.no.acl.found": "true"}))
    assert auth == Authorizer(True, frozenset({"User:admin", "User:ops"}), True)
