"""ACL bindings in the metadata log (coordinator/acl_store.py) and the controller's ACL
decisions (coordinator/control/acls.py): records applied, replayed, encoded and kept in a
snapshot; CreateAcls idempotent and validated; DeleteAcls and DescribeAcls with Kafka's
filter semantics, checked against a reference over hypothesis-generated sets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator import acl, acl_store
from rillet.coordinator import metadata as md
from rillet.coordinator.acl import AclBinding, AclFilter
from rillet.coordinator.control import acls as ca


def _b(name="orders", op="READ", pattern="LITERAL", principal="User:alice", rt="TOPIC",
       perm="ALLOW", host="*"):
    return AclBinding(resource_type=rt, resource_name=name, pattern_type=pattern,
                      principal=principal, host=host, operation=op, permission=perm)


def _f(**kw):
    """A wire-like filter (coordinator/control/acls.FilterFields)."""
    fields = {"resource_type": "ANY", "resource_name": None, "pattern_type": "ANY",
              "principal": None, "host": None, "operation": "ANY", "permission": "ANY", **kw}
    return type("F", (), fields)()


def test_records_add_and_remove_bindings_idempotently():
    a, b = _b(), _b("pay", "WRITE", "PREFIXED", "User:bob")
    image = md.replay([acl_store.add_record(a), acl_store.add_record(b),
                       acl_store.add_record(a)])
    assert image.acls == {a, b} and image.offset == 3
    image = md.replay([acl_store.remove_record(a), acl_store.remove_record(a)], image)
    assert image.acls == {b}  # removing an absent binding changes nothing: replay never fails


def test_records_survive_encoding_and_a_snapshot_with_the_users():
    a, b = _b(), _b("billing", "READ", rt="GROUP", perm="DENY", host="10.0.0.1")
    records = [acl_store.add_record(a), acl_store.add_record(b),
               md.SetUserKey(user="alice", public_key="k" * 40)]
    assert md.decode_records(md.encode_records(records)) == records
    image = md.replay(md.decode_records(md.encode_records(records)))
    restored = md.decode_snapshot(md.encode_snapshot(image))
    assert restored.acls == {a, b}
    assert restored.users == {"alice": "k" * 40}  # the user store is in the snapshot too


def test_create_acls_validates_and_commits_only_new_bindings():
    existing = _b()
    image = md.replay([acl_store.add_record(existing)])
    r = ca.create_acls(image, [
        existing,  # exists: success, no record
        _b("orders", "WRITE", "PREFIXED"),
        _b("orders", "FLY"),  # unknown operation
        _b("other", "ALTER", rt="CLUSTER"),  # the cluster resource is kafka-cluster
        _b("kafka-cluster", "ALTER", rt="CLUSTER"),
        _b("orders", "WRITE", "PREFIXED"),  # twice in one request: one record
    ])
    assert [o.error for o in r.response] == ["NONE", "NONE", "INVALID_REQUEST",
                                             "INVALID_REQUEST", "NONE", "NONE"]
    assert "operation" in r.response[2].message and "kafka-cluster" in r.response[3].message
    assert [acl_store.binding_of(x) for x in r.records] == [
        _b("orders", "WRITE", "PREFIXED"), _b("kafka-cluster", "ALTER", rt="CLUSTER")]


def test_delete_acls_match_removes_what_applies_to_a_name_once():
    """The module docstring's worked example."""
    alice = _b("orders", "READ", "PREFIXED", "User:alice")
    bob = _b("orders-eu", "READ", "LITERAL", "User:bob")
    other = _b("payments")
    image = md.replay([acl_store.add_record(x) for x in (alice, bob, other)])
    r = ca.delete_acls(image, [
        _f(resource_type="TOPIC", resource_name="orders-eu", pattern_type="MATCH"),
        _f(resource_type="TOPIC", resource_name="orders-eu", pattern_type="LITERAL"),
        _f(operation="FLY"),
    ])
    assert set(r.response[0].bindings) == {alice, bob}
    assert r.response[1].bindings == (bob,)
    assert r.response[2].error == "INVALID_REQUEST"
    assert sorted(map(acl_store.binding_of, r.records), key=repr) == sorted([alice, bob],
                                                                           key=repr)
    assert md.replay(r.records, image).acls == {other}


NAMES = ["a", "ab", "orders", "*"]
bindings = st.builds(
    lambda rt, pt, name, p, op, perm: _b(name if pt == "LITERAL" or name != "*" else "a", op,
                                         pt, p, rt, perm),
    st.sampled_from(["TOPIC", "GROUP"]), st.sampled_from(acl.PATTERN_TYPES),
    st.sampled_from(NAMES), st.sampled_from(["User:alice", "User:*"]),
    st.sampled_from(["READ", "WRITE", "ALL"]), st.sampled_from(acl.PERMISSIONS))
filters = st.builds(
    lambda rt, name, pt, p, op: _f(resource_type=rt, resource_name=name, pattern_type=pt,
                                   principal=p, operation=op),
    st.sampled_from(["ANY", "TOPIC"]), st.sampled_from([None, "a", "ab", "*"]),
    st.sampled_from(["ANY", "LITERAL", "PREFIXED", "MATCH"]),
    st.sampled_from([None, "User:alice"]), st.sampled_from(["ANY", "READ"]))


def _reference_matches(f, b) -> bool:
    if f.resource_type != "ANY" and f.resource_type != b.resource_type:
        return False
    if f.principal is not None and f.principal != b.principal:
        return False
    if f.operation != "ANY" and f.operation != b.operation:
        return False
    if f.pattern_type == "MATCH":
        if f.resource_name is None:
            return True
        if b.pattern_type == "LITERAL":
            return b.resource_name in ("*", f.resource_name)
        return f.resource_name.startswith(b.resource_name)
    if f.pattern_type != "ANY" and f.pattern_type != b.pattern_type:
        return False
    return f.resource_name is None or f.resource_name == b.resource_name


@settings(max_examples=150, deadline=None)
@given(st.lists(bindings, max_size=8), st.lists(filters, min_size=1, max_size=3))
def test_describe_and_delete_agree_with_a_reference_filter(bs, fs):
    image = md.replay(ca.create_acls(md.MetadataImage(), bs).records)
    assert image.acls == set(bs)
    for f in fs:
        want = {b for b in bs if _reference_matches(f, b)}
        assert set(ca.describe_acls(image, f).bindings) == want
    after = md.replay(ca.delete_acls(image, fs).records, image)
    assert after.acls == {b for b in bs if not any(_reference_matches(f, b) for f in fs)}


@pytest.mark.parametrize("pattern", ["ANY", "MATCH", "LITERAL"])
def test_acl_filter_fields_pass_through(pattern):
    flt = ca.acl_filter(_f(pattern_type=pattern, resource_name="x"))
    assert isinstance(flt, AclFilter) and flt.pattern_type == pattern
