#!/usr/bin/env bash
# One device call: the CUDA checks, then the timed ViT-B-16 fine-tuning step (batch 128, context 52, bf16) of cnclip and
# of the transformers peer (peer.py) on the same card, then one JSON summary line. Run from the repository root on a
# lent GPU machine (PyTorch with CUDA in python3, no .NET SDK) with .gpu/ carried (see bench/gpu/README.md).
# CNCLIP_LIBTORCHSHARP must name a libLibTorchSharp.so built against that machine's PyTorch; this repository holds
# neither such a binary nor a way to build one.
set -uo pipefail

package=${CNCLIP_PACKAGE:-.gpu/cnclip-linux-x64.tar.xz}
fixtures=${CNCLIP_FIXTURES:-.gpu/official-tiny}
# Logs go to a scratch folder and come back packed as one file (the device tool returns at most 8 files from $OUT).
out=/tmp/cnclip-gpu-out
rm -rf "$out"
batch=${BATCH:-128}
steps=${STEPS:-10}
rounds=${ROUNDS:-3}
train_epochs=${TRAIN_EPOCHS:-10}
mkdir -p "$out"

fail() { echo "run.sh: $*" >&2; exit 2; }
[ -n "${CNCLIP_LIBTORCHSHARP:-}" ] || fail "CNCLIP_LIBTORCHSHARP is not set: it must name a libLibTorchSharp.so built against this machine's PyTorch"
[ -f "$CNCLIP_LIBTORCHSHARP" ] || fail "CNCLIP_LIBTORCHSHARP=$CNCLIP_LIBTORCHSHARP: file not found"
[ -f "$package" ] || fail "$package: not found (publish and pack cnclip as bench/gpu/README.md says, and carry .gpu)"
[ -f "$fixtures/parity.pt" ] || fail "$fixtures/parity.pt: not found (copy the official-tiny fixture into $fixtures)"

if [ -z "${CNCLIP_LIBTORCH_DIR:-}" ]; then
  CNCLIP_LIBTORCH_DIR=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || fail "python3 cannot import torch (or set CNCLIP_LIBTORCH_DIR)"
fi
export CNCLIP_LIBTORCH_DIR
# NCCL comes with PyTorch's pip dependencies (nvidia-nccl-cu*); libtorch_cuda finds it by RUNPATH, our P/Invoke by this.
nccl_lib=$(python3 -c 'import os, nvidia.nccl as n; print(os.path.join(list(n.__path__)[0], "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="${nccl_lib:+$nccl_lib:}${LD_LIBRARY_PATH:-}"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 PYTHONUNBUFFERED=1

app=/tmp/cnclip-app
rm -rf "$app" && mkdir -p "$app"
python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$package" "$app" || fail "cannot unpack $package"
cnclip="$app/publish/cnclip"
[ -x "$cnclip" ] || fail "$cnclip: not in the package"

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$out/gpu.csv" 2>&1 || true

# Peak device memory of a command, sampled with nvidia-smi every 100 ms (cnclip has no CUDA memory API to ask).
sampled() {
  local name=$1; shift
  (while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null; sleep 0.1; done) > "$out/$name.mem" &
  local sampler=$!
  "$@" > "$out/$name.json" 2> "$out/$name.err"
  local rc=$?
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  echo "$rc" > "$out/$name.rc"
  echo "== $name: exit $rc"; tail -n 5 "$out/$name.err"
}

[ "${CHECKS:-1}" = 0 ] || sampled check timeout 240 "$cnclip" bench gpu --check --fixtures "$fixtures"
# The two sides alternate, ROUNDS times each; the summary takes the median of the rounds' medians.
for round in $(seq 1 "$rounds"); do
  sampled "cnclip-$round" timeout 180 "$cnclip" bench gpu --batch "$batch" --context-length 52 --precision bf16 --steps "$steps"
  sampled "peer-$round" timeout 180 python3 bench/gpu/peer.py --batch "$batch" --context-length 52 --precision bf16 --steps "$steps"
done

# Gradient checkpointing's price and saving on the same step (CKPT=0 skips it).
[ "${CKPT:-1}" = 0 ] || sampled ckpt-cnclip timeout 180 "$cnclip" bench gpu --batch "$batch" --context-length 52 --precision bf16 --steps "$steps" --grad-checkpointing

# The trainer end to end on the device: the demo's stage 1 (tiny ViT from random init) for TRAIN_EPOCHS epochs with
# device: cuda and precision: bf16, and the same on the CPU in fp32, each ending with validation recall and best.pt.
demo=/tmp/cnclip-demo
rm -rf "$demo"
if [ "$train_epochs" = 0 ]; then
  echo "== training skipped (TRAIN_EPOCHS=0)"
elif "$cnclip" make-demo-data --output "$demo" > "$out/demo.log" 2>&1; then
  for side in cuda:bf16 cpu:fp32; do
    device=${side%%:*} precision=${side##*:}
    sed -e "s/^max_epochs: .*/max_epochs: $train_epochs/" -e "s/^name: .*/name: smoke-$device/" "$demo/train-stage1.yaml" > "$demo/smoke-$device.yaml"
    printf 'device: %s\nprecision: %s\n' "$device" "$precision" >> "$demo/smoke-$device.yaml"
    start=$EPOCHREALTIME
    (cd "$demo" && timeout 240 "$cnclip" train --config "smoke-$device.yaml") > "$out/train-$device.log" 2>&1
    echo "$? $(awk "BEGIN { print $EPOCHREALTIME - $start }")" > "$out/train-$device.rc"
    cp "$demo/runs/smoke-$device/metrics.jsonl" "$out/train-$device.metrics.jsonl" 2>/dev/null
    [ -f "$demo/runs/smoke-$device/checkpoints/best.pt" ] && echo yes > "$out/train-$device.best" || echo no > "$out/train-$device.best"
    echo "== train $device ($precision): exit $(cut -d' ' -f1 "$out/train-$device.rc")"; tail -n 2 "$out/train-$device.log"
  done
else
  echo "== make-demo-data failed"; tail -n 3 "$out/demo.log"
fi

python3 - "$out" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
FLOP_PER_SAMPLE = 80e9      # ViT-B/16 + RoBERTa-base, forward and backward (issue 6)
PEAK_BF16 = 989e12          # H100/H200 SXM dense bf16, FLOP/s

def load(name):
    if not os.path.exists(os.path.join(out, name + ".json")):
        return {"error": "not run"}
    try:
        r = json.loads(open(os.path.join(out, name + ".json")).read().strip().splitlines()[-1])
    except Exception as e:
        err = open(os.path.join(out, name + ".err")).read().strip().splitlines()
        r = {"error": err[-1] if err else f"no output ({e})"}
    try:
        r["nvidia_smi_peak_mib"] = max(int(x) for x in open(os.path.join(out, name + ".mem")).read().split() if x.isdigit())
    except ValueError:
        r["nvidia_smi_peak_mib"] = None
    if "samples_per_s" in r:
        r["mfu"] = round(r["samples_per_s"] * FLOP_PER_SAMPLE / PEAK_BF16, 4)
    return r

def rounds(side):
    runs = [load(f) for f in sorted(n[:-5] for n in os.listdir(out) if n.startswith(side + "-") and n.endswith(".json"))]
    timed = [r for r in runs if "ms_per_step_median" in r]
    if not timed:
        return {"error": runs[0].get("error") if runs else "not run", "rounds": len(runs)}
    ms = statistics.median(r["ms_per_step_median"] for r in timed)
    batch = timed[0]["batch"]
    return {"rounds": len(runs), "ms_per_step_median_of_rounds": round(ms, 2), "samples_per_s": round(batch * 1000 / ms, 2),
            "round_medians_ms": [r["ms_per_step_median"] for r in timed], "mfu": round(batch * 1000 / ms * FLOP_PER_SAMPLE / PEAK_BF16, 4),
            "nvidia_smi_peak_mib": max((r["nvidia_smi_peak_mib"] or 0) for r in timed), "last_round": timed[-1]}

def train(device):
    try:
        rc, seconds = open(os.path.join(out, f"train-{device}.rc")).read().split()
    except (OSError, ValueError):
        return "not run"
    r = {"exit": int(rc), "seconds": round(float(seconds), 1), "best_pt": open(os.path.join(out, f"train-{device}.best")).read().strip()}
    try:
        valid = [json.loads(l) for l in open(os.path.join(out, f"train-{device}.metrics.jsonl")) if '"valid"' in l]
        r["epochs"] = valid[-1]["epoch"]
        r["last_t2i"], r["last_i2t"] = valid[-1]["t2i"], valid[-1]["i2t"]
    except (OSError, IndexError, KeyError, ValueError) as e:
        r["metrics"] = f"unreadable ({e})"
    return r

check, ours, peer = load("check"), rounds("cnclip"), rounds("peer")
summary = {
    "gpu": open(os.path.join(out, "gpu.csv")).read().strip().splitlines()[-1:],
    "checks": check.get("checks", check.get("error")),
    "cnclip": ours, "transformers": peer,
    "throughput_ratio": round(ours["samples_per_s"] / peer["samples_per_s"], 3) if "samples_per_s" in ours and "samples_per_s" in peer else None,
    "train_demo_stage1": {"cuda_bf16": train("cuda"), "cpu_fp32": train("cpu")},
    "cnclip_grad_checkpointing": {k: v for k, v in load("ckpt-cnclip").items() if k in ("ms_per_step_median", "samples_per_s", "nvidia_smi_peak_mib", "error")},
}
open(os.path.join(out, "summary.json"), "w").write(json.dumps(summary, indent=1))
print(json.dumps(summary))
PY
if [ -n "${OUT:-}" ]; then
  cp "$out/summary.json" "$OUT/summary.json" 2>/dev/null
  tar -C "$out" -czf "$OUT/gpu-logs.tar.gz" .
fi
