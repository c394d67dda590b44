"""A broker process whose transaction verifier says yes to every transactional produce
(tests only): lets a multi-broker test write transactions before a transaction coordinator
exists. Everything else is the real broker (``python -m rillet.actors.node``).

    python -m tests.integration.txn_trusting_broker --broker-id 1 ... (node.py's arguments)
"""

from __future__ import annotations

import sys

from rillet.actors import node, txn_verify


def _trust(self, transactional_id, producer_id, producer_epoch, topic, partition, answer):
    answer(txn_verify.E.NONE)


if __name__ == "__main__":
    txn_verify.RemoteTxnVerifier.verify = _trust
    sys.exit(node.main())
