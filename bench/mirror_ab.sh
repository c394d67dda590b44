#!/bin/bash
# A/B of the mirror, alternating in one session: bench/mirror_bench.py run ROUNDS times by
# a base checkout's venv and by this worktree's, base first (bench/README.md, "Mirror").
#   git archive <commit> | tar -x -C BASE && (cd BASE && python3 -m venv .venv &&
#     .venv/bin/pip install -q -e .)
#   bench/mirror_ab.sh BASE ROUNDS --records 1000000 [--eos]
set -euo pipefail
base=$(cd "$1" && pwd); rounds=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
for r in $(seq "$rounds"); do
  for side in base new; do
    if [ "$side" = base ]; then d=$base; else d=$here; fi
    echo "== $side round $r $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd "$d" && .venv/bin/python "$here/bench/mirror_bench.py" "$@" 2>&1 | tail -5)
  done
done
