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
#   CNCLIP    the cnclip command (default: the Debug build under src/ChineseClip.Cli/bin, else `dotnet run`)
#   PYTHON    an interpreter with torch (default /usr/bin/python3, Debian's python3-torch)
#   OFFICIAL_OPENBLAS_CORETYPE  auto (default): pick OpenBLAS's kernels from the CPU flags, because OpenBLAS 0.3.21
#             does not recognise newer Xeons and silently falls back to its SSE3 "Prescott" kernels (about 3x slower
#             SGEMM); none: leave OpenBLAS's own detection; anything else: passed as OPENBLAS_CORETYPE.
#
# Prints, per config, one JSON line on stdout; every raw run's JSON line goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
official_src=${1:?usage: $0 OFFICIAL_SRC [ROUNDS]}
rounds=${2:-3}
official_src=$(cd "$official_src" && pwd)
[ -d "$official_src/cn_clip" ] || { echo "$0: no cn_clip package in $official_src" >&2; exit 2; }
python=${PYTHON:-/usr/bin/python3}

if [ -n "${CNCLIP:-}" ]; then
    read -r -a cnclip <<<"$CNCLIP"
elif [ -x "$root/src/ChineseClip.Cli/bin/Debug/net10.0/linux-x64/cnclip" ]; then
    cnclip=("$root/src/ChineseClip.Cli/bin/Debug/net10.0/linux-x64/cnclip")
else
    cnclip=(dotnet run --project "$root/src/ChineseClip.Cli" -c Release --)
fi

# The same allocator on both sides: cnclip re-executes itself with jemalloc preloaded when the system has it, so the
# Python side gets it preloaded too (glibc malloc keeps freed libtorch blocks and inflates RSS and page faults).
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
python_env=()
if [ -f "$jemalloc" ]; then python_env+=("LD_PRELOAD=$jemalloc${LD_PRELOAD:+:$LD_PRELOAD}"); fi

coretype=${OFFICIAL_OPENBLAS_CORETYPE:-auto}
if [ "$coretype" = auto ]; then
    flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
    case " $flags " in
        *" avx512_bf16 "*) coretype=Cooperlake ;;
        *" avx512f "*) coretype=SkylakeX ;;
        *" avx2 "*) coretype=Haswell ;;
        *) coretype=none ;;
    esac
fi
if [ "$coretype" != none ]; then python_env+=("OPENBLAS_CORETYPE=$coretype"); fi

# name|arch|batch|steps|threads
configs=(
    "ViT-B-16@RoBERTa-wwm-ext-base-chinese|ViT-B-16@RoBERTa-wwm-ext-base-chinese|4|3|2"
    "small-224|$here/small-224.json|16|5|2"
)

results=$(mktemp)
trap 'rm -f "$results"' EXIT

run_side() { # side arch batch steps threads -> appends {"side":..,"config":..,"result":..} to $results
    local side=$1 cfg=$2 arch=$3 batch=$4 steps=$5 threads=$6 out line
    local args=(--arch "$arch" --batch "$batch" --steps "$steps" --threads "$threads")
    if [ "$side" = cnclip ]; then
        out=$("${cnclip[@]}" bench train-step "${args[@]}") || { echo "cnclip failed on $cfg" >&2; return 0; }
    else
        out=$(env "${python_env[@]}" "$python" "$here/official_train_step.py" --official-src "$official_src" "${args[@]}") \
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
        if ((r % 2)); then order=(cnclip official); else order=(official cnclip); fi
        for side in "${order[@]}"; do run_side "$side" "$cfg" "$arch" "$batch" "$steps" "$threads"; done
    done
done

"$python" - "$results" "$rounds" "${configs[@]}" <<'EOF'
import json, statistics, sys
path, rounds, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = [json.loads(l) for l in open(path) if l.strip()]
for c in configs:
    name, arch, batch, steps, threads = c.split("|")
    side = {s: [r["result"] for r in runs if r["config"] == name and r["side"] == s] for s in ("cnclip", "official")}
    med = {s: (statistics.median(x["ms_per_step_median"] for x in v) if v else None) for s, v in side.items()}
    print(json.dumps({
        "config": name, "batch": int(batch), "steps": int(steps), "threads": int(threads), "rounds": rounds,
        "cnclip_ms_per_step": med["cnclip"],
        "official_ms_per_step": med["official"],
        "ratio_cnclip_over_official": round(med["cnclip"] / med["official"], 3) if med["cnclip"] and med["official"] else None,
        "cnclip_medians": [x["ms_per_step_median"] for x in side["cnclip"]],
        "official_medians": [x["ms_per_step_median"] for x in side["official"]],
        "cnclip_peak_rss_mb": max((x["peak_rss_mb"] for x in side["cnclip"]), default=None),
        "official_peak_rss_mb": max((x["peak_rss_mb"] for x in side["official"]), default=None),
        "cnclip_allocator": side["cnclip"][0].get("allocator") if side["cnclip"] else None,
        "official_allocator": side["official"][0].get("allocator") if side["official"] else None,
        "official_torch": side["official"][0]["torch_version"] if side["official"] else None,
        "official_blas": side["official"][0]["blas"] if side["official"] else None,
    }))
EOF
