#!/usr/bin/env bash
# Transactional produce next to the same produce without transactions, alternating in one run
# (bench/README.md, "Transactions"): on 1 broker (RF 1) and on 3 brokers (RF 3), acks=all.
# Usage: bench/txn_bench.sh [RECORDS] [TRANSACTION_SIZE] [ROUNDS] [TRANSACTION_DURATION_MS]
# Each round: no transactions; transactions of TRANSACTION_SIZE records; transactions of
# TRANSACTION_DURATION_MS (Kafka's perf tool habit, --transaction-duration-ms; default 3000
# there, 100 here).
# Uses a throw-away data dir and HOME (for the cluster profile); stops the clusters on exit.
set -euo pipefail
RECORDS=${1:-300000}
SIZE=${2:-1000}
ROUNDS=${3:-3}
DURATION=${4:-100}
RILLET=${RILLET:-rillet}
WORK=$(mktemp -d)
export HOME=$WORK/home
mkdir -p "$HOME"
cleanup() {
  for n in 1 3; do $RILLET cluster down --data-dir "$WORK/data$n" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
rate() { sed -n 's/.* records sent, \([0-9.]*\) records\/sec.*/\1/p' | tail -1; }
for n in 1 3; do
  $RILLET cluster up -n "$n" --data-dir "$WORK/data$n" --detach >/dev/null
  $RILLET topic create "t$n" -p 3 -r "$n" >/dev/null
  echo "== $n broker(s), RF $n, acks=all, $RECORDS records of 100 B; load $(cut -d' ' -f1-3 /proc/loadavg)"
  for r in $(seq "$ROUNDS"); do
    plain=$($RILLET perf produce -t "t$n" -n "$RECORDS" -s 100 --producer-props acks=all | rate)
    txn=$($RILLET perf produce -t "t$n" -n "$RECORDS" -s 100 --producer-props acks=all \
          --transaction-size "$SIZE" --transactional-id "bench-$n-$r" | rate)
    dur=$($RILLET perf produce -t "t$n" -n "$RECORDS" -s 100 --producer-props acks=all \
          --transaction-duration-ms "$DURATION" --transactional-id "bench-d-$n-$r" | rate)
    ratios=$(python3 -c "print(f'{$txn / $plain:.2f} / {$dur / $plain:.2f}')")
    echo "round $r: plain $plain rec/s; transactions of $SIZE records: $txn rec/s;" \
         "of $DURATION ms: $dur rec/s; ratios $ratios"
  done
  $RILLET cluster down --data-dir "$WORK/data$n" >/dev/null
done
