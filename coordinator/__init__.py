"""Pure state machines: Raft, the metadata image, placement, group membership, assignors.

Standard library only; time and randomness are arguments; every step returns decisions
that an actor carries out.
"""
