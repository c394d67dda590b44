#!/usr/bin/env bash
# Share-group consume+acknowledge of RECORDS records of 100 B with 4 consumers, next to the
# peers of ../shared/peers in the same run (Redis Streams XREADGROUP+XACK, NATS JetStream
# pull+ack), then the redelivery latency of released records (bench/README.md, "Queues").
# Usage: bench/queue_bench.sh [RECORDS] [ROUNDS] [PARTITIONS]
# Uses a throw-away data dir and HOME; stops the cluster on exit. The peers run when
# ../shared/peers/.venv exists (../shared/peers/setup.sh), or PEERS=<dir> points at one.
set -euo pipefail
RECORDS=${1:-1000000}
ROUNDS=${2:-3}
PARTITIONS=${3:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-$HERE/../.venv/bin/python}
RILLET=${RILLET:-$HERE/../.venv/bin/rillet}
PEERS=${PEERS:-$HERE/../../shared/peers}
WORK=$(mktemp -d)
export HOME=$WORK/home
mkdir -p "$HOME"
cleanup() {
  $RILLET cluster down --data-dir "$WORK/data" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
$RILLET cluster up -n 1 --data-dir "$WORK/data" --detach >/dev/null
BROKERS=$("$PY" -c "from rillet.profile import default_brokers; print(default_brokers()[1])")
PEER_ARGS=()
if [ -x "$PEERS/.venv/bin/python" ]; then PEER_ARGS=(--peers "$PEERS"); fi
echo "== 1 broker, $RECORDS records of 100 B, $PARTITIONS partitions, 4 share consumers;" \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" "$HERE/queue_bench.py" --bootstrap "$BROKERS" --records "$RECORDS" --rounds "$ROUNDS" \
  --partitions "$PARTITIONS" "${PEER_ARGS[@]}"
