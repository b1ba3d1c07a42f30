#!/usr/bin/env bash
# The training issue's demo goal, measured: fresh demo data, stage 1 trained from random init with the generated
# config, wall time of the whole `cnclip train` run and the validation recall it reached. Prints one JSON line.
# Usage: tests/Benchmarks/demo-goal.sh [WORKDIR]   (Release build of cnclip; WORKDIR defaults to a temp folder)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d)}
dotnet build "$root/src/ChineseClip.Cli" -c Release -v q -nologo >/dev/null
cnclip="$root/src/ChineseClip.Cli/bin/Release/net10.0/linux-x64/cnclip.dll"
rm -rf "$work/demo" && dotnet "$cnclip" make-demo-data --output "$work/demo" >/dev/null 2>&1
load_before=$(cut -d' ' -f1 /proc/loadavg)
start=$(date +%s.%N)
dotnet "$cnclip" train --config "$work/demo/train-stage1.yaml" > "$work/stage1.log" 2>&1
end=$(date +%s.%N)
python3 - "$work/stage1.log" "$start" "$end" "$load_before" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, re, sys
log, start, end, before, after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [tuple(map(float, m.groups())) for m in
        (re.search(r"Validation epoch (\d+): text->image R@1/5/10 ([\d.]+)/([\d.]+)/([\d.]+)", l) for l in open(log)) if m]
first = next((int(e) for e, r1, _, _ in rows if r1 >= 50), None)
e, r1, r5, r10 = rows[-1]
print(json.dumps({"bench": "demo-goal", "seconds": round(end - start, 1), "epochs": int(e), "t2i_r1": r1, "t2i_r5": r5,
                  "t2i_r10": r10, "best_t2i_r1": max(r[1] for r in rows), "first_epoch_r1_50": first,
                  "goal": "t2i R@1 >= 50 within 300 s", "met": r1 >= 50 and end - start <= 300,
                  "load_1min_before_after": [before, after]}))
PY
