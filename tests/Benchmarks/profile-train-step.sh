#!/usr/bin/env bash
# Where a training step's CPU time goes, ours and the official code's side by side: `cnclip bench train-step` and
# tests/Benchmarks/official_train_step.py, each sampled by Linux perf, each sample put in a class of operator
# (matrix products, softmax, layer norm, convolution, random numbers, element-wise, thread pool, kernel, memory,
# runtime, other), in CPU milliseconds per step.
#
#   tests/Benchmarks/profile-train-step.sh OFFICIAL_SRC [CONFIG]
#
# OFFICIAL_SRC: the folder holding the official `cn_clip` package (fetched separately, never committed here).
# CONFIG: small-224 (default: tests/Benchmarks/small-224.json, batch 16) or ViT-B-16 (batch 4).
#
# Environment: CNCLIP, PYTHON as in train-step-vs-official.sh; THREADS (default 2); STEPS (default 4: each side runs
# twice, with STEPS and 3 x STEPS timed steps, and the difference of the two profiles is 2 x STEPS steps, so model
# building, the warm-up step and process start cancel out); FREQ (perf's samples per second per thread, default 999);
# OPENBLAS_CORETYPE for the peer (default: the kernels the CPU flags name, as train-step-vs-official.sh's "flags"
# mode: OpenBLAS 0.3.21 does not know newer CPUs and picks slow kernels by itself).
#
# Needs `perf` (Debian: linux-perf) allowed to sample user and kernel code (root, or kernel.perf_event_paranoid <= 1).
# Prints one JSON line; each side's top symbols go to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
official_src=${1:?usage: $0 OFFICIAL_SRC [small-224|ViT-B-16]}
official_src=$(cd "$official_src" && pwd)
[ -d "$official_src/cn_clip" ] || { echo "$0: no cn_clip package in $official_src" >&2; exit 2; }
config=${2:-small-224}
case $config in
    small-224) arch=$here/small-224.json batch=16 ;;
    ViT-B-16) arch=ViT-B-16@RoBERTa-wwm-ext-base-chinese batch=4 ;;
    *) echo "$0: CONFIG '$config': expected small-224 or ViT-B-16" >&2; exit 2 ;;
esac
command -v perf >/dev/null || { echo "$0: perf is not installed (Debian: apt-get install linux-perf)" >&2; exit 2; }
python=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-2}
steps=${STEPS:-4}
freq=${FREQ:-999}
source "$here/find-cnclip.sh"
find_cnclip

# The same allocator on both sides, as train-step-vs-official.sh does.
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
python_env=()
[ -f "$jemalloc" ] && python_env+=("LD_PRELOAD=$jemalloc${LD_PRELOAD:+:$LD_PRELOAD}" "MALLOC_CONF=${MALLOC_CONF:-muzzy_decay_ms:-1}")

flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
case " $flags " in
    *" avx512_bf16 "*) flags_core=Cooperlake ;;
    *" avx512f "*) flags_core=SkylakeX ;;
    *" avx2 "*) flags_core=Haswell ;;
    *) flags_core= ;;
esac
python_env+=("OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$flags_core}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# side n -> $work/side-n.{data,json,txt}: perf's samples per (shared object, symbol) and the bench's JSON line
run() {
    local side=$1 n=$2 args=(--arch "$arch" --batch "$batch" --steps "$2" --threads "$threads") cmd
    if [ "$side" = cnclip ]; then cmd=("${cnclip[@]}" bench train-step "${args[@]}")
    else cmd=(env "${python_env[@]}" "$python" "$here/official_train_step.py" --official-src "$official_src" "${args[@]}"); fi
    perf record -q -F "$freq" -o "$work/$side-$n.data" -- "${cmd[@]}" 2>/dev/null | grep '^{' | tail -n 1 >"$work/$side-$n.json"
    [ -s "$work/$side-$n.json" ] || { echo "$0: $side with $n steps printed no result" >&2; exit 1; }
    perf report -i "$work/$side-$n.data" --stdio --sort dso,sym --show-nr-samples --percent-limit 0 2>/dev/null \
        | grep -v '^#' | grep -v '^$' >"$work/$side-$n.txt"
}
for side in cnclip official; do
    run "$side" "$steps"
    run "$side" $((3 * steps))
done

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
family=$(sed -n 's/^cpu family[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
"$python" - "$work" "$steps" "$freq" "$config" "$threads" "$cpu" "$family" <<'EOF'
import json, re, sys
work, steps, freq, config, threads, cpu, family = sys.argv[1:8]
steps, freq = int(steps), int(freq)

# (class, test on shared object and symbol), first match wins.
CLASSES = [
    ("matrix products", lambda d, s: re.search(r"gemm|mkl_blas|_kernel_[NT][NT]|sgemm|[io][nt]copy|brgemm|jit_avx.*gemm|matmul", s, re.I)
        or ("openblas" in d and not re.search(r"thread|exec_blas|blas_memory", s))),
    ("softmax", lambda d, s: "softmax" in s.lower()),
    ("layer norm", lambda d, s: re.search(r"layer_?norm", s, re.I)),
    ("convolution", lambda d, s: re.search(r"im2col|col2im|conv", s, re.I)),
    ("random numbers (dropout, masks)", lambda d, s: re.search(r"bernoulli|random|normal_kernel|uniform|mt19937|CPUGenerator", s)),
    ("thread pool", lambda d, s: re.search(r"gomp|iomp|libomp", d) or re.search(r"blas_thread_server|exec_blas|omp_", s)),
    ("kernel (page faults, scheduling)", lambda d, s: d.startswith("[kernel")),
    ("memory (allocator, memcpy/memset)", lambda d, s: "jemalloc" in d or re.search(r"\b(malloc|free|calloc|realloc|memcpy|memmove|memset)", s) or re.search(r"__memcpy|__memset|__memmove", s)),
    ("element-wise and reductions", lambda d, s: re.search(r"Vectorized|vectorized|cpu_kernel|Sleef|vml|sqrt|_kernel|reduce|cascade_sum|gelu|tanh|sigmoid|copy_|fill", s)),
    ("runtime (.NET, Python, dispatch)", lambda d, s: re.search(r"coreclr|clrjit|\[JIT\]|python|libc10|LibTorchSharp|System\.|\.dll|libtorch_python", d)),
]

def parse(path):
    rows = []
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"\s*[\d.]+%\s+(\d+)\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(4).strip()))
    return rows

def short(sym):
    """libtorch's element-wise symbols are long templates; the kernel's name says which operator it is."""
    m = re.search(r"native::(?:\w+::)*?(?:\(anonymous namespace\)::)?(\w+_kernel\w*)", sym)
    return m.group(1) if m else sym[:110]

def classify(dso, sym):
    for name, test in CLASSES:
        if test(dso, sym):
            return name
    return "other (libtorch's autograd and operators' own code)" if "torch" in dso else "other"

out = {"bench": "profile-train-step", "config": config, "threads": int(threads), "cpu": cpu, "cpu_family": family,
       "steps_profiled": 2 * steps, "perf_frequency": freq, "sides": {}}
for side in ("cnclip", "official"):
    fewer, more = (parse(f"{work}/{side}-{n}.txt") for n in (steps, 3 * steps))
    per = {}
    for sign, rows in ((-1, fewer), (1, more)):
        for n, dso, sym in rows:
            per[(dso, sym)] = per.get((dso, sym), 0) + sign * n
    ms = lambda samples: samples * 1000.0 / freq / (2 * steps)  # one sample = 1/freq s of one thread's CPU time
    classes = {}
    for (dso, sym), n in per.items():
        c = classify(dso, sym)
        classes[c] = classes.get(c, 0) + n
    result = json.loads(open(f"{work}/{side}-{3 * steps}.json").read())
    out["sides"][side] = {
        "ms_per_step_median": result.get("ms_per_step_median"),
        "cpu_ms_per_step_sampled": round(ms(sum(classes.values())), 1),
        "cpu_ms_per_step_by_class": {c: round(ms(n), 1) for c, n in sorted(classes.items(), key=lambda kv: -kv[1])},
        "openblas_core": result.get("openblas_core"),
    }
    top = sorted(per.items(), key=lambda kv: -kv[1])[:15]
    print(f"{side}: top symbols, CPU ms per step", file=sys.stderr)
    for (dso, sym), n in top:
        print(f"  {ms(n):8.1f}  {classify(dso, sym)[:22]:22}  {dso[:24]:24}  {short(sym)}", file=sys.stderr)
print(json.dumps(out))
EOF
