"""Round-trip samples of the ACL APIs (docs/protocol.md, "ACLs")."""

from rillet.transport import protocol as P

_ENTRY = P.AclEntry(resource_type="TOPIC", resource_name="orders", pattern_type="PREFIXED",
                    principal="User:alice", operation="WRITE")
_FILTER = P.AclFilterEntry(resource_type="TOPIC", resource_name="orders-eu", pattern_type="MATCH")

ACL_SAMPLES = [
    P.CreateAclsRequest(creations=(_ENTRY,)),
    P.CreateAclsResponse(results=(P.AclCreationResult(),
                                  P.AclCreationResult(error_code=42, error_message="bad"))),
    P.DescribeAclsRequest(filter=_FILTER),
    P.DescribeAclsRequest(),
    P.DescribeAclsResponse(bindings=(_ENTRY,)),
    P.DeleteAclsRequest(filters=(_FILTER, P.AclFilterEntry(principal="User:bob"))),
    P.DeleteAclsResponse(filter_results=(P.DeleteAclsFilterResult(matching_acls=(_ENTRY,)),)),
]
