#!/usr/bin/env bash
# Load during a deploy, long form: `cnclip bench serve --deploy` at CLIENTS clients against the search service (in the
# test process, on a real port) serving a collection of ITEMS generated 64 x 48 JPEGs embedded with the official-tiny
# fixture model, while a deploy re-embeds the whole collection with a schedule's best checkpoint (a coordinator double
# answers the schedule) and swaps the new version in; the deploy starts a quarter of the way into the run. Prints the
# collection's build time, the bench JSON line (queries/s, p50/p99, errors, the deploy's start, end and versions) and
# the test process's resident memory (service, client and coordinator double together) at the start, at the end, and
# once the replaced version is released (Search:SwapGraceSeconds after the swap; the test sets 2 s).
# CI runs the same test for 6 s on the fixture's six images (tests/ChineseClip.SearchService.Tests/LoadDuringDeployTests.cs).
# Usage: tests/Benchmarks/serve-during-deploy.sh [SECONDS] [CLIENTS] [ITEMS] [ROUNDS] [WARMUP]   (defaults 60, 16,
# 100000, 1, 10; ITEMS 0: the fixture's six images; ROUNDS: the load with its deploy repeated on the same service, memory
# after each; WARMUP: seconds of the load without a deploy before the start is measured; rss_cold_mb is before it)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export CNCLIP_SERVE_SECONDS=${1:-60} CNCLIP_SERVE_CLIENTS=${2:-16} CNCLIP_SERVE_ITEMS=${3:-100000} CNCLIP_SERVE_ROUNDS=${4:-1} CNCLIP_SERVE_WARMUP=${5:-10}
log=$(mktemp)
dotnet build "$root/tests/ChineseClip.SearchService.Tests" -v q -nologo >/dev/null
status=0
dotnet test "$root/tests/ChineseClip.SearchService.Tests" --no-build --filter "FullyQualifiedName~LoadDuringDeployTests" \
  --logger "console;verbosity=detailed" > "$log" 2>&1 || status=$?
grep -E '^ *\{"(bench|rss_cold_mb|collection_items)"' "$log" | sed 's/^ *//'
if [ $status -ne 0 ]; then
  grep -A8 'Error Message' "$log" >&2 || true
  echo "serve during deploy failed (full output: $log)" >&2
  exit $status
fi
rm -f "$log"
