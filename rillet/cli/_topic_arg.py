"""TOPIC as an argument or as ``--topic`` (Kafka's console tools' form), for produce/consume."""

from __future__ import annotations

import functools

import click


def topic_argument(f):
    """Replaces ``@click.argument("topic")``: the callback still gets ``topic``."""

    @functools.wraps(f)
    def wrapper(*args, topic=None, topic_option=None, **kwargs):
        if topic and topic_option and topic != topic_option:
            raise click.UsageError(f"two topics: {topic!r} and --topic {topic_option!r}")
        name = topic or topic_option
        if not name:
            raise click.UsageError("Missing argument 'TOPIC' (or --topic TOPIC).")
        return f(*args, topic=name, **kwargs)

    wrapper = click.argument("topic", required=False)(wrapper)
    return click.option("--topic", "topic_option", metavar="TOPIC",
                        help="The topic, as Kafka's console tools take it (or TOPIC).")(wrapper)
