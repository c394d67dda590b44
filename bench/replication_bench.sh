#!/usr/bin/env bash
# acks=all on a 3-broker RF=3 topic next to acks=1 on RF=1, in the same run (bench/README.md,
# "Replication"). Usage: bench/replication_bench.sh [RECORDS] [extra --producer-props k=v ...]
# Uses a throw-away data dir and HOME (for the cluster profile); stops the cluster on exit.
set -euo pipefail
RECORDS=${1:-1000000}
shift || true
RILLET=${RILLET:-rillet}
WORK=$(mktemp -d)
export HOME=$WORK/home
mkdir -p "$HOME"
trap '$RILLET cluster down --data-dir "$WORK/data" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
$RILLET cluster up -n 3 --data-dir "$WORK/data" --detach >/dev/null
$RILLET topic create rf3 -p 1 -r 3 >/dev/null
$RILLET topic create rf1 -p 1 -r 1 >/dev/null
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for spec in "rf3 all" "rf1 1"; do
  set -- $spec "$@"
  topic=$1 acks=$2
  shift 2
  echo -n "acks=$acks $topic: "
  $RILLET perf produce --topic "$topic" -n "$RECORDS" -s 100 --throughput -1 \
      --producer-props "acks=$acks" "$@" 2>&1 | tail -1
done
