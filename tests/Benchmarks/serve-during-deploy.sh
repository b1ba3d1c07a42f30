#!/usr/bin/env bash
# Load during a deploy, long form: `cnclip bench serve --deploy` at 8 clients against the search service (in the test
# process, on a real port) serving the official-tiny fixture collection, while a deploy re-embeds the collection with a
# schedule's best checkpoint (a coordinator double answers the schedule) and swaps the new version in a quarter of the
# way into the run. Prints the bench JSON line (queries/s, p50/p99, errors, the deploy's start, end and versions) and
# the test process's resident memory at the start and the end (service, client and coordinator double together).
# CI runs the same test for 6 s (tests/ChineseClip.SearchService.Tests/LoadDuringDeployTests.cs).
# Usage: tests/Benchmarks/serve-during-deploy.sh [SECONDS]   (default 60)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export CNCLIP_SERVE_SECONDS=${1:-60}
log=$(mktemp)
dotnet build "$root/tests/ChineseClip.SearchService.Tests" -v q -nologo >/dev/null
status=0
dotnet test "$root/tests/ChineseClip.SearchService.Tests" --no-build --filter "FullyQualifiedName~LoadDuringDeployTests" \
  --logger "console;verbosity=detailed" > "$log" 2>&1 || status=$?
grep -E '^ *\{"(bench|rss_start_mb)"' "$log" | sed 's/^ *//'
if [ $status -ne 0 ]; then
  grep -A8 'Error Message' "$log" >&2 || true
  echo "serve during deploy failed (full output: $log)" >&2
  exit $status
fi
rm -f "$log"
