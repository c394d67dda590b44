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


class SecurityAdminMixin:
    def set_user_key(self, name: str, public_key: str | bytes | None) -> None:
        """Make ``public_key`` (Z85) User:``name``'s key; ``None`` removes the user.
        ``InvalidConfigError`` for a bad name or key."""
        if isinstance(public_key, bytes):
            public_key = public_key.decode()
        op = p.AlterConfigOp.SET if public_key is not None else p.AlterConfigOp.DELETE
        req = p.AlterConfigsRequest(resources=(p.AlterConfigsResource(
            resource_type=p.ConfigResourceType.USER, resource_name=name,
            configs=(p.AlterableConfig(name=CURVE_PUBLIC_KEY, value=public_key, op=op),)),))
        resp = self._controller_call(
            req, self.config.request_timeout_ms, lambda r: [x.error_code for x in r.results])
        for r in resp.results:
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message or f"user {name!r}")

    def delete_user(self, name: str) -> None:
        """Remove User:``name``: its key is refused from the next handshake on."""
        self.set_user_key(name, None)
