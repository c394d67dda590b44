"""One table of error codes (transport/protocol.py's ErrorCode and its retriability): every
other vocabulary (the client's exception classes, the group coordinator's errors, the
cores' error names) agrees with it."""

from __future__ import annotations

import pytest
from rillet.coordinator.groups import errors as G
from rillet.transport import protocol as P

from rillet import errors as client


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@pytest.mark.parametrize("cls", sorted(client._BY_CODE.values(), key=lambda c: c.code),
                         ids=lambda c: c.__name__)
def test_client_errors_carry_the_tables_code_and_retriability(cls) -> None:
    assert P.ErrorCode(cls.code)  # a known code
    assert cls.retriable == P.retriable(cls.code), cls.__name__


@pytest.mark.parametrize("cls", [c for c in _subclasses(G.GroupError) if c.code >= 0],
                         ids=lambda c: c.__name__)
def test_group_errors_carry_the_tables_code(cls) -> None:
    assert P.ErrorCode[cls.name] == cls.code


def test_an_unknown_code_is_still_readable_and_classified() -> None:
    e = client.error_for_code(51, "busy")
    assert e.retriable and "CONCURRENT_TRANSACTIONS" in str(e)
    assert "error code 9999" in str(client.error_for_code(9999))
