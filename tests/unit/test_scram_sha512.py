"""SCRAM-SHA-512 (issue #19, docs/security.md "SASL"): the server core against an
independent client (kafka-python's ScramClient, its own SHA-512 arithmetic), a credential
of one mechanism never answers the other, PLAIN finds either, and both credentials are kept
in the metadata image (replay, snapshot, AlterConfigs of a USER)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rillet.coordinator import metadata as md
from rillet.coordinator import scram as S
from rillet.coordinator.control.topics import alter_configs
from rillet.coordinator.users import RESOURCE_USER

SALT = b"0123456789abcdef"
ScramClient = pytest.importorskip("kafka.net.sasl.scram").ScramClient


def _exchange(server: S.ScramServer, password: str, mechanism: str) -> str | None:
    client = ScramClient("alice", password, mechanism)
    first, _ = server.step(client.first_message())
    client.process_server_first_message(first)
    final, user = server.step(client.final_message())
    client.process_server_final_message(final)  # raises if the server's signature is wrong
    return user


def test_scram_sha_512_against_an_independent_client():
    cred = S.make_credential("secret", SALT, 4096, S.SCRAM_SHA_512)
    assert len(cred.stored_key) == 64 and cred.mechanism == S.SCRAM_SHA_512
    server = S.ScramServer({"alice": cred}.get, "srvnonce", S.SCRAM_SHA_512)
    assert _exchange(server, "secret", "SCRAM-SHA-512") == "alice"
    assert server.state == "DONE"
    server = S.ScramServer({"alice": cred}.get, "srvnonce", S.SCRAM_SHA_512)
    with pytest.raises(S.SaslFailed):
        _exchange(server, "wrong", "SCRAM-SHA-512")


def test_a_credential_answers_only_its_own_mechanism():
    c256 = S.make_credential("secret", SALT, 4096, S.SCRAM_SHA_256)
    server = S.ScramServer({"alice": c256}.get, "srvnonce", S.SCRAM_SHA_512)
    with pytest.raises(S.SaslFailed):
        _exchange(server, "secret", "SCRAM-SHA-512")
    c512 = S.make_credential("secret", SALT, 4096, S.SCRAM_SHA_512)
    with pytest.raises(ValueError, match="SCRAM-SHA-256 keys are 32 bytes"):
        S.parse_credential(c512.to_text(), S.SCRAM_SHA_256)
    assert S.parse_credential(c512.to_text(), S.SCRAM_SHA_512) == c512
    assert S.check_plain(b"\0alice\0secret", {"alice": c512}.get) == "alice"
    with pytest.raises(S.SaslFailed):
        S.check_plain(b"\0alice\0nope", {"alice": c512}.get)


def test_both_credentials_live_in_the_metadata_image():
    c256 = S.make_credential("secret", SALT, 4096, S.SCRAM_SHA_256).to_text()
    c512 = S.make_credential("secret", SALT, 4096, S.SCRAM_SHA_512).to_text()
    image = md.MetadataImage()
    result = _alter(image, "alice", ("SCRAM-SHA-256", c256), ("SCRAM-SHA-512", c512))
    assert result.response[0].error == "NONE"
    records = [r for r in result.records if isinstance(r, md.SetUserScram)]
    assert {r.mechanism for r in records} == {"SCRAM-SHA-256", "SCRAM-SHA-512"}
    image = md.replay(records, md.MetadataImage())
    assert image.scram == {"alice": c256} and image.scram_sha512 == {"alice": c512}
    again = md.replay(md.image_records(image), md.MetadataImage())  # a snapshot keeps both
    assert again.scram == image.scram and again.scram_sha512 == image.scram_sha512
    gone = md.replay(_alter(image, "alice", ("SCRAM-SHA-512", None)).records, image)
    assert gone.scram == {"alice": c256} and gone.scram_sha512 == {}
    # a 256-byte-keyed credential under the 512 name is refused
    bad = _alter(image, "bob", ("SCRAM-SHA-512", c256))
    assert bad.response[0].error == "INVALID_CONFIG" and not bad.records


def _alter(image, name, *changes):
    configs = tuple(SimpleNamespace(name=k, value=v, op=0 if v is not None else 1)
                    for k, v in changes)
    resource = SimpleNamespace(resource_type=RESOURCE_USER, resource_name=name, configs=configs)
    return alter_configs(image, [resource], validate_only=False,
                         validate_configs=lambda _c: None)
