"""Role states of a Raft voter, one type per role, and the table of legal transitions.

Each role holds only its own fields; ``RaftNode`` replaces its state object on every role or
term change through ``check_transition``, which enforces this table (rows: from, columns: to;
``=`` same term, ``>`` higher term, ``+1`` exactly the next term, ``=>`` same or higher,
``-`` illegal). A forbidden change raises ``IllegalTransitionError`` before anything changes.

    from \\ to   | unattached | voted | follower | prospective | candidate | leader | resigned
    unattached  |     >      |  =>   |    =>    |      =      |     -     |   -    |    -
    voted       |     >      |  >    |    =>    |      =      |     -     |   -    |    -
    follower    |     >      |  >    |    >     |      =      |     -     |   -    |    -
    prospective |     >      |  =>   |    =>    |      =      |    +1     |   -    |    -
    candidate   |     >      |  >    |    =>    |      =      |     -     |   =    |    -
    leader      |     >      |  >    |    >     |      -      |     -     |   -    |    =
    resigned    |     >      |  >    |    >     |      =      |     -     |   -    |    -

Events behind the arrows: a message with a higher term (-> unattached; -> voted when the vote
is granted; -> follower when it comes from the new leader); a vote granted in the current term
(-> voted); AppendEntries / InstallSnapshot from the current term's leader (-> follower); an
election timeout (-> prospective: the pre-vote phase, term unchanged); pre-votes from a
majority (-> candidate, term + 1, vote for self; a TimeoutNow from the current leader takes
both steps at once); votes from a majority (-> leader); a leader
that no longer hears from a majority within an election timeout (check-quorum) or that is
asked to step down (-> resigned, same term: it has voted for itself and may not vote again).

A voter may vote at most once per term: unattached has no vote; voted, prospective and
follower carry ``voted_for`` (None or the candidate); candidate, leader and resigned have
voted for themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import IllegalTransitionError

ROLES = ("unattached", "voted", "follower", "prospective", "candidate", "leader", "resigned")

# The docstring's table as data: (from, to) -> term rule. Absent pairs are illegal.
TRANSITIONS: dict[tuple[str, str], str] = {}
_TABLE = """
unattached  >  =>  =>  =  -   -  -
voted       >  >   =>  =  -   -  -
follower    >  >   >   =  -   -  -
prospective >  =>  =>  =  +1  -  -
candidate   >  >   =>  =  -   =  -
leader      >  >   >   -  -   -  =
resigned    >  >   >   =  -   -  -
"""
for _row in _TABLE.strip().splitlines():
    _src, *_rules = _row.split()
    for _dst, _rule in zip(ROLES, _rules, strict=True):
        if _rule != "-":
            TRANSITIONS[(_src, _dst)] = _rule


def _term_ok(rule: str, old: int, new: int) -> bool:
    if rule == "=":
        return new == old
    if rule == ">":
        return new > old
    if rule == "=>":
        return new >= old
    return new == old + 1  # "+1"


def check_transition(old: RoleState, new: RoleState) -> None:
    """Raise ``IllegalTransitionError`` unless ``old -> new`` is in the table."""
    rule = TRANSITIONS.get((old.role, new.role))
    if rule is None or not _term_ok(rule, old.term, new.term):
        raise IllegalTransitionError(old.role, new.role, old.term, new.term)


@dataclass(slots=True)
class Unattached:
    """No leader known and no vote cast in ``term`` (startup, or after seeing a higher term)."""

    term: int
    election_deadline_ms: int
    role = "unattached"
    voted_for = None
    leader_id = None


@dataclass(slots=True)
class Voted:
    """Voted for ``voted_for`` in ``term``; no leader known yet."""

    term: int
    voted_for: int
    election_deadline_ms: int
    role = "voted"
    leader_id = None


@dataclass(slots=True)
class Follower:
    """Follows ``leader_id`` in ``term``. ``last_contact_ms`` drives pre-vote rejection: while
    the leader was heard within one election timeout, pre-votes are refused."""

    term: int
    leader_id: int
    voted_for: int | None
    election_deadline_ms: int
    last_contact_ms: int
    role = "follower"


@dataclass(slots=True)
class Prospective:
    """Pre-vote phase: asks for votes for ``term + 1`` without changing its term or vote."""

    term: int
    voted_for: int | None
    election_deadline_ms: int
    granted: set[int] = field(default_factory=set)
    role = "prospective"
    leader_id = None


@dataclass(slots=True)
class Candidate:
    """Voted for itself in ``term`` and collects votes."""

    term: int
    voted_for: int
    election_deadline_ms: int
    granted: set[int] = field(default_factory=set)
    role = "candidate"
    leader_id = None


@dataclass(slots=True)
class Progress:
    """What the leader knows of one follower. ``next_index`` is optimistic (advanced when
    entries are sent); ``match_index`` only moves on acknowledgements and never decreases."""

    next_index: int
    match_index: int = 0
    last_ack_ms: int = 0


@dataclass(slots=True)
class Leader:
    """Leader of ``term``; ``progress`` has one entry per other voter."""

    term: int
    voted_for: int
    progress: dict[int, Progress]
    heartbeat_due_ms: int
    check_quorum_due_ms: int
    role = "leader"

    @property
    def leader_id(self) -> int:
        return self.voted_for


@dataclass(slots=True)
class Resigned:
    """A former leader of ``term`` that stepped down; waits for a higher term or its timeout."""

    term: int
    voted_for: int
    election_deadline_ms: int
    role = "resigned"
    leader_id = None


RoleState = Unattached | Voted | Follower | Prospective | Candidate | Leader | Resigned
