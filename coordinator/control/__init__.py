"""The controller's decisions, as pure functions over the metadata image.

Kafka's controller is a set of managers (``ReplicationControlManager``,
``ClusterControlManager``, ``BrokerHeartbeatManager``) whose handlers return a
``ControllerResult``: the metadata records to commit and the response to send once they are
committed. This package is rillet's version; the controller actor (actors/controller.py) is
the shell that feeds these functions the committed image, proposes the records through Raft,
answers when they are applied and logs the notes.

- :mod:`.result`: ``ControllerResult`` (records, response, notes) and the outcome values that
  the shell turns into wire responses (error *names*; ``protocol.code_of`` gives the code).
- :mod:`.topics`: create/delete topics, create partitions, alter configs, producer ids.
- :mod:`.partitions`: ISR changes (AlterPartition), damaged replicas, leader elections
  (preferred, offline, auto-rebalance), reassignments.
- :mod:`.brokers`: broker registration, heartbeats, session expiry and fencing
  (``BrokerHeartbeats``: the broker-session state of the active controller).
- :mod:`.delta`: ``local_changes(old, new, broker_id)``, what one broker must do to host what
  a new image says.

Nothing here reads a clock (``now_ms`` is an argument), draws random numbers (new topic ids
are arguments), logs or touches a socket.
"""

from .result import ControllerResult, Note, Outcome, PartitionOutcome, TopicOutcome

__all__ = ["ControllerResult", "Note", "Outcome", "PartitionOutcome", "TopicOutcome"]
