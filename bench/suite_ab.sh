#!/bin/bash
# A/B of a set of test files: MAIN_DIR (a checkout of the base, with its own .venv) and
# BRANCH_DIR (this one), alternating, -n0; per run wall, user and sys seconds (of pytest and
# the brokers it starts) and the load average before/after, appended to OUTDIR/summary; each
# run's log (with --durations=0) in OUTDIR. Stop it with: kill -INT <its pytest's pid>.
#   MAIN_DIR=/tmp/main-copy bench/suite_ab.sh /tmp/ab 2 tests/integration/test_cluster_failover.py
set -u
out=$(realpath -m "$1"); rounds=$2; shift 2
main_dir=${MAIN_DIR:?a checkout of the base with its own .venv}
branch_dir=${BRANCH_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
mkdir -p $out
for r in $(seq 1 $rounds); do
  for side in main branch; do
    if [ $side = main ]; then dir=$main_dir; else dir=$branch_dir; fi
    cd $dir
    la0=$(cut -d' ' -f1-3 /proc/loadavg)
    /usr/bin/time -f "%e %U %S" -o $out/$side-$r.time .venv/bin/python -m pytest "$@" -n0 -q --durations=0 > $out/$side-$r.log 2>&1
    rc=$?
    la1=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "$r $side rc=$rc $(cat $out/$side-$r.time) load0=$la0 load1=$la1" >> $out/summary
  done
done
