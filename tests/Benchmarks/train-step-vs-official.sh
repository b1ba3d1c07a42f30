#!/usr/bin/env bash
# Side by side: `cnclip bench train-step` against the same step run by the official Chinese-CLIP code on Python
# PyTorch (tests/Benchmarks/official_train_step.py), on this machine, CPU.
#
#   tests/Benchmarks/train-step-vs-official.sh OFFICIAL_SRC [ROUNDS]
#
# OFFICIAL_SRC: the folder holding the official `cn_clip` package (fetched separately, never committed here), e.g.
#   git clone https://github.com/OFA-Sys/Chinese-CLIP /tmp/cn_clip_src  ->  /tmp/cn_clip_src
# ROUNDS (default 3): each config runs ROUNDS times per side, the two sides alternating (which side goes first
# alternates too) so that background noise hits both; the summary takes the median of the per-run medians.
#
# Environment:
#   CNCLIP    the cnclip command (default: the Debug build under src/ChineseClip.Cli/bin, built if absent)
#   PYTHON    an interpreter with torch (default /usr/bin/python3, Debian's python3-torch)
#   OFFICIAL_MODES  which OpenBLAS kernel choices the peer runs with, each a side of its own (default "env flags self"):
#             env: OPENBLAS_CORETYPE as this environment sets it; flags: picked from the CPU flags (OpenBLAS 0.3.21
#             does not know newer CPUs and may fall back to slow kernels); self: OPENBLAS_CORETYPE unset, OpenBLAS
#             detects the CPU itself. Modes that give the same setting run once. Each result names the core used.
#   CONFIGS   comma-separated config names to run (default all: ViT-B-16@RoBERTa-wwm-ext-base-chinese,small-224)
#   THREADS   intra-op threads for every config (default: each config's own)
#
# Prints, per config, one JSON line on stdout; every raw run's JSON line goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
official_src=${1:?usage: $0 OFFICIAL_SRC [ROUNDS]}
rounds=${2:-3}
official_src=$(cd "$official_src" && pwd)
[ -d "$official_src/cn_clip" ] || { echo "$0: no cn_clip package in $official_src" >&2; exit 2; }
python=${PYTHON:-/usr/bin/python3}

source "$here/find-cnclip.sh"
find_cnclip

# The same allocator on both sides: cnclip re-executes itself with jemalloc preloaded when the system has it, with
# MALLOC_CONF defaulting to NativeAllocator.DefaultJemallocConfig, so the Python side gets the same preload and options
# (glibc malloc keeps freed libtorch blocks and inflates RSS and page faults).
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
python_env=()
if [ -f "$jemalloc" ]; then
    python_env+=("LD_PRELOAD=$jemalloc${LD_PRELOAD:+:$LD_PRELOAD}" "MALLOC_CONF=${MALLOC_CONF:-muzzy_decay_ms:-1}")
fi

flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
case " $flags " in
    *" avx512_bf16 "*) flags_core=Cooperlake ;;
    *" avx512f "*) flags_core=SkylakeX ;;
    *" avx2 "*) flags_core=Haswell ;;
    *) flags_core= ;;
esac
declare -A mode_core=() # mode -> OPENBLAS_CORETYPE value ("" = unset)
modes=()
seen=()
for mode in ${OFFICIAL_MODES:-env flags self}; do
    case $mode in
        env) core=${OPENBLAS_CORETYPE:-} ;;
        flags) core=$flags_core ;;
        self) core= ;;
        *) echo "$0: OFFICIAL_MODES: unknown mode '$mode' (env, flags, self)" >&2; exit 2 ;;
    esac
    [[ " ${seen[*]-} " == *" [$core] "* ]] && continue
    seen+=("[$core]")
    modes+=("$mode")
    mode_core[$mode]=$core
done
cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
cpu_family=$(sed -n 's/^cpu family[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
echo "CPU: $cpu_model (family $cpu_family), $(nproc) cores; peer modes: $(for m in "${modes[@]}"; do printf '%s=%s ' "$m" "${mode_core[$m]:-unset}"; done)" >&2

# name|arch|batch|steps|threads
all_configs=(
    "ViT-B-16@RoBERTa-wwm-ext-base-chinese|ViT-B-16@RoBERTa-wwm-ext-base-chinese|4|3|2"
    "small-224|$here/small-224.json|16|5|2"
)
configs=()
for c in "${all_configs[@]}"; do
    IFS='|' read -r name arch batch steps threads <<<"$c"
    [ -n "${CONFIGS:-}" ] && [[ ",$CONFIGS," != *",$name,"* ]] && continue
    configs+=("$name|$arch|$batch|$steps|${THREADS:-$threads}")
done
[ ${#configs[@]} -gt 0 ] || { echo "$0: CONFIGS=$CONFIGS names no config" >&2; exit 2; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT

run_side() { # side arch batch steps threads -> appends {"side":..,"config":..,"result":..} to $results
    local side=$1 cfg=$2 arch=$3 batch=$4 steps=$5 threads=$6 out line
    local args=(--arch "$arch" --batch "$batch" --steps "$steps" --threads "$threads")
    if [ "$side" = cnclip ]; then
        out=$("${cnclip[@]}" bench train-step "${args[@]}") || { echo "cnclip failed on $cfg" >&2; return 0; }
    else
        local core=${mode_core[${side#official-}]} core_env=(-u OPENBLAS_CORETYPE)
        [ -n "$core" ] && core_env+=("OPENBLAS_CORETYPE=$core")
        out=$(env "${core_env[@]}" "${python_env[@]}" "$python" "$here/official_train_step.py" --official-src "$official_src" "${args[@]}") \
            || { echo "official_train_step.py failed on $cfg" >&2; return 0; }
    fi
    line=$(printf '%s\n' "$out" | grep '^{' | tail -n 1)
    echo "$side $cfg: $line" >&2
    [ -n "$line" ] && printf '{"side":"%s","config":"%s","result":%s}\n' "$side" "$cfg" "$line" >>"$results"
    return 0
}

for cfg_line in "${configs[@]}"; do
    IFS='|' read -r cfg arch batch steps threads <<<"$cfg_line"
    for ((r = 1; r <= rounds; r++)); do
        peers=()
        for m in "${modes[@]}"; do peers+=("official-$m"); done
        if ((r % 2)); then order=(cnclip "${peers[@]}"); else order=("${peers[@]}" cnclip); fi
        for side in "${order[@]}"; do run_side "$side" "$cfg" "$arch" "$batch" "$steps" "$threads"; done
    done
done

"$python" - "$results" "$rounds" "$cpu_model" "$cpu_family" "${configs[@]}" <<'EOF'
import json, statistics, sys
path, rounds, cpu, family, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
runs = [json.loads(l) for l in open(path) if l.strip()]
def med(results, field):
    values = [x[field] for x in results if x.get(field) is not None]
    return round(statistics.median(values), 2) if values else None
def ratio(a, b):
    return round(a / b, 3) if a and b else None
for c in configs:
    name, arch, batch, steps, threads = c.split("|")
    by_side = {}
    for r in runs:
        if r["config"] == name:
            by_side.setdefault(r["side"], []).append(r["result"])
    ours = by_side.get("cnclip", [])
    line = {
        "config": name, "batch": int(batch), "steps": int(steps), "threads": int(threads), "rounds": rounds,
        "cpu": cpu, "cpu_family": family,
        "cnclip_ms_per_step": med(ours, "ms_per_step_median"),
        "cnclip_cpu_ms_per_step": med(ours, "cpu_ms_per_step_median"),
        "cnclip_medians": [x["ms_per_step_median"] for x in ours],
        "cnclip_peak_rss_mb": max((x["peak_rss_mb"] for x in ours), default=None),
        "cnclip_allocator": ours[0].get("allocator") if ours else None,
        "cnclip_malloc_conf": ours[0].get("malloc_conf") if ours else None,
        "official": {},
    }
    for side, results in sorted(by_side.items()):
        if not side.startswith("official-"):
            continue
        wall, cpu_ms = med(results, "ms_per_step_median"), med(results, "cpu_ms_per_step_median")
        line["official"][side[len("official-"):]] = {
            "openblas_core": results[0].get("openblas_core"),
            "ms_per_step": wall, "cpu_ms_per_step": cpu_ms,
            "medians": [x["ms_per_step_median"] for x in results],
            "ratio_cnclip_over_official": ratio(line["cnclip_ms_per_step"], wall),
            "cpu_ratio_cnclip_over_official": ratio(line["cnclip_cpu_ms_per_step"], cpu_ms),
            "peak_rss_mb": max((x["peak_rss_mb"] for x in results), default=None),
            "torch": results[0].get("torch_version"), "allocator": results[0].get("allocator"),
            "malloc_conf": results[0].get("malloc_conf"),
        }
    print(json.dumps(line))
EOF
