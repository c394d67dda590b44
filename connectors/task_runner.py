"""What the source and sink task runners share: the task's identity, its converters and
transforms, and the error handler with its dead-letter queue.

A runner is not thread-safe: one task actor drives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .clients import Clients
from .errorhandling import ErrorContext, ErrorHandler, dlq_headers
from .errors import ToleranceExceededError
from .validation import ConnectorSpec, make_converter_for, transforms_for

#: how long a dead-letter write (and other produce acks) may take before the task fails
ACK_TIMEOUT_S = 60


class TaskRunner:
    def __init__(self, spec: ConnectorSpec, task_id: int, task_config: dict[str, Any],
                 worker: Mapping[str, Any], clients: Clients, task_factory: Callable[[], Any],
                 *, sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.spec = spec
        self.name = spec.name
        self.task_id = task_id
        self.task_config = task_config
        self.worker = worker
        self.clients = clients
        self.task_factory = task_factory
        self.handler = ErrorHandler(spec.config, self._report, sleep=sleep, stopping=stopping)
        self.key_converter = make_converter_for(spec.config, worker, "key")
        self.value_converter = make_converter_for(spec.config, worker, "value")
        self.transforms = transforms_for(spec.config)
        self.dlq_topic = spec.config["errors.deadletterqueue.topic.name"]
        self.dlq_headers = spec.config["errors.deadletterqueue.context.headers.enable"]
        self.task: Any = None
        self.admin: Any = None

    def _dead_letter_producer(self) -> Any:
        """The producer that writes this task's dead-letter records."""
        raise NotImplementedError

    def _report(self, ctx: ErrorContext, stage: str, executing: str, error: BaseException,
                raw_key: bytes | None, raw_value: bytes | None) -> None:
        """Write a failed record to the dead-letter topic, durably, before its offset can be
        committed (ToleranceExceededError if that write fails)."""
        if not self.dlq_topic:
            return
        headers = dlq_headers(ctx, stage, executing, error) if self.dlq_headers else []
        fut = self._dead_letter_producer().send(
            self.dlq_topic, raw_value, key=raw_key, headers=headers)
        try:
            fut.get(timeout=ACK_TIMEOUT_S)
        except Exception as e:
            raise ToleranceExceededError("DEAD_LETTER_QUEUE", e) from e
