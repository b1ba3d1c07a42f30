#!/usr/bin/env bash
# Side by side, one thread: `cnclip bench preprocess` exact and --fast against the official Pillow pipeline
# (tests/Benchmarks/official_preprocess.py) and Pillow with Image.draft (its --fast), on one imgs.tsv.
#
#   tests/Benchmarks/preprocess-fast-vs-official.sh IMGS.tsv [RES] [ROUNDS]
#
# IMGS.tsv e.g. from tests/Benchmarks/make_jpeg_tsv.py (200 JPEGs 800x600 .. 1600x1200, quality 90). Each of the
# four sides runs ROUNDS (default 3) times, the sides taking turns (the first side rotates each round) so that
# background load hits all of them; each run reports the median of 3 passes over the file, and the summary takes the
# median of a side's runs. Environment: CNCLIP (default: the Release build, built if absent), PYTHON (default
# /usr/bin/python3, with Pillow and numpy). Every run's JSON line goes to stderr; one summary JSON line to stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
input=${1:?usage: $0 IMGS.tsv [RES] [ROUNDS]}
res=${2:-224}
rounds=${3:-3}
python=${PYTHON:-/usr/bin/python3}
source "$here/find-cnclip.sh"
find_cnclip Release

sides=(exact fast pillow draft)
run_side() {
    case $1 in
        exact) "${cnclip[@]}" bench preprocess --input "$input" --res "$res" --threads 1 --rounds 3 ;;
        fast) "${cnclip[@]}" bench preprocess --input "$input" --res "$res" --threads 1 --rounds 3 --fast ;;
        pillow) "$python" "$here/official_preprocess.py" --input "$input" --res "$res" --rounds 3 ;;
        draft) "$python" "$here/official_preprocess.py" --input "$input" --res "$res" --rounds 3 --fast ;;
    esac
}
results=()
for ((round = 0; round < rounds; round++)); do
    for ((k = 0; k < 4; k++)); do
        side=${sides[$(((k + round) % 4))]}
        line=$(run_side "$side")
        echo "$side $line" >&2
        results+=("$side $line")
    done
done
printf '%s\n' "${results[@]}" | "$python" -c '
import json, statistics, sys
runs = {}
for line in sys.stdin:
    side, text = line.split(" ", 1)
    runs.setdefault(side, []).append(json.loads(text)["images_per_s"])
m = {side: statistics.median(v) for side, v in runs.items()}
print(json.dumps({"images_per_s_median": m, "rounds": len(runs["fast"]),
                  "fast_vs_pillow_exact": round(m["fast"] / m["pillow"], 2), "fast_vs_pillow_draft": round(m["fast"] / m["draft"], 2),
                  "exact_vs_pillow_exact": round(m["exact"] / m["pillow"], 2)}))'
