"""CPU per SASL authentication on the broker (docs/security.md, "SASL"): the server side of
a SCRAM-SHA-256 / SCRAM-SHA-512 exchange (coordinator/scram.py against kafka-python's
independent ScramClient, 50 exchanges) and a PLAIN check, best of 5, process CPU time.

    .venv/bin/python bench/scram_bench.py
"""

from __future__ import annotations

import time

from kafka.net.sasl.scram import ScramClient
from rillet.coordinator import scram as S


def main() -> None:
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        cred = S.make_credential("secret", b"0123456789abcdef0123456789abcdef", 4096, mech)
        best_server = best_plain = 1e9
        for _ in range(5):
            n, spent = 50, 0.0
            for _ in range(n):
                server = S.ScramServer({"u": cred}.get, "nonce", mech)
                client = ScramClient("u", "secret", mech)
                t = time.process_time()
                first, _ = server.step(client.first_message())
                spent += time.process_time() - t
                client.process_server_first_message(first)
                t = time.process_time()
                server.step(client.final_message())
                spent += time.process_time() - t
            best_server = min(best_server, spent / n)
            t = time.process_time()
            for _ in range(5):
                S.check_plain(b"\0u\0secret", {"u": cred}.get)
            best_plain = min(best_plain, (time.process_time() - t) / 5)
        print(f"{mech}: server side of an exchange {best_server * 1e6:.0f} us CPU; "
              f"PLAIN check {best_plain * 1e3:.2f} ms CPU")


if __name__ == "__main__":
    main()
