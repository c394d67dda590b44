"""Errors of the state stores."""

from __future__ import annotations

from ...errors import IllegalStateError, RilletError


class InvalidStateStoreError(IllegalStateError):
    """The store is not open (not yet, or closed: its task moved away or the application
    stopped). Kafka's ``InvalidStateStoreException``; an interactive query retries after
    the next rebalance. Not retriable on the same store object."""

    def __init__(self, store: str, state: str = "closed") -> None:
        super().__init__(f"state store {store!r} is {state}")
        self.store = store
        self.state = state


class StoreFileError(RilletError):
    """A store's local file cannot be used (another kind of store, unreadable); ``path``
    names it. Wiping the store (``wipe()``) and restoring from the changelog recovers."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"state store file {path}: {reason}")
        self.path = path
        self.reason = reason
