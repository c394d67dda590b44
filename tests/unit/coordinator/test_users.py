"""The user store (coordinator/users.py): SetUserKey records replayed into the image, the
controller's AlterConfigs on the USER resource, principals of keys, the broker configs."""

from __future__ import annotations

import pytest
from rillet.actors.configs import ConfigError, validate_broker_configs
from rillet.coordinator import metadata as md
from rillet.coordinator import users
from rillet.coordinator.control import topics as ct
from rillet.transport import protocol as P

KEY_A = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
KEY_B = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"


def _alter(image, name, value, op=P.AlterConfigOp.SET, config=users.CURVE_PUBLIC_KEY):
    res = P.AlterConfigsResource(resource_type=users.RESOURCE_USER, resource_name=name,
                                 configs=(P.AlterableConfig(name=config, value=value, op=op),))
    return ct.alter_configs(image, [res], validate_only=False, validate_configs=lambda c: None)


def test_a_user_key_is_set_replaced_removed_and_replayed_from_records():
    image = md.MetadataImage()
    r = _alter(image, "alice", KEY_A)
    assert r.response[0].error == "NONE"
    image = md.replay(r.records, image)
    assert image.users == {"alice": KEY_A}
    assert users.principal_of(image.users, KEY_A) == "User:alice"
    assert users.principal_of(image.users, KEY_B) is None
    rekey = _alter(image, "alice", KEY_B).records
    removed = _alter(md.replay(rekey, image), "alice", None, P.AlterConfigOp.DELETE).records
    log = [md.to_dict(x) for x in r.records + rekey]
    replayed = md.replay([md.from_dict(d) for d in log])  # as a restart reads the log
    assert replayed.users == {"alice": KEY_B}
    assert md.replay(removed, replayed).users == {}


@pytest.mark.parametrize("name,value,config,match", [
    ("alice", "short", users.CURVE_PUBLIC_KEY, "Z85"),
    ("bad name!", KEY_A, users.CURVE_PUBLIC_KEY, "invalid user name"),
    ("alice", KEY_A, "password", "unknown user config"),
])
def test_bad_user_changes_are_refused_and_write_nothing(name, value, config, match):
    r = _alter(md.MetadataImage(), name, value, config=config)
    assert r.records == [] and r.response[0].error == "INVALID_CONFIG"
    assert match in r.response[0].message


def test_bootstrap_users_win_and_parse_strictly():
    boot = users.parse_bootstrap_users(f"admin={KEY_A}")
    assert users.principal_of({"alice": KEY_A}, KEY_A, boot) == "User:admin"
    with pytest.raises(ValueError, match="NAME=KEY"):
        users.parse_bootstrap_users(KEY_A)


def test_broker_refuses_a_curve_listener_nobody_can_log_in_to():
    with pytest.raises(ConfigError, match="bootstrap.users is empty"):
        validate_broker_configs({"client.curve.keyfile": "/x.curve"})
    with pytest.raises(ConfigError, match="needs client.curve.keyfile"):
        validate_broker_configs({"client.curve.bootstrap.users": f"admin={KEY_A}"})
    with pytest.raises(ConfigError, match="Z85"):
        validate_broker_configs({"client.curve.keyfile": "/x.curve",
                                 "client.curve.bootstrap.users": "admin=nope"})
