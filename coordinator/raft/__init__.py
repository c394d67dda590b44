"""A pure Raft core for the controller quorum (messages and ticks in, decisions out).

``RaftNode`` (node.py) is the voter; ``RaftLog``/``MemoryRaftLog`` (log.py) its log;
``StateMachine`` (statemachine.py) what the log drives; messages.py and effects.py the
inputs and outputs; state.py the role types and the transition table; wire.py plain-data
forms for transports and the hard-state file. See docs/raft.md.
"""

from .config import RaftConfig
from .effects import (
    ApplyCommitted,
    Effect,
    FlushLog,
    PersistHardState,
    RestoreSnapshot,
    Send,
    TakeSnapshot,
)
from .errors import (
    IllegalTransitionError,
    InvalidMessageError,
    NotLeaderError,
    RaftError,
    RaftSafetyError,
)
from .log import LogEntry, MemoryRaftLog, RaftLog, Snapshot
from .messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    RaftMessage,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from .node import TERM_LIMIT, HardState, RaftNode
from .statemachine import StateMachine
from .wire import decode_hard_state, encode_hard_state, message_from_dict, message_to_dict

__all__ = [
    "AppendEntriesRequest",
    "AppendEntriesResponse",
    "ApplyCommitted",
    "Effect",
    "FlushLog",
    "HardState",
    "IllegalTransitionError",
    "InstallSnapshotRequest",
    "InstallSnapshotResponse",
    "InvalidMessageError",
    "LogEntry",
    "MemoryRaftLog",
    "NotLeaderError",
    "PersistHardState",
    "RaftConfig",
    "RaftError",
    "RaftLog",
    "RaftMessage",
    "RaftNode",
    "RaftSafetyError",
    "RestoreSnapshot",
    "Send",
    "Snapshot",
    "StateMachine",
    "TERM_LIMIT",
    "TakeSnapshot",
    "TimeoutNow",
    "VoteRequest",
    "VoteResponse",
    "decode_hard_state",
    "encode_hard_state",
    "message_from_dict",
    "message_to_dict",
]
