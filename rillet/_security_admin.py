"""Admin methods of the user store (docs/security.md), mixed into ``rillet.admin.Admin``.

    admin.set_user_key("alice", public_key)   # add or re-key User:alice
    admin.delete_user("alice")

A user's CURVE public key is the ``curve.public.key`` config of the USER resource, written
through AlterConfigs to the controller, which keeps it in the metadata log
(coordinator/users.py): every broker admits the key from the moment the record commits.
"""

from __future__ import annotations

from rillet.errors import error_for_code
from rillet.transport import protocol as p

CURVE_PUBLIC_KEY = "curve.public.key"
SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_512 = "SCRAM-SHA-512"
SCRAM_MECHANISMS = (SCRAM_SHA_256, SCRAM_SHA_512)


class SecurityAdminMixin:
    def set_user_key(self, name: str, public_key: str | bytes | None) -> None:
        """Make ``public_key`` (Z85) User:``name``'s key; ``None`` removes the user.
        ``InvalidConfigError`` for a bad name or key."""
        if isinstance(public_key, bytes):
            public_key = public_key.decode()
        self._alter_user(name, {CURVE_PUBLIC_KEY: public_key})

    def set_user_scram(self, name: str, password: str | None, iterations: int = 4096,
                       mechanisms: tuple[str, ...] = SCRAM_MECHANISMS) -> None:
        """Give User:``name`` a credential of each of ``mechanisms`` (SCRAM-SHA-256 and
        SCRAM-SHA-512 by default, as kafka-configs can) for ``password``, for Kafka clients on
        a SASL KAFKA listener (PLAIN, or SCRAM of a mechanism it has); ``None`` removes them.
        The password is salted here (a salt per credential): only the credentials go to the
        cluster (coordinator/scram.py)."""
        import secrets

        from rillet.coordinator.scram import make_credential

        mechanisms = tuple(dict.fromkeys(m.upper() for m in mechanisms))
        values: dict[str, str | None] = {}
        for mech in mechanisms:
            if mech not in SCRAM_MECHANISMS:
                raise error_for_code(p.ErrorCode.INVALID_CONFIG,
                                     f"unknown SCRAM mechanism {mech!r}; valid: "
                                     f"{', '.join(SCRAM_MECHANISMS)}")
            values[mech] = None
            if password is not None:
                try:
                    values[mech] = make_credential(password, secrets.token_bytes(32),
                                                   iterations, mech).to_text()
                except ValueError as e:
                    raise error_for_code(p.ErrorCode.INVALID_CONFIG, str(e)) from None
        if not values:
            raise error_for_code(p.ErrorCode.INVALID_CONFIG, "no SCRAM mechanism named")
        self._alter_user(name, values)

    def _alter_user(self, name: str, values: dict[str, str | None]) -> None:
        configs = tuple(
            p.AlterableConfig(name=k, value=v,
                              op=p.AlterConfigOp.SET if v is not None else p.AlterConfigOp.DELETE)
            for k, v in values.items())
        req = p.AlterConfigsRequest(resources=(p.AlterConfigsResource(
            resource_type=p.ConfigResourceType.USER, resource_name=name, configs=configs),))
        resp = self._controller_call(
            req, self.config.request_timeout_ms, lambda r: [x.error_code for x in r.results])
        for r in resp.results:
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message or f"user {name!r}")

    def delete_user(self, name: str) -> None:
        """Remove User:``name``: its key and its SCRAM credential are refused from the
        next handshake on."""
        self._alter_user(name, {CURVE_PUBLIC_KEY: None, SCRAM_SHA_256: None,
                                SCRAM_SHA_512: None})
