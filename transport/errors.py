"""Transport errors. Each carries fields, says whether it is retriable, and maps to a wire code."""

from __future__ import annotations

from .protocol import ErrorCode


class TransportError(Exception):
    """Base of every error raised by rillet.transport."""

    code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR
    retriable: bool = False


class ProtocolError(TransportError):
    """A message that does not follow the wire protocol (malformed, unknown api or version).

    Raised by the codec on either side; when the broker sends an ``ErrorResponse`` the client
    endpoint raises it too, with the broker's code and message (``remote=True``).
    ``correlation_id`` is the request's when it could be read, else -1.
    """

    correlation_id: int = -1

    def __init__(self, code: int, message: str, *, remote: bool = False) -> None:
        try:
            self.code = ErrorCode(code)
        except ValueError:
            self.code = ErrorCode.UNKNOWN_SERVER_ERROR
        self.message = message
        self.remote = remote
        where = "broker rejected the request: " if remote else ""
        super().__init__(f"{where}{self.code.name}: {message}")


class RequestTooLargeError(ProtocolError):
    """A request exceeds the frame size cap; it was not sent."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"request frame of {size} bytes exceeds the limit of {limit} bytes",
        )


class RequestTimedOutError(TransportError, TimeoutError):
    """No response within the timeout; the broker may or may not have processed the request."""

    code = ErrorCode.REQUEST_TIMED_OUT
    retriable = True

    def __init__(self, address: str, api: str, timeout_ms: int) -> None:
        self.address = address
        self.api = api
        self.timeout_ms = timeout_ms
        super().__init__(f"{api} request to {address} timed out after {timeout_ms} ms")


class BrokerUnavailableError(RequestTimedOutError):
    """The request timed out and no connection to the broker was ever established (or the
    connection is down): the broker is not running or not reachable at ``address``."""

    code = ErrorCode.BROKER_NOT_AVAILABLE

    def __init__(
        self,
        address: str,
        api: str,
        timeout_ms: int,
        *,
        connection_lost: bool = False,
        disconnected: bool = False,
        reason: str | None = None,
    ) -> None:
        super().__init__(address, api, timeout_ms)
        if reason is not None:  # no connection could be made at all (ZeroMQ refused it)
            self.args = (f"cannot connect to broker {address} ({api} request not sent): {reason}",)
        elif disconnected:
            self.args = (
                f"broker {address} is down (its connection was lost; reconnecting): "
                f"{api} request not sent",
            )
        elif connection_lost:
            self.args = (
                f"connection to broker {address} lost with a {api} request in flight "
                "(it may or may not have been processed)",
            )
        else:
            self.args = (
                f"broker {address} is not reachable ({api} request got no connection "
                f"within {timeout_ms} ms); is it running?",
            )


class EndpointClosedError(TransportError):
    """The endpoint was closed; pending and new requests fail with this."""

    def __init__(self, message: str = "endpoint is closed") -> None:
        super().__init__(message)


class AuthenticationFailedError(TransportError):
    """The broker refused this client's CURVE handshake (docs/security.md): an unknown
    client key, a wrong ``curve.server.publickey``, or a plaintext client of a broker that
    requires CURVE (or the reverse). Not retriable: retrying with the same keys fails again.
    No request was sent."""

    retriable = False

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"authentication with broker {address} failed: {reason}")
        self.address = address
        self.reason = reason
