"""The authorizer (coordinator/acl.py) against a reference model written differently (sets
of granted and denied operations per request), over thousands of hypothesis-generated ACL
sets and requests, plus Kafka's documented cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator import acl
from rillet.coordinator.acl import AclBinding, AclError, AclFilter, Request

from tests.support import examples

NAMES = ["a", "ab", "abc", "b", "orders", "orders-eu", "*"]
PRINCIPALS = ["User:alice", "User:bob", "User:*"]
HOSTS = ["*", "10.0.0.1", "10.0.0.2"]
REQUEST_OPS = [op for op in acl.OPERATIONS if op != "ALL"]


def reference(acls, req, super_users, default) -> bool:
    if req.principal in super_users:
        return True
    relevant = []
    for a in acls:
        if a.resource_type != req.resource_type:
            continue
        if a.pattern_type == "LITERAL" and a.resource_name not in ("*", req.resource_name):
            continue
        if a.pattern_type == "PREFIXED" and req.resource_name[: len(a.resource_name)] != (
                a.resource_name):
            continue
        relevant.append(a)
    granted: set[str] = set()
    denied: set[str] = set()
    for a in relevant:
        if a.principal not in (req.principal, "User:*") or a.host not in (req.host, "*"):
            continue
        ops = set(REQUEST_OPS) if a.operation == "ALL" else {a.operation}
        if a.permission == "DENY":
            denied |= ops
        else:
            if ops & {"READ", "WRITE", "DELETE", "ALTER"}:
                ops.add("DESCRIBE")
            if "ALTER_CONFIGS" in ops:
                ops.add("DESCRIBE_CONFIGS")
            granted |= ops
    if req.operation in denied:
        return False
    if not relevant:
        return default
    return req.operation in granted


bindings = st.builds(
    lambda rt, pt, name, p, h, op, perm: AclBinding(
        resource_type=rt, pattern_type=pt, resource_name=name if pt == "LITERAL" or name != "*"
        else "a", principal=p, host=h, operation=op, permission=perm),
    st.sampled_from(["TOPIC", "GROUP"]), st.sampled_from(acl.PATTERN_TYPES),
    st.sampled_from(NAMES), st.sampled_from(PRINCIPALS), st.sampled_from(HOSTS),
    st.sampled_from(acl.OPERATIONS), st.sampled_from(acl.PERMISSIONS))
requests = st.builds(
    lambda p, h, op, rt, name: Request(principal=p, host=h, operation=op, resource_type=rt,
                                       resource_name=name),
    st.sampled_from(["User:alice", "User:bob", "User:carol"]),
    st.sampled_from(["10.0.0.1", "10.0.0.2"]), st.sampled_from(REQUEST_OPS),
    st.sampled_from(["TOPIC", "GROUP"]), st.sampled_from([n for n in NAMES if n != "*"]))


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(bindings, max_size=8), st.lists(requests, min_size=1, max_size=5),
       st.booleans(), st.sampled_from([frozenset(), frozenset({"User:bob"})]))
def test_the_authorizer_agrees_with_the_reference_model(acls, reqs, default, supers):
    for b in acls:
        acl.validate(b)
    index = acl.AclIndex(acls)
    for req in reqs:
        want = reference(acls, req, supers, default)
        assert acl.authorize(acls, req, supers, default) == want
        assert index.authorize(req, supers, default) == want


def _b(op, perm="ALLOW", name="orders", pattern="LITERAL", principal="User:alice", rt="TOPIC"):
    return AclBinding(resource_type=rt, resource_name=name, pattern_type=pattern,
                      principal=principal, host="*", operation=op, permission=perm)


def _r(op, name="orders", principal="User:alice", rt="TOPIC"):
    return Request(principal=principal, host="10.0.0.1", operation=op, resource_type=rt,
                   resource_name=name)


def test_the_docstring_example():
    acls = [_b("READ", pattern="PREFIXED"), _b("READ", "DENY", "orders-secret",
                                                 principal="User:*")]
    assert acl.authorize(acls, _r("READ", "orders-eu"))
    assert acl.authorize(acls, _r("DESCRIBE", "orders-eu"))
    assert acl.authorize(acls, _r("DESCRIBE", "orders-secret"))
    assert not acl.authorize(acls, _r("READ", "orders-secret"))
    assert not acl.authorize(acls, _r("WRITE", "orders-eu"))
    assert not acl.authorize(acls, _r("READ", "payments"))
    assert acl.authorize(acls, _r("READ", "payments"), allow_if_no_acl=True)
    assert not acl.authorize([_b("WRITE", principal="User:bob", name="payments")],
                             _r("READ", "payments"), allow_if_no_acl=True)
    assert acl.authorize(acls, _r("DELETE", "x", "User:root"), frozenset({"User:root"}))


@pytest.mark.parametrize("change,match", [
    ({"resource_type": "BROKER"}, "resource_type"),
    ({"operation": "FLY"}, "operation"),
    ({"principal": "alice"}, "TYPE:NAME"),
    ({"pattern_type": "PREFIXED", "resource_name": "*"}, "PREFIXED"),
    ({"resource_name": ""}, "empty"),
])
def test_malformed_bindings_are_refused(change, match):
    fields = {"resource_type": "TOPIC", "resource_name": "t", "pattern_type": "LITERAL",
              "principal": "User:a", "host": "*", "operation": "READ", "permission": "ALLOW",
              **change}
    with pytest.raises(AclError, match=match):
        acl.validate(AclBinding(**fields))


def test_filters_select_bindings_like_kafka():
    lit, pre, star = _b("READ"), _b("READ", pattern="PREFIXED", name="ord"), _b("READ", name="*")
    assert [b for b in (lit, pre, star) if AclFilter(pattern_type="MATCH",
                                                      resource_name="orders").matches(b)] == [
        lit, pre, star]
    assert [b for b in (lit, pre, star) if AclFilter(resource_name="orders").matches(b)] == [lit]
    assert not AclFilter(principal="User:bob").matches(lit)
