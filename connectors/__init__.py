"""Kafka-Connect-style workers, connectors and tasks (file and SQLite sources and sinks)."""
