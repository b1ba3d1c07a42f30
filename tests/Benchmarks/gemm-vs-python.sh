#!/usr/bin/env bash
# Side by side: `cnclip bench gemm` (libtorch's MKL) against tests/Benchmarks/peer_gemm.py (Python PyTorch, Debian's
# OpenBLAS), the fp32 products of the training step's linear layers, on this machine. Tells whether the BLAS is where
# a gap in `bench train-step` comes from, and which MKL setting helps on this CPU.
#
#   tests/Benchmarks/gemm-vs-python.sh [ROUNDS]       (default 3 rounds, the sides alternating)
#
# Environment:
#   CNCLIP     the cnclip command (default: the Debug build under src/ChineseClip.Cli/bin)
#   PYTHON     an interpreter with torch (default /usr/bin/python3)
#   THREADS    intra-op threads (default 1), SHAPES (default: cnclip's), REPEATS (default 20)
#   OURS_MODES which MKL settings our side runs with, each a side of its own (default: "default" on Intel,
#              "default mkl-own" on other CPUs): default: as cnclip runs (on a CPU of another vendor with AVX-512,
#              MKL's Intel kernels: src/ChineseClip.Model/Runtime/MklCpuPath.cs); mkl-own: CNCLIP_MKL_INTEL_PATH=0, MKL's
#              own choice for this CPU; cbwr-avx2 / cbwr-avx512: MKL_CBWR=AVX2 / AVX512 (MKL's reproducible code
#              branches) on top of the default.
#   PEER_MODES which OpenBLAS kernel choices the peer runs with (default "env self"): env: OPENBLAS_CORETYPE as set
#              here; self: unset, OpenBLAS detects the CPU.
# Prints one JSON line: the CPU, each side's total time of all products (median of rounds), the MKL code branch each
# of our modes used (MKL's MKL_CBWR_* name for it), the peer's OpenBLAS core, and each side's per-shape GFLOP/s (median).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-3}
python=${PYTHON:-/usr/bin/python3}
source "$here/find-cnclip.sh"
find_cnclip
threads=${THREADS:-1}
repeats=${REPEATS:-20}
args=(--threads "$threads" --repeats "$repeats")
[ -n "${SHAPES:-}" ] && args+=(--shapes "$SHAPES")

vendor=$(sed -n 's/^vendor_id[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
if [ "$vendor" = GenuineIntel ]; then default_modes="default"; else default_modes="default mkl-own"; fi
read -r -a ours_modes <<<"${OURS_MODES:-$default_modes}"
read -r -a peer_modes <<<"${PEER_MODES:-env self}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ours_env() { # mode -> env assignments
    case $1 in
        default) ;;
        cbwr-avx2) echo MKL_CBWR=AVX2 ;;
        cbwr-avx512) echo MKL_CBWR=AVX512 ;;
        mkl-own) echo CNCLIP_MKL_INTEL_PATH=0 ;;
        *) echo "$0: OURS_MODES: unknown mode '$1'" >&2; exit 2 ;;
    esac
}
peer_env() {
    case $1 in
        env) echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}" ;;
        self) ;;
        *) echo "$0: PEER_MODES: unknown mode '$1'" >&2; exit 2 ;;
    esac
}

for ((r = 1; r <= rounds; r++)); do
    sides=()
    for m in "${ours_modes[@]}"; do sides+=("ours-$m"); done
    for m in "${peer_modes[@]}"; do sides+=("peer-$m"); done
    ((r % 2)) || { for ((i = 0, j = ${#sides[@]} - 1; i < j; i++, j--)); do t=${sides[i]}; sides[i]=${sides[j]}; sides[j]=$t; done; }
    for side in "${sides[@]}"; do
        mode=${side#*-}
        if [[ $side == ours-* ]]; then
            line=$(env $(ours_env "$mode") "${cnclip[@]}" bench gemm "${args[@]}" | grep '^{' | tail -n 1)
        else
            line=$(env -u OPENBLAS_CORETYPE $(peer_env "$mode") "$python" "$here/peer_gemm.py" "${args[@]}" | grep '^{' | tail -n 1)
        fi
        echo "$side: $line" >&2
        printf '{"side":"%s","result":%s}\n' "$side" "$line" >>"$work/runs.jsonl"
    done
done

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
family=$(sed -n 's/^cpu family[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
"$python" - "$work/runs.jsonl" "$cpu" "$family" "$vendor" "$threads" "$rounds" <<'EOF'
import json, statistics, sys
path, cpu, family, vendor, threads, rounds = sys.argv[1:7]
runs = [json.loads(l) for l in open(path) if l.strip()]
sides = {}
for r in runs:
    sides.setdefault(r["side"], []).append(r["result"])
out = {"bench": "gemm-vs-python", "cpu": cpu, "cpu_family": family, "vendor": vendor, "threads": int(threads), "rounds": int(rounds), "sides": {}}
for side, results in sides.items():
    s = {"total_ms": round(statistics.median(x["total_ms"] for x in results), 3), "totals": [x["total_ms"] for x in results]}
    if side.startswith("ours-"):
        s["mkl"] = results[0].get("mkl")
        s["mkl_branch"] = results[0].get("mkl_branch")
    else:
        s["openblas_core"] = results[0].get("openblas_core")
        s["torch"] = results[0].get("torch_version")
    s["gflops"] = {f'{sh["rows"]}x{sh["in"]}x{sh["out"]}': {p: round(statistics.median(x["shapes"][i][p + "_gflops"] for x in results), 1)
                                                          for p in ("forward", "grad_input", "grad_weight")}
                   for i, sh in enumerate(results[0]["shapes"])}
    out["sides"][side] = s
base = out["sides"].get("ours-default", {}).get("total_ms")
for side, s in out["sides"].items():
    s["ratio_to_ours_default"] = round(s["total_ms"] / base, 3) if base else None
print(json.dumps(out))
EOF
