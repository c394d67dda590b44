"""CURVE on the inter-broker listener: the cluster key file and the ZAP guard, over real
loopback sockets (in-process, no broker)."""

from __future__ import annotations

import stat

import pytest
from rillet.transport import codec
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint, ServerEndpoint
from rillet.transport.errors import TransportError
from rillet.transport.security import (
    CurveKeys,
    KeyFileError,
    curve_available,
    generate_keyfile,
    load_keyfile,
)

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE"),
]


def test_keyfile_round_trip_private_and_never_overwritten(tmp_path):
    path = tmp_path / "cluster.curve"
    keys = generate_keyfile(path)
    assert load_keyfile(path) == keys and len(keys.public) == len(keys.secret) == 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.secret.decode() not in repr(keys)
    with pytest.raises(FileExistsError):
        generate_keyfile(path)
    assert load_keyfile(path) == keys


@pytest.mark.parametrize("text", [None, "", 'metadata\ncurve\n    public-key = "abc"\n'])
def test_a_missing_or_bad_keyfile_is_a_clear_error(tmp_path, text):
    path = tmp_path / "bad.curve"
    if text is not None:
        path.write_text(text)
    with pytest.raises(KeyFileError, match="key file"):
        load_keyfile(path)


class CurveServer:
    def __init__(self, keys: CurveKeys) -> None:
        self.endpoint = ServerEndpoint("127.0.0.1:0", self.handle, curve=keys)
        self.endpoint.start()
        self.address = self.endpoint.address.removeprefix("tcp://")
        self.seen = 0

    def handle(self, peer: bytes, frames: list[bytes], lease=None) -> None:
        self.seen += 1
        if lease is not None:
            lease.release()
        cid, _msg = codec.decode_request(frames)
        self.endpoint.reply(peer, cid, P.ApiVersionsResponse(broker_id=7))


@pytest.fixture
def keys(tmp_path) -> CurveKeys:
    return generate_keyfile(tmp_path / "cluster.curve")


@pytest.fixture
def server(keys):
    s = CurveServer(keys)
    yield s
    s.endpoint.close()


def test_a_client_with_the_cluster_keys_is_served(server, keys):
    with ClientEndpoint(curve=keys) as client:
        r = client.request(server.address, P.ApiVersionsRequest(), 5000).result(10)
    assert r.broker_id == 7


def test_a_client_without_keys_gets_nothing_through(server):
    with ClientEndpoint() as client:
        with pytest.raises(TransportError):
            client.request(server.address, P.ApiVersionsRequest(), 1000).result(10)
    assert server.seen == 0


def test_a_client_with_another_key_pair_is_refused_by_zap(server, keys):
    """It knows the server's public key (so the handshake reaches ZAP) but holds its own
    key pair, not the cluster's secret."""
    import zmq

    public, secret = zmq.curve_keypair()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.CURVE_SERVERKEY, keys.public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sock.connect(f"tcp://{server.address}")
        sock.send_multipart(codec.encode_request(P.ApiVersionsRequest(), 1))
        assert not sock.poll(1000)  # no reply
    finally:
        sock.close(0)
        ctx.term()
    assert server.seen == 0 and server.endpoint.refused_handshakes >= 1
