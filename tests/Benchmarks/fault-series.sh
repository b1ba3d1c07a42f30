#!/usr/bin/env bash
# The fault series, long form: the demo's three stages on a cluster of plain processes (Garnet or redis-server, the
# coordinator, two workers, a preprocessor), run once without faults and once with a seeded series of faults (worker
# SIGKILL, preprocessor SIGKILL mid-task, coordinator SIGKILL and restart, Redis/Garnet restart, worker SIGSTOP past
# the ring timeout then SIGCONT). Prints the fault log, then one JSON line with the outcome (from FaultSeries.Summary).
# CI runs the short form (FaultSeriesTests: small data, five faults); this script runs the same test with its settings
# from the environment.
# Usage: tests/Benchmarks/fault-series.sh [FAULTS] [SEED] [SCALE] [EPOCHS] [REDIS]
#        defaults: 12 faults, seed 14, the full demo data (scale 1), epochs 20,6,6 (the demo schedule's), garnet
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export CNCLIP_FAULTS=${1:-12} CNCLIP_FAULT_SEED=${2:-14} CNCLIP_FAULT_SCALE=${3:-1} CNCLIP_FAULT_EPOCHS=${4:-20,6,6} CNCLIP_FAULT_REDIS=${5:-garnet}
log=$(mktemp)
dotnet build "$root/tests/ChineseClip.Cluster.Tests" -v q -nologo >/dev/null
status=0
dotnet test "$root/tests/ChineseClip.Cluster.Tests" --no-build --filter "FullyQualifiedName~FaultSeriesTests" \
  --logger "console;verbosity=normal" > "$log" 2>&1 || status=$?
# The fault log (each line once: xunit repeats the output of a failed test) and the JSON summary.
# (a failed run may have no summary line: the greps must not end the script before it says so)
grep -E '^\[ *[0-9.]+ s\]' "$log" | awk '!seen[$0]++' || true
grep -E '^\{"seed"' "$log" | tail -1 || true
if [ $status -ne 0 ]; then
  grep -A8 'Error Message' "$log" >&2 || true
  echo "fault series failed (full output: $log)" >&2
  exit $status
fi
rm -f "$log"
