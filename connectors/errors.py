"""Connect errors: typed, each saying whether retrying the same operation may succeed."""

from __future__ import annotations


class ConnectError(Exception):
    """Base of every Connect error."""

    retriable: bool = False


class RetriableError(ConnectError):
    """A transient failure: the worker retries the operation with exponential backoff
    (errors.retry.timeout, errors.retry.delay.max.ms). Connector authors raise it too."""

    retriable = True


class ConnectConfigError(ConnectError, ValueError):
    """A worker or connector config is invalid; ``problems`` lists every issue found."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n  - ".join(self.problems)
        super().__init__(f"invalid {source}:\n  - {lines}")


class PluginNotFoundError(ConnectConfigError):
    """connector.class / transforms.X.type / converter names nothing we can load."""

    def __init__(self, kind: str, name: str, reason: str) -> None:
        super().__init__([f"cannot load {kind} {name!r}: {reason}"], source=kind)
        self.name = name


class ConversionError(ConnectError):
    """A key or value could not be converted (stage key.converter / value.converter)."""


class TransformError(ConnectError):
    """A single message transform failed on a record."""


class ToleranceExceededError(ConnectError):
    """A record failed and errors.tolerance=none (or retries ran out): the task fails.
    ``stage`` is Kafka's stage name (VALUE_CONVERTER, TRANSFORMATION, TASK_PUT, ...)."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        self.cause = cause
        super().__init__(f"tolerance exceeded in stage {stage}: "
                         f"{type(cause).__name__}: {cause}")


class NotFoundError(ConnectError, KeyError):
    """No connector (or task) of that name on this worker."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class ConflictError(ConnectError):
    """The request conflicts with the current state (e.g. altering offsets of a running
    connector, or creating a connector that exists)."""


def is_retriable(error: BaseException) -> bool:
    """Our errors and the client's carry ``retriable``; timeouts and lost connections are too."""
    flag = getattr(error, "retriable", None)
    if isinstance(flag, bool):
        return flag
    return isinstance(error, TimeoutError | ConnectionError)
