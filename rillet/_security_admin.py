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


class SecurityAdminMixin:
    def set_user_key(self, name: str, public_key: str | bytes | None) -> None:
        """Make ``public_key`` (Z85) User:``name``'s key; ``None`` removes the user.
        ``InvalidConfigError`` for a bad name or key."""
        if isinstance(public_key, bytes):
            public_key = public_key.decode()
        self._alter_user(name, {CURVE_PUBLIC_KEY: public_key})

    def set_user_scram(self, name: str, password: str | None, iterations: int = 4096) -> None:
        """Give User:``name`` a SCRAM-SHA-256 credential for ``password`` (Kafka clients on a
        SASL KAFKA listener, PLAIN or SCRAM-SHA-256); ``None`` removes it. The password is
        salted here: only the credential goes to the cluster (coordinator/scram.py)."""
        import secrets

        from rillet.coordinator.scram import make_credential

        credential = None
        if password is not None:
            try:
                credential = make_credential(password, secrets.token_bytes(32),
                                             iterations).to_text()
            except ValueError as e:
                raise error_for_code(p.ErrorCode.INVALID_CONFIG, str(e)) from None
        self._alter_user(name, {SCRAM_SHA_256: credential})

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
        self._alter_user(name, {CURVE_PUBLIC_KEY: None, SCRAM_SHA_256: None})
