#!/usr/bin/env bash
# Side by side: `cnclip bench encode` with TorchSharp against ONNX Runtime (CPU), same architecture, batch and threads,
# on this machine. The ONNX side times the seeded random model's export (made once, cached under the temp folder).
#
#   tests/Benchmarks/encode-onnx-vs-torch.sh [ARCH] [BATCH] [THREADS] [ROUNDS]
#
# Defaults: ViT-B-16@RoBERTa-wwm-ext-base-chinese, batch 16, 2 threads, 3 rounds. Each round runs both sides, the
# first side alternating between rounds so that background load hits both; the summary takes the median over rounds
# of each run's median and the ratio onnx / torch. CNCLIP overrides the cnclip command (default: the Debug build).
# Prints one JSON summary line on stdout; every run's own JSON line goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
arch=${1:-ViT-B-16@RoBERTa-wwm-ext-base-chinese}
batch=${2:-16}
threads=${3:-2}
rounds=${4:-3}
source "$here/find-cnclip.sh"
find_cnclip

# The export happens before the timed rounds (its cost is reported by the first onnx run only).
"${cnclip[@]}" bench encode --backend onnx --arch "$arch" --batch 1 --threads "$threads" --rounds 1 >&2

runs=()
for ((i = 0; i < rounds; i++)); do
    if ((i % 2 == 0)); then order=(torch onnx); else order=(onnx torch); fi
    for side in "${order[@]}"; do
        line=$("${cnclip[@]}" bench encode --backend "$side" --arch "$arch" --batch "$batch" --threads "$threads")
        echo "$line" >&2
        runs+=("$line")
    done
done

printf '%s\n' "${runs[@]}" | python3 -c '
import json, statistics, sys, platform
runs = [json.loads(l) for l in sys.stdin if l.strip()]
def med(side, key): return statistics.median(r[key] for r in runs if r["backend"] == side)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
family = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("cpu family")), "?")
out = {"bench": "encode-onnx-vs-torch", "arch": runs[0]["arch"], "batch": runs[0]["batch"], "threads": runs[0]["threads"],
       "rounds": len(runs) // 2, "cpu": f"{cpu} (family {family})"}
for key in ("images_per_s", "texts_per_s"):
    t, o = med("torch", key), med("onnx", key)
    out[f"torch_{key}"], out[f"onnx_{key}"], out[f"onnx_over_torch_{key}"] = t, o, round(o / t, 3)
print(json.dumps(out))
'
