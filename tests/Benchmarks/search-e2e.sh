#!/usr/bin/env bash
# End-to-end text queries through the search service's HTTP API: a 100,000-item collection (synthetic clustered
# vectors) served with a randomly initialised ViT-B-16@RoBERTa-wwm-ext-base-chinese (weights do not change the time),
# then `cnclip bench serve` at concurrency 1 and 16, with request batching on (default) and off (Search:MaxBatch=1).
# Usage: tests/Benchmarks/search-e2e.sh [WORK_DIR] [ITEMS] [SECONDS]   (prints one JSON line per run)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/cnclip-search-e2e}
items=${2:-100000}
seconds=${3:-60}
arch=ViT-B-16@RoBERTa-wwm-ext-base-chinese
vocab=$(realpath ../shared/reference/vocab.txt)
dotnet build -c Release src/ChineseClip.SearchService >/dev/null
dotnet build -c Release src/ChineseClip.Cli >/dev/null
if [ ! -f "$work/synthetic/collection.json" ]; then
  dotnet run tests/Benchmarks/synthetic_collection.cs -- "$work" "$arch" "$vocab" "$items" >&2
fi
service=src/ChineseClip.SearchService/bin/Release/net10.0/linux-x64/ChineseClip.SearchService
cnclip="dotnet src/ChineseClip.Cli/bin/Release/net10.0/linux-x64/cnclip.dll"
run() { # $1 = max batch
  "$service" --Kestrel:Endpoints:http:Url=http://127.0.0.1:5399 "--Search:Directory=$work" "--Search:MaxBatch=$1" \
    --Logging:LogLevel:Default=Warning >"$work/service.log" 2>&1 &
  local pid=$!
  for _ in $(seq 120); do curl -sf http://127.0.0.1:5399/health >/dev/null && break; sleep 1; done
  for c in 1 16; do
    $cnclip bench serve --url http://127.0.0.1:5399 --collection synthetic --concurrency $c --seconds "$seconds" \
      | sed "s/^{/{\"max_batch\":$1,/"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run 32
run 1
