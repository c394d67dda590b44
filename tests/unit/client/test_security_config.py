"""Client security settings (rillet/security.py): taken from the profile when none is
given, a half-configured CURVE client refused with a message naming what is missing."""

from __future__ import annotations

import json

import pytest

from rillet.config import admin_config, producer_config
from rillet.errors import ConfigError

SERVER = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"


def _profile(tmp_path, monkeypatch, security=None):
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("RILLET_BROKERS", raising=False)
    profile = {"brokers": "127.0.0.1:9092"}
    if security:
        profile["security"] = security
    (tmp_path / "profile.json").write_text(json.dumps(profile))


def test_plaintext_by_default(tmp_path, monkeypatch):
    _profile(tmp_path, monkeypatch)
    assert admin_config()["security.protocol"] == "plaintext"


def test_the_profile_supplies_curve_settings_unless_the_caller_names_any(tmp_path, monkeypatch):
    sec = {"security.protocol": "CURVE", "curve.client.keyfile": "/k/admin.curve",
           "curve.server.publickey": SERVER}
    _profile(tmp_path, monkeypatch, sec)
    config = producer_config()
    assert config["security.protocol"] == "curve"
    assert config["curve.client.keyfile"] == "/k/admin.curve"
    assert admin_config({"security.protocol": "plaintext"})["curve.client.keyfile"] is None


@pytest.mark.parametrize("given,match", [
    ({"security.protocol": "CURVE", "curve.server.publickey": SERVER}, "curve.client.keyfile"),
    ({"security.protocol": "CURVE", "curve.client.keyfile": "k"}, "curve.server.publickey"),
    ({"curve.client.keyfile": "k"}, "security.protocol=CURVE"),
    ({"security.protocol": "SSL"}, "plaintext, curve"),
])
def test_half_configured_security_is_refused(tmp_path, monkeypatch, given, match):
    _profile(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match=match):
        admin_config(given)
