"""CURVE on the client listener (docs/security.md): a ZAP handler admits only client keys
the user store maps to a principal; every refused handshake gives the client a clear
``AuthenticationFailedError`` within 5 s and never reaches the handler. Real loopback
sockets, in-process."""

from __future__ import annotations

import time

import pytest
import zmq
from rillet.transport import codec
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint, ServerEndpoint
from rillet.transport.errors import AuthenticationFailedError
from rillet.transport.security import CurveKeys, curve_available

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE"),
]


def _pair() -> CurveKeys:
    return CurveKeys(*zmq.curve_keypair())


class UserServer:
    """A client-listener endpoint whose user store is ``users`` (public key -> name)."""

    def __init__(self) -> None:
        self.keys = _pair()
        self.users: dict[bytes, str] = {}
        self.dispatched = 0
        self.endpoint = ServerEndpoint(
            "127.0.0.1:0",
            self.handle,
            curve=self.keys,
            principal_of=lambda key: (f"User:{self.users[key]}" if key in self.users else None),
        )
        self.endpoint.start()
        self.address = self.endpoint.address.removeprefix("tcp://")

    def handle(self, peer: bytes, frames: list[bytes], lease) -> None:
        self.dispatched += 1
        lease.release()
        cid, _msg = codec.decode_request(frames)
        self.endpoint.reply(peer, cid, P.ApiVersionsResponse(broker_id=7))


@pytest.fixture
def server():
    s = UserServer()
    yield s
    s.endpoint.close()


def test_a_known_user_is_served_and_a_user_added_later_too(server):
    alice, bob = _pair(), _pair()
    server.users[alice.public] = "alice"
    with ClientEndpoint(curve=alice, curve_server_key=server.keys.public) as client:
        assert client.request(server.address, P.ApiVersionsRequest()).result(10).broker_id == 7
    with ClientEndpoint(curve=bob, curve_server_key=server.keys.public) as client:
        with pytest.raises(AuthenticationFailedError, match="does not know this client"):
            client.request(server.address, P.ApiVersionsRequest()).result(10)
    server.users[bob.public] = "bob"  # the user store is read per handshake
    with ClientEndpoint(curve=bob, curve_server_key=server.keys.public) as client:
        assert client.request(server.address, P.ApiVersionsRequest()).result(10).broker_id == 7
    assert server.dispatched == 2


CASES = {
    "plaintext": ("requires CURVE", lambda s: {}),
    "unknown key": ("does not know this client", lambda s: {
        "curve": _pair(), "curve_server_key": s.keys.public}),
    "wrong server key": ("curve.server.publickey", lambda s: {
        "curve": s.known, "curve_server_key": _pair().public}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_attempts_dispatch_nothing_and_fail_clearly_within_5s(server, case):
    """25 attempts each here (in-process); tests/integration/test_security_auth.py makes the
    issue's 100 against a real broker process."""
    server.known = _pair()
    server.users[server.known.public] = "alice"
    match, options = CASES[case]
    for _ in range(25):
        started = time.monotonic()
        with ClientEndpoint(**options(server)) as client:
            future = client.request(server.address, P.ApiVersionsRequest(), timeout_ms=30_000)
            with pytest.raises(AuthenticationFailedError, match=match):
                future.result(10)
        assert time.monotonic() - started < 5
    assert server.dispatched == 0
