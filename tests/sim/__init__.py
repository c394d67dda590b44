"""Deterministic simulation (ring 2): pure cores over an in-memory network and clock."""
