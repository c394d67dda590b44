"""CreateAcls / DescribeAcls / DeleteAcls on the wire, over coordinator/control/acls.py.

``decide`` serves the controller (actors/controller_wire.py calls it for the two requests
that commit records); ``describe`` serves DescribeAcls in the client session from the
broker's image; ``refuse`` is the typed answer giving every item one error code.
"""

from __future__ import annotations

from rillet.coordinator import acl
from rillet.coordinator import metadata as md
from rillet.coordinator.control import ControllerResult
from rillet.coordinator.control import acls as ca
from rillet.transport import protocol as P

code = P.code_of


def entry(b: acl.AclBinding) -> P.AclEntry:
    return P.AclEntry(
        resource_type=b.resource_type, resource_name=b.resource_name,
        pattern_type=b.pattern_type, principal=b.principal, host=b.host,
        operation=b.operation, permission=b.permission)


def decide(request: object, image: md.MetadataImage) -> ControllerResult:
    """The records and the wire response of a CreateAcls or DeleteAcls request."""
    if isinstance(request, P.CreateAclsRequest):
        r = ca.create_acls(image, request.creations)
        response = P.CreateAclsResponse(results=tuple(
            P.AclCreationResult(error_code=code(o.error), error_message=o.message)
            for o in r.response))
    else:
        r = ca.delete_acls(image, request.filters)
        response = P.DeleteAclsResponse(filter_results=tuple(
            P.DeleteAclsFilterResult(error_code=code(o.error), error_message=o.message,
                                     matching_acls=tuple(map(entry, o.bindings)))
            for o in r.response))
    return ControllerResult(r.records, response, r.notes)


def describe(image: md.MetadataImage, request: P.DescribeAclsRequest) -> P.DescribeAclsResponse:
    o = ca.describe_acls(image, request.filter)
    return P.DescribeAclsResponse(error_code=code(o.error), error_message=o.message,
                                  bindings=tuple(map(entry, o.bindings)))


def refuse(request: object, error_code: int, message: str) -> object:
    """``request`` (an ACL request) answered with ``error_code`` for each of its items."""
    match request:
        case P.CreateAclsRequest():
            return P.CreateAclsResponse(results=tuple(
                P.AclCreationResult(error_code=error_code, error_message=message)
                for _ in request.creations))
        case P.DeleteAclsRequest():
            return P.DeleteAclsResponse(filter_results=tuple(
                P.DeleteAclsFilterResult(error_code=error_code, error_message=message)
                for _ in request.filters))
        case P.DescribeAclsRequest():
            return P.DescribeAclsResponse(error_code=error_code, error_message=message)
    return P.ErrorResponse(error_code=error_code, error_message=message)
