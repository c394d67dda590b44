"""The idempotent part of the producer's sender thread (a mixin of ``Sender``).

A sequence per partition, assigned when a batch is first sent (``Sender._send_to``); at most
5 batches per partition unanswered (the broker remembers 5). A batch that fails after it was
numbered (expired, retries exhausted) leaves a possible hole; when the broker then answers a
later batch with OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID, the partition moves to
the next producer epoch and its unsent batches are renumbered from 0 once nothing of it is in
flight (Kafka's KIP-360), instead of every later batch failing until it expires too.
"""

from __future__ import annotations

from collections import Counter

from rillet._accumulator import ProducerBatch
from rillet.errors import error_for_code
from rillet.transport.protocol import ErrorCode, InitProducerIdRequest, InitProducerIdResponse


class IdempotentSending:
    """Mixed into ``Sender``; uses its ``client``, ``waiting``, timeouts and backoff."""

    def _init_idempotence(self, client, acks: int) -> None:
        # idempotence (enable.idempotence, acks=all): producer id/epoch from the cluster and a
        # sequence per partition, assigned when a batch is first sealed (= sent, in order)
        config = getattr(client, "config", None)
        self.idempotent = acks == -1 and bool(getattr(config, "enable_idempotence", False))
        self.producer_id = -1
        self.producer_epoch = -1
        self.next_sequence: dict[tuple[str, int], int] = {}
        self.producer_id_retry_at = 0.0
        # KIP-360: a batch that failed (expired, retries exhausted...) after its sequence was
        # assigned leaves the partition "unresolved": it may or may not be in the log. A later
        # batch acknowledged past it resolves it (it was written); OUT_OF_ORDER_SEQUENCE or
        # UNKNOWN_PRODUCER_ID proves the gap: once nothing of the partition is in flight, its
        # epoch is bumped and its unsent batches renumbered from 0 (the broker accepts a new
        # epoch starting at 0). Epochs are per partition, as the broker checks them.
        self.epochs: dict[tuple[str, int], int] = {}
        self.unresolved: dict[tuple[str, int], int] = {}  # tp -> last failed sequence
        self.needs_bump: set[tuple[str, int]] = set()
        # the broker remembers the last 5 batches per producer and partition: never more
        # unanswered than that, or a retry of an older one is no longer known as a duplicate
        self.batches_in_flight: Counter = Counter()

    def _init_producer_id(self, now: float) -> bool:
        """InitProducerId from the controller (once per producer); False: try again later."""
        if now < self.producer_id_retry_at:
            return False
        try:
            r = self.client.call_controller(InitProducerIdRequest(), self.request_timeout_ms)
        except Exception as e:  # noqa: BLE001 - RilletError's ``code``: UNSUPPORTED_VERSION
            r = e  # disables idempotence below; anything else: try again later
        if isinstance(r, InitProducerIdResponse) and r.error_code == 0 and r.producer_id >= 0:
            self.producer_id, self.producer_epoch = r.producer_id, r.producer_epoch
            return True
        code = getattr(r, "error_code", getattr(r, "code", None))
        if code in (ErrorCode.UNSUPPORTED_VERSION, ErrorCode.INVALID_REQUEST):
            self.idempotent = False  # a broker without InitProducerId: plain retries
            return True
        if code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED:
            # no IDEMPOTENT_WRITE (docs/security.md): what waits fails now with the reason
            # instead of expiring; later sends try again (an ACL may have been added since)
            error = error_for_code(code, getattr(r, "error_message", None) or str(r))
            for batch in self.waiting:
                self._finish(batch, -1, error)
            self.waiting.clear()
        self.producer_id_retry_at = now + self.backoff_ms
        self.client.request_metadata_update(())
        return False

    def _past_unresolved(self, batch: ProducerBatch) -> bool:
        tp = (batch.topic, batch.partition)
        if batch.producer_epoch != self.epochs.get(tp, self.producer_epoch):
            return False
        gap = (batch.base_sequence - self.unresolved[tp]) & 0x7FFFFFFF
        return 0 < gap < 0x40000000  # after the failed sequence (modulo wrap-around)

    def _bump_epochs(self) -> None:
        """New epoch, sequences from 0, for each gapped partition with nothing in flight:
        its waiting batches get their new numbers when sent (in creation order)."""
        for tp in list(self.needs_bump):
            if self.batches_in_flight[tp] > 0:
                continue  # their answers may still resolve it; wait for them
            epoch = self.epochs.get(tp, self.producer_epoch) + 1
            if epoch > 0x7FFF:  # a 16-bit field: start over with a new producer id
                if any(self.batches_in_flight.values()):
                    continue
                self.producer_id = -1
                self.epochs.clear()
                self.next_sequence.clear()
                self.unresolved.clear()
                self.needs_bump.clear()
                for batch in self.waiting:
                    batch.base_sequence = -1
                return
            self.needs_bump.discard(tp)
            self.unresolved.pop(tp, None)
            self.epochs[tp] = epoch
            self.next_sequence[tp] = 0
            for batch in self.waiting:
                if (batch.topic, batch.partition) == tp:
                    batch.base_sequence = -1
