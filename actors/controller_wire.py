"""The controller's requests and responses on the wire, over the pure handlers of
coordinator/control/.

``decide(request, image, ...)`` runs the handler for one admin or inter-broker request and
returns a ``ControllerResult`` whose response is the wire response; ``not_controller(request)``
is the typed refusal for a broker that is not (or no longer) the active controller.
"""

from __future__ import annotations

import uuid

from rillet.coordinator import metadata as md
from rillet.coordinator.control import ControllerResult
from rillet.coordinator.control import partitions as cp
from rillet.coordinator.control import topics as ct
from rillet.coordinator.share import config as share_config
from rillet.transport import protocol as P

from . import acl_wire, dynamic_configs, features, quota_wire
from .configs import BrokerConfig, validate_topic_configs

E = P.ErrorCode
code = P.code_of


def _topic_result(o) -> P.CreatableTopicResult:
    return P.CreatableTopicResult(
        name=o.name,
        error_code=code(o.error),
        error_message=o.message,
        topic_id=o.topic_id,
        num_partitions=o.num_partitions,
        replication_factor=o.replication_factor,
    )


def _plain_topic_result(o) -> P.TopicResult:
    return P.TopicResult(name=o.name, error_code=code(o.error), error_message=o.message)


def _partition_result(o) -> P.ElectLeadersResult:
    return P.ElectLeadersResult(
        topic=o.topic, partition=o.partition, error_code=code(o.error), error_message=o.message
    )


def _with(result: ControllerResult, response: object) -> ControllerResult:
    return ControllerResult(result.records, response, result.notes)


def decide(
    request: object,
    image: md.MetadataImage,
    broker_configs: BrokerConfig,
    unclean_default: bool,
) -> ControllerResult:
    """The records and the wire response for ``request``; ValueError if the controller does
    not handle this request type."""
    match request:
        case P.CreateTopicsRequest():
            r = ct.create_topics(
                image,
                request.topics,
                validate_only=request.validate_only,
                default_partitions=broker_configs.int("num.partitions"),
                default_replication_factor=broker_configs.int("default.replication.factor"),
                new_topic_id=lambda: uuid.uuid4().hex,
                validate_configs=validate_topic_configs,
            )
            return _with(r, P.CreateTopicsResponse(topics=tuple(map(_topic_result, r.response))))
        case P.DeleteTopicsRequest():
            r = ct.delete_topics(image, request.topic_names)
            return _with(
                r, P.DeleteTopicsResponse(results=tuple(map(_plain_topic_result, r.response)))
            )
        case P.CreatePartitionsRequest():
            r = ct.create_partitions(image, request.topics, validate_only=request.validate_only)
            return _with(
                r, P.CreatePartitionsResponse(results=tuple(map(_plain_topic_result, r.response)))
            )
        case P.AlterConfigsRequest():
            r = ct.alter_configs(
                image,
                request.resources,
                validate_only=request.validate_only,
                validate_configs=validate_topic_configs,
                validate_group_configs=lambda c: share_config.validate_group_configs(
                    c, broker_configs
                ),
                validate_broker_configs=dynamic_configs.validate,
            )
            results = tuple(
                P.AlterConfigsResult(
                    resource_type=o.resource_type,
                    resource_name=o.resource_name,
                    error_code=code(o.error),
                    error_message=o.message,
                )
                for o in r.response
            )
            return _with(r, P.AlterConfigsResponse(results=results))
        case P.AlterPartitionRequest():
            r = cp.alter_partition(
                image,
                topic=request.topic,
                partition=request.partition,
                broker_id=request.broker_id,
                leader_epoch=request.leader_epoch,
                partition_epoch=request.partition_epoch,
                new_isr=request.new_isr,
                new_isr_incarnations=request.new_isr_incarnations,
                broker_incarnation=request.broker_incarnation,
            )
            o = r.response
            return _with(
                r, P.AlterPartitionResponse(error_code=code(o.error), error_message=o.message)
            )
        case P.ReplicaDamageRequest():
            r = cp.replica_damage(
                image,
                topic=request.topic,
                partition=request.partition,
                broker_id=request.broker_id,
                offset=request.offset,
                unclean_default=unclean_default,
                leader_epoch=request.leader_epoch,
            )
            o = r.response
            return _with(
                r, P.ReplicaDamageResponse(error_code=code(o.error), error_message=o.message)
            )
        case P.ElectLeadersRequest():
            r = cp.elect_leaders(image, request.topics)
            return _with(
                r, P.ElectLeadersResponse(results=tuple(map(_partition_result, r.response)))
            )
        case P.AlterPartitionReassignmentsRequest():
            r = cp.reassign(image, request.partitions)
            return _with(
                r,
                P.AlterPartitionReassignmentsResponse(
                    results=tuple(map(_partition_result, r.response))
                ),
            )
        case P.CreateAclsRequest() | P.DeleteAclsRequest():
            return acl_wire.decide(request, image)
        case P.AlterClientQuotasRequest():
            return quota_wire.decide(request, image)
        case P.InitProducerIdRequest():
            r = ct.init_producer_id(image)
            o = r.response
            return _with(
                r,
                P.InitProducerIdResponse(
                    producer_id=o.producer_id, producer_epoch=o.producer_epoch
                ),
            )
    raise ValueError(f"controller cannot handle {type(request).__name__}")


def _topic_error(name: str, code: int, message: str) -> P.CreatableTopicResult:
    return P.CreatableTopicResult(name=name, error_code=code, error_message=message)


def not_controller(req: object, message: str = "this broker is not the active controller"):
    """The typed response refusing ``req`` with NOT_CONTROLLER (41) for each of its items."""
    return refuse(req, E.NOT_CONTROLLER, message)


def refuse(req: object, code: int, message: str):
    """The typed response refusing ``req`` with ``code`` for each of its items."""
    match req:
        case P.CreateTopicsRequest():
            return P.CreateTopicsResponse(
                topics=tuple(_topic_error(t.name, code, message) for t in req.topics)
            )
        case P.DeleteTopicsRequest():
            return P.DeleteTopicsResponse(
                results=tuple(
                    P.TopicResult(name=n, error_code=code, error_message=message)
                    for n in req.topic_names
                )
            )
        case P.CreatePartitionsRequest():
            return P.CreatePartitionsResponse(
                results=tuple(
                    P.TopicResult(name=t.name, error_code=code, error_message=message)
                    for t in req.topics
                )
            )
        case P.AlterConfigsRequest():
            return P.AlterConfigsResponse(
                results=tuple(
                    P.AlterConfigsResult(
                        resource_type=r.resource_type,
                        resource_name=r.resource_name,
                        error_code=code,
                        error_message=message,
                    )
                    for r in req.resources
                )
            )
        case P.CreateAclsRequest() | P.DeleteAclsRequest():
            return acl_wire.refuse(req, code, message)
        case P.AlterClientQuotasRequest():
            return quota_wire.refuse(req, code, message)
        case P.UpdateFeaturesRequest() | P.DescribeFeaturesRequest():
            return features.refuse(req, code, message)
    return P.ErrorResponse(error_code=code, error_message=message)
