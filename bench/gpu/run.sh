#!/usr/bin/env bash
# One device call, under a hard time budget: (a) LibTorchSharp built on the machine (when .gpu/build-libtorchsharp.sh is
# carried), (b) `cnclip bench gpu --check`, (c) batch 128: the step as built against each speed switch and all of them,
# alternating with the transformers peer (peer.py), (d) a batch sweep on both sides up to the largest batch the memory
# samples predict, (e) gradient checkpointing at batch 128 and its largest batch, (f) the kernels of one step: the peer's
# under torch.profiler (in its last batch-128 round) and ours under ncu. Each phase checks the time left against its
# estimate (bench/gpu/README.md) and is skipped, with a line saying so, when it would not fit; each command has a
# timeout that ends before DEADLINE. The summary (report.py) is printed last and written to $OUT.
# Run from the repository root on a lent GPU machine (PyTorch with CUDA in python3, no .NET SDK) with .gpu/ carried.
set -uo pipefail

t0=$SECONDS
deadline=${DEADLINE:-520}   # seconds from the start by which the script has printed its summary
reserve=12                  # kept for the summary and packing the logs
package=${CNCLIP_PACKAGE:-.gpu/cnclip-linux-x64.tar.xz}
fixtures=${CNCLIP_FIXTURES:-.gpu/official-tiny}
steps=${STEPS:-10}
rounds=${ROUNDS:-2}
variants=${VARIANTS:-base,linear3d,select,qkv,silu,patchmm,all}
out=/tmp/cnclip-gpu-out     # logs; they come back packed (the device tool returns at most 8 files from $OUT)
rm -rf "$out" && mkdir -p "$out"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 PYTHONUNBUFFERED=1

left() { echo $((deadline - (SECONDS - t0))); }
note() { echo "$*" | tee -a "$out/phases.log"; }
fits() { [ $(($(left) - reserve)) -ge "$1" ]; }
# A command's limit: twice its estimate, at least 30 s more, never past the deadline.
limit() { local e=$1 l=$(($(left) - reserve)) t; t=$((e * 2 > e + 30 ? e * 2 : e + 30)); echo $((t < l ? t : l)); }

# run NAME ESTIMATE COMMAND...: stdout to NAME.json, stderr to NAME.err, exit code, wall seconds and the device memory
# sampled by nvidia-smi every 100 ms (context included, the same way for both sides: cnclip has no CUDA memory API).
run() {
  local name=$1 est=$2; shift 2
  if ! fits "$est"; then note "$name: skipped (estimated ${est} s, $(($(left) - reserve)) s left)"; return 1; fi
  local start=$SECONDS sampler=
  if [ "$gpu" = 1 ]; then
    (while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null; sleep 0.1; done) > "$out/$name.mem" &
    sampler=$!
  fi
  timeout -k 5 "$(limit "$est")" "$@" > "$out/$name.json" 2> "$out/$name.err"
  local rc=$?
  [ -n "$sampler" ] && { kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; }
  echo "$rc" > "$out/$name.rc"
  echo "$((SECONDS - start))" > "$out/$name.sec"
  note "$name: exit $rc in $((SECONDS - start)) s (estimated $est s)$([ "$rc" = 124 ] && echo ', TIMED OUT')"
  [ "$rc" = 0 ] || tail -n 3 "$out/$name.err"
  return "$rc"
}

summary() {
  python3 bench/gpu/report.py summary "$out" > "$out/summary.out" 2>&1 || echo "report.py failed" >> "$out/summary.out"
  if [ -n "${OUT:-}" ]; then
    cp "$out/summary.json" "$out/summary.txt" "$OUT/" 2>/dev/null
    tar -C "$out" -czf "$OUT/gpu-logs.tar.gz" .
  fi
  echo "== run.sh: $((SECONDS - t0)) s of ${deadline}"
  cat "$out/summary.out"
}

# Preflight: the card, torch, NCCL, the package.
gpu=0
if nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$out/gpu.csv" 2>&1; then
  gpu=1
  total_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -n 1)
else
  echo "no GPU" >> "$out/gpu.csv"
  total_mib=0
  note "no NVIDIA GPU here (nvidia-smi failed): the phases that need CUDA are skipped"
fi
if [ -z "${CNCLIP_LIBTORCH_DIR:-}" ]; then
  CNCLIP_LIBTORCH_DIR=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null) \
    || { note "python3 cannot import torch and CNCLIP_LIBTORCH_DIR is not set"; CNCLIP_LIBTORCH_DIR=; }
fi
export CNCLIP_LIBTORCH_DIR
# NCCL comes with PyTorch's pip dependencies (nvidia-nccl-cu*); libtorch_cuda finds it by RUNPATH, our P/Invoke by this.
nccl_lib=$(python3 -c 'import os, nvidia.nccl as n; print(os.path.join(list(n.__path__)[0], "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="${nccl_lib:+$nccl_lib:}${LD_LIBRARY_PATH:-}"
app=/tmp/cnclip-app
rm -rf "$app" && mkdir -p "$app"
cnclip="$app/publish/cnclip"
if [ -f "$package" ] && python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$package" "$app" && [ -x "$cnclip" ]; then
  note "package: $package unpacked in $((SECONDS - t0)) s"
else
  note "package: $package missing or not unpackable (publish and pack cnclip as bench/gpu/README.md says, and carry .gpu): cnclip phases skipped"
  cnclip=
fi

# (a) LibTorchSharp: given, or built here from the carried TorchSharp sources.
if [ -n "${CNCLIP_LIBTORCHSHARP:-}" ]; then
  [ -f "$CNCLIP_LIBTORCHSHARP" ] && note "(a) LibTorchSharp: given, $CNCLIP_LIBTORCHSHARP" || { note "(a) LibTorchSharp: $CNCLIP_LIBTORCHSHARP not found"; cnclip=; }
elif [ -f .gpu/build-libtorchsharp.sh ]; then
  export CNCLIP_LIBTORCHSHARP=/tmp/cnclip-native/libLibTorchSharp.so
  mkdir -p /tmp/cnclip-native
  if fits 40; then
    start=$SECONDS
    timeout -k 5 "$(limit 60)" bash .gpu/build-libtorchsharp.sh "$CNCLIP_LIBTORCHSHARP" > "$out/libtorchsharp-build.log" 2>&1
    note "(a) LibTorchSharp build: exit $? in $((SECONDS - start)) s (estimated 40 s)"
    tail -n 4 "$out/libtorchsharp-build.log"
  else
    note "(a) LibTorchSharp build: skipped (no time)"
  fi
  [ -f "$CNCLIP_LIBTORCHSHARP" ] || { note "(a) no LibTorchSharp: cnclip phases skipped"; cnclip=; }
else
  note "(a) LibTorchSharp: CNCLIP_LIBTORCHSHARP is not set and .gpu/build-libtorchsharp.sh is not carried: cnclip phases skipped"
  cnclip=
fi
export CNCLIP_LIBTORCHSHARP

# (b) the CUDA checks; without a GPU it still shows that the package loads libtorch (and says there is no CUDA device).
[ -n "$cnclip" ] && [ -f "$fixtures/parity.pt" ] && run check 30 "$cnclip" bench gpu --check --fixtures "$fixtures"
[ -f "$fixtures/parity.pt" ] || note "(b) checks: skipped, $fixtures/parity.pt not found"
# cnclip that cannot even start (its libtorch or LibTorchSharp refused) makes every later cnclip phase pointless: with
# STOP_WITHOUT_CNCLIP=1 the call ends here, so that little device time is spent before the cause is fixed.
if [ -n "$cnclip" ] && grep -q "internal error" "$out/check.err" 2>/dev/null && ! grep -q '"checks"' "$out/check.json" 2>/dev/null; then
  note "(b) cnclip does not start: $(head -c 2000 "$out/check.err")"
  if [ "${STOP_WITHOUT_CNCLIP:-0}" = 1 ]; then summary; exit 1; fi
  cnclip=
fi
[ -n "$cnclip" ] || note "(b) checks: skipped, no cnclip"

# (c) batch 128: every variant in one cnclip process (they take turns), alternating with the peer; phases and the
# peer's kernel profile in the last round.
phase_c() {
for r in $(seq 1 "$rounds"); do
  last=$([ "$r" = "$rounds" ] && echo 1 || echo 0)
  [ -n "$cnclip" ] && run "cnclip-128-r$r" 45 "$cnclip" bench gpu --batch 128 --context-length 52 --precision bf16 --variants "$variants" \
    --steps "$steps" --warmup 3 --rounds 1 --phase-steps $((last * 5))
  run "peer-128-r$r" 25 python3 bench/gpu/peer.py --batch 128 --context-length 52 --precision bf16 --steps "$steps" \
    --phase-steps $((last * 5)) --profile-top $((last * 15))
done
best=$(python3 bench/gpu/report.py best "$out")
note "(c) fastest padded variant: $best"
}

# (d) the batch sweep with the fastest variant, both sides, then the largest batch the two points predict.
sweep() { # SIDE BATCH
  local side=$1 b=$2 name; name=$(printf 'sweep-%s-%05d' "$1" "$2")
  if [ "$side" = cnclip ]; then
    [ -n "$cnclip" ] && run "$name" $((14 + b * 16 / 1000)) "$cnclip" bench gpu --batch "$b" --context-length 52 --precision bf16 --variants "$best" \
      --steps 5 --warmup 2 --phase-steps 0
  else
    run "$name" $((20 + b * 18 / 1000)) python3 bench/gpu/peer.py --batch "$b" --context-length 52 --precision bf16 --steps 5 --warmup 2 --phase-steps 0
  fi
}
phase_d() {
for b in 256 512; do sweep cnclip $b; sweep peer $b; done
for side in cnclip peer; do
  big=$(python3 bench/gpu/report.py largest "$out" "$side" "$total_mib")
  if [ -n "$big" ] && [ "$big" -gt 512 ]; then
    note "(d) $side: largest batch predicted from the sweep's memory: $big"
    sweep "$side" "$big"
    # Not timed (out of memory, or it failed otherwise): once more at 85%.
    grep -q '"ms_per_step_median"' "$out/$(printf 'sweep-%s-%05d' "$side" "$big").json" 2>/dev/null || sweep "$side" $((big * 85 / 100 / 32 * 32))
  else
    note "(d) $side: no largest-batch prediction (the sweep's two points are missing)"
  fi
done
}

# (e) gradient checkpointing at batch 128, then the largest batch its memory predicts, capped by the time left
# (keeping ~75 s for (f)), and once more from the line through the two points when that predicts a larger batch.
# The largest batch whose two steps (one warm-up) plus ~20 s of start-up fit the time left less ~75 s for (f), at the
# batch-128 run's per-sample time.
ckpt_by_time() {
  python3 -c 'import sys; left, ms = float(sys.argv[1]), float(sys.argv[2]); print(int((left - 75 - 20) / 2 / (ms / 128 / 1000)) // 32 * 32)' "$(($(left) - reserve))" "$ms"
}
ckpt_run() { # BATCH, timed at the batch-128 run's per-sample speed
  [ "$1" -gt 128 ] || return 0
  local est; est=$(python3 -c 'import sys; print(int(20 + 2 * float(sys.argv[1]) * float(sys.argv[2]) / 128 / 1000))' "$1" "$ms")
  run "$(printf 'ckpt-cnclip-%05d' "$1")" "$est" "$cnclip" bench gpu --batch "$1" --context-length 52 --precision bf16 --variants "$best" \
    --grad-checkpointing --steps 1 --warmup 1 --phase-steps 0
}
phase_e() {
if [ -n "$cnclip" ]; then
  run ckpt-cnclip-00128 25 "$cnclip" bench gpu --batch 128 --context-length 52 --precision bf16 --variants "$best" --grad-checkpointing \
    --steps 5 --warmup 2 --phase-steps 0
  big=$(python3 bench/gpu/report.py ckpt-largest "$out" "$total_mib")
  ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["variants"][0]["ms_per_step_median"])' "$out/ckpt-cnclip-00128.json" 2>/dev/null)
  if [ -n "$big" ] && [ -n "$ms" ]; then
    by_time=$(ckpt_by_time)
    note "(e) checkpointing: largest batch predicted from memory $big, the time left allows $by_time"
    [ "$by_time" -lt "$big" ] && big=$by_time
    ckpt_run "$big"
    # The 128 point alone under-predicts (its memory is mostly fixed): once more from the line through the two points.
    again=$(python3 bench/gpu/report.py ckpt-largest "$out" "$total_mib")
    by_time=$(ckpt_by_time)
    [ -n "$again" ] && [ "$by_time" -lt "$again" ] && again=$by_time
    if [ -n "$again" ] && [ "$again" -gt $((big * 11 / 10)) ]; then
      note "(e) checkpointing: largest batch predicted from the runs so far $again (the time left allows $by_time)"
      ckpt_run "$again"
    fi
  fi
else
  note "(e) checkpointing: skipped (no cnclip)"
fi
}

# (f) our step's kernels under ncu (the peer's came with its last batch-128 round): first 100 kernels of the profiled
# step to price ncu's per-kernel cost, then as many of its kernels as the time left allows.
phase_f() {
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -n 1)
if [ -z "$cnclip" ]; then
  note "(f) ncu: skipped (no cnclip)"
elif [ -z "$ncu_bin" ]; then
  note "(f) ncu: not found on this machine"
else
  ncu_args=(--clock-control none --cache-control none --profile-from-start off --target-processes all --metrics gpu__time_duration.sum
    --csv --page raw --print-units base --print-kernel-base function)
  step_args=(bench gpu --batch 128 --context-length 52 --precision bf16 --variants "$best" --steps 1 --warmup 2 --phase-steps 0 --profile-step)
  if run ncu-probe 35 "$ncu_bin" "${ncu_args[@]}" --launch-count 100 --log-file "$out/ncu-probe.csv" "$cnclip" "${step_args[@]}"; then
    read -r cap per_kernel fixed < <(python3 bench/gpu/report.py ncu-cap "$out" "$(($(left) - reserve))")
    note "(f) ncu: ~${per_kernel} s per profiled kernel, ~${fixed} s fixed; up to $cap kernels fit"
    echo "$cap" > "$out/ncu-full.cap"
    if [ "${cap:-0}" -ge 300 ]; then
      est=$(python3 -c 'import sys; print(int(float(sys.argv[3]) + min(int(sys.argv[1]), 4000) * float(sys.argv[2])))' "$cap" "$per_kernel" "$fixed")
      run ncu-full "$est" "$ncu_bin" "${ncu_args[@]}" --launch-count "$cap" --log-file "$out/ncu-full.csv" "$cnclip" "${step_args[@]}"
    fi
  fi
fi
}

# Lowest priority: the peer's gradient checkpointing at batch 128.
phase_last() {
run ckpt-peer-00128 25 python3 bench/gpu/peer.py --batch 128 --context-length 52 --precision bf16 --steps 5 --warmup 2 --phase-steps 0 --grad-checkpointing
}

best=base
for phase in c d e f last; do
  if [ "$gpu" = 1 ]; then
    "phase_$phase"
  else
    case $phase in
      c) note "(c) batch 128, variants vs the peer: skipped, no CUDA device" ;;
      d) note "(d) batch sweep 256/512/largest: skipped, no CUDA device" ;;
      e) note "(e) gradient checkpointing: skipped, no CUDA device" ;;
      f) note "(f) kernel profiles (torch.profiler, ncu): skipped, no CUDA device" ;;
      last) note "peer gradient checkpointing: skipped, no CUDA device" ;;
    esac
  fi
done
summary
