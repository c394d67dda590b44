"""A pure Raft core for the controller quorum (messages and ticks in, decisions out)."""
