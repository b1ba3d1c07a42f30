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
#              "default cbwr-avx2 cbwr-avx512 intel-path" on other CPUs):
#              default: as cnclip runs; cbwr-avx2 / cbwr-avx512: MKL_CBWR=AVX2 / AVX512 (MKL's reproducible code
#              branches); intel-path: MKL's check for an Intel CPU answered yes (a one-line shim preloaded, built with
#              cc here; MKL's own switch for it, MKL_DEBUG_CPU_TYPE, is gone from current MKL).
#   PEER_MODES which OpenBLAS kernel choices the peer runs with (default "env self"): env: OPENBLAS_CORETYPE as set
#              here; self: unset, OpenBLAS detects the CPU.
# Prints one JSON line: the CPU, each side's total time of all products (median of rounds), the MKL code branch each
# of our modes used (from MKL_VERBOSE), the peer's OpenBLAS core, and each side's per-shape GFLOP/s (median).
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
if [ "$vendor" = GenuineIntel ]; then default_modes="default"; else default_modes="default cbwr-avx2 cbwr-avx512 intel-path"; fi
read -r -a ours_modes <<<"${OURS_MODES:-$default_modes}"
read -r -a peer_modes <<<"${PEER_MODES:-env self}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shim=
for m in "${ours_modes[@]}"; do
    [ "$m" = intel-path ] || continue
    if command -v cc >/dev/null; then
        # MKL calls this (through the PLT of libtorch_cpu.so, so a preload takes it over) to decide whether to take its
        # Intel code paths.
        printf 'int mkl_serv_intel_cpu_true(void) { return 1; }\n' >"$work/shim.c"
        cc -shared -fPIC -O2 -o "$work/libintelpath.so" "$work/shim.c"
        shim=$work/libintelpath.so
    else
        echo "$0: no C compiler: mode intel-path skipped" >&2
    fi
done

ours_env() { # mode -> env assignments
    case $1 in
        default) ;;
        cbwr-avx2) echo MKL_CBWR=AVX2 ;;
        cbwr-avx512) echo MKL_CBWR=AVX512 ;;
        intel-path) [ -n "$shim" ] && echo "LD_PRELOAD=$shim${LD_PRELOAD:+:$LD_PRELOAD}" ;;
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

declare -A branch=()
for m in "${ours_modes[@]}"; do
    [ "$m" = intel-path ] && [ -z "$shim" ] && continue
    # MKL_VERBOSE's first line names the code branch MKL dispatched to on this CPU.
    branch[$m]=$(env $(ours_env "$m") MKL_VERBOSE=1 "${cnclip[@]}" bench gemm --threads 1 --repeats 1 --shapes 8x8x8 2>&1 \
        | sed -n 's/^MKL_VERBOSE oneMKL[^ ]* [^ ]* \(.*\)$/\1/p;s/^MKL_VERBOSE Intel(R) MKL[^ ]* [^ ]* \(.*\)$/\1/p' | head -n 1)
done

for ((r = 1; r <= rounds; r++)); do
    sides=()
    for m in "${ours_modes[@]}"; do
        [ "$m" = intel-path ] && [ -z "$shim" ] && continue
        sides+=("ours-$m")
    done
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

branches=$(for m in "${!branch[@]}"; do printf '%s\t%s\n' "$m" "${branch[$m]}"; done)
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
family=$(sed -n 's/^cpu family[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
BRANCHES=$branches "$python" - "$work/runs.jsonl" "$cpu" "$family" "$vendor" "$threads" "$rounds" <<'EOF'
import json, os, statistics, sys
path, cpu, family, vendor, threads, rounds = sys.argv[1:7]
runs = [json.loads(l) for l in open(path) if l.strip()]
branches = dict(l.split("\t", 1) for l in os.environ.get("BRANCHES", "").splitlines() if "\t" in l)
sides = {}
for r in runs:
    sides.setdefault(r["side"], []).append(r["result"])
out = {"bench": "gemm-vs-python", "cpu": cpu, "cpu_family": family, "vendor": vendor, "threads": int(threads), "rounds": int(rounds), "sides": {}}
for side, results in sides.items():
    s = {"total_ms": round(statistics.median(x["total_ms"] for x in results), 3), "totals": [x["total_ms"] for x in results]}
    if side.startswith("ours-"):
        s["mkl_branch"] = branches.get(side[5:])
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
