"""Rillet: a partitioned, replicated commit log in Python.

Users import from here only: ``from rillet import Producer, Consumer, Admin, TopicPartition``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
