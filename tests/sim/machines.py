"""State machines for the simulator.

``HashChainMachine`` folds every applied payload into a SHA-256 chain, so two machines have the
same digest exactly when they applied the same payloads in the same order: comparing one
digest checks the whole applied history (and the contents of any snapshot it was restored
from). It also keeps a tiny KV view (``key=value`` payloads) to show a "real" machine.
"""

from __future__ import annotations

import hashlib

GENESIS = b"\0" * 32


def chain(digest: bytes, payload: bytes) -> bytes:
    return hashlib.sha256(digest + payload).digest()


class HashChainMachine:
    """``StateMachine`` whose state is (applied count, chain digest, kv). Snapshot = bytes."""

    __slots__ = ("count", "digest", "kv")

    def __init__(self) -> None:
        self.count = 0
        self.digest = GENESIS
        self.kv: dict[bytes, bytes] = {}

    def apply(self, payload: bytes) -> None:
        self.count += 1
        self.digest = chain(self.digest, payload)
        key, sep, value = payload.partition(b"=")
        if sep:
            self.kv[key] = value

    def snapshot(self) -> bytes:
        items = b"".join(
            len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v
            for k, v in sorted(self.kv.items())
        )
        return self.count.to_bytes(8, "big") + self.digest + items

    def restore(self, data: bytes) -> None:
        self.count = int.from_bytes(data[:8], "big")
        self.digest = data[8:40]
        self.kv = {}
        pos = 40
        while pos < len(data):
            klen = int.from_bytes(data[pos : pos + 4], "big")
            key = data[pos + 4 : pos + 4 + klen]
            pos += 4 + klen
            vlen = int.from_bytes(data[pos : pos + 4], "big")
            self.kv[key] = data[pos + 4 : pos + 4 + vlen]
            pos += 4 + vlen
