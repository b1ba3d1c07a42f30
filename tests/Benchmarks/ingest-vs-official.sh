#!/usr/bin/env bash
# Image ingest side by side: `cnclip index build` (ONNX Runtime and TorchSharp backends) against the image half of the
# official extract_features.py (tests/Benchmarks/official_extract_features.py, Python PyTorch on the CPU), on the same
# JPEGs, the same randomly initialised official checkpoint, batch and threads.
#
#   tests/Benchmarks/ingest-vs-official.sh OFFICIAL_SRC [WORK_DIR] [COUNT] [BATCH] [THREADS] [ROUNDS] [ARCH]
#
# OFFICIAL_SRC: a folder with the official cn_clip package (e.g. `git archive HEAD cn_clip | tar -x -C DIR` in a clone
# of OFA-Sys/Chinese-CLIP). Defaults: /tmp/cnclip-ingest, 128 photo-like JPEGs (800x600 .. 1600x1200, from
# make_jpeg_tsv.py), batch 32, 2 threads, 3 rounds, ViT-B-16@RoBERTa-wwm-ext-base-chinese. The images go into an
# imgs.tsv for cnclip and, through `cnclip build-lmdb`, into the official LMDB layout for the official loader.
# Each side is a whole process, timed from its start to its last vector written (what a user waits for): model load,
# decoding, the forward passes and the output. The ONNX export of the checkpoint is made once before the rounds (its
# time is printed) and found in the cache afterwards. The sides take turns, the first side rotating each round, so that
# background load hits all of them; the summary takes each side's median and the ratios over the official side. It
# also checks that all three computed the same vectors (the smallest cosine between a side's and the official's).
# Environment: CNCLIP (default: the Release build), PYTHON (default /usr/bin/python3, with Debian's python3-torch,
# python3-torchvision, python3-lmdb, python3-tqdm, python3-pil, python3-numpy).
# Every run's line goes to stderr; one summary JSON line to stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
src=$(realpath "${1:?usage: $0 OFFICIAL_SRC [WORK_DIR] [COUNT] [BATCH] [THREADS] [ROUNDS] [ARCH]}")
work=${2:-/tmp/cnclip-ingest}
count=${3:-128}
batch=${4:-32}
threads=${5:-2}
rounds=${6:-3}
arch=${7:-ViT-B-16@RoBERTa-wwm-ext-base-chinese}
python=${PYTHON:-/usr/bin/python3}
vocab=$(realpath "$root/../shared/reference/vocab.txt")
[ -d "$src/cn_clip" ] || { echo "$0: $src has no cn_clip package" >&2; exit 2; }
source "$here/find-cnclip.sh"
find_cnclip Release

mkdir -p "$work/data" "$work/tsv"
if [ ! -s "$work/data/test_imgs.tsv" ] || [ "$(wc -l <"$work/data/test_imgs.tsv")" -ne "$count" ]; then
    rm -rf "$work/data/lmdb"
    "$python" "$here/make_jpeg_tsv.py" --output "$work/data/test_imgs.tsv" --count "$count"
    # build-lmdb pairs images with texts; one caption per image (the official loader reads only the images).
    "$python" -c 'import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"text_id": i, "text": f"图片{i}", "image_ids": [i]}, ensure_ascii=False) + "\n")' \
        "$work/data/test_texts.jsonl" "$count"
    "${cnclip[@]}" build-lmdb --data-dir "$work/data" --splits test >&2
fi
# cnclip gets the same tsv without the captions, so that it embeds only the images, as the official side does.
cp "$work/data/test_imgs.tsv" "$work/tsv/imgs.tsv"
vision=${arch%@*}
text=${arch#*@}
checkpoint="$work/random-$vision-$text.pt"
[ -f "$checkpoint" ] || "$python" "$here/official_extract_features.py" --official-src "$src" \
    --vision-model "$vision" --text-model "$text" --make-checkpoint "$checkpoint" >&2

build() { # $1 = backend, $2 = output folder
    rm -rf "$2"
    local started ended
    started=$(date +%s.%N)
    "${cnclip[@]}" index build --checkpoint "$checkpoint" --arch "$arch" --vocab "$vocab" --images "$work/tsv/imgs.tsv" \
        --output "$2" --batch-size "$batch" --threads "$threads" --backend "$1" 2>"$work/$1.log" >/dev/null
    ended=$(date +%s.%N)
    python3 -c 'import json, sys
b, n, s = sys.argv[1], int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3])
print(json.dumps({"bench": "ingest", "side": b, "images": n, "total_s": round(s, 2), "images_per_s": round(n / s, 3)}))' \
        "$1" "$count" "$started" "$ended"
}

# The ONNX export, once (cached by checkpoint SHA-256; later builds find it).
started=$(date +%s)
head -n 1 "$work/tsv/imgs.tsv" >"$work/tsv/one.tsv"
rm -rf "$work/warm"
"${cnclip[@]}" index build --checkpoint "$checkpoint" --arch "$arch" --vocab "$vocab" --images "$work/tsv/one.tsv" \
    --output "$work/warm" --threads "$threads" --backend onnx >/dev/null 2>&1
echo "{\"onnx_export_and_one_image_s\": $(($(date +%s) - started))}" >&2

runs=()
sides=(official onnx torch)
for ((i = 0; i < rounds; i++)); do
    for ((j = 0; j < 3; j++)); do
        side=${sides[$(((i + j) % 3))]}
        if [ "$side" = official ]; then
            line=$("$python" "$here/official_extract_features.py" --official-src "$src" --vision-model "$vision" \
                --text-model "$text" --resume "$checkpoint" --image-data "$work/data/lmdb/test/imgs" \
                --image-feat-output-path "$work/official.jsonl" --img-batch-size "$batch" --threads "$threads")
        else
            line=$(build "$side" "$work/out-$side")
        fi
        echo "$line" >&2
        runs+=("$line")
    done
done

printf '%s\n' "${runs[@]}" | "$python" -c '
import json, statistics, sys, platform
import numpy as np
work, arch, batch, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
runs = [json.loads(l) for l in sys.stdin if l.strip()]
def med(side, key): return statistics.median(r[key] for r in runs if r["side"] == side)
official = {}
for line in open(f"{work}/official.jsonl"):
    r = json.loads(line)
    official[r["image_id"]] = np.array(r["feature"], dtype=np.float64)
def min_cosine(folder):
    ids = [json.loads(l)["id"] for l in open(f"{folder}/v1/images.jsonl")]
    v = np.fromfile(f"{folder}/v1/images.f32", dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
    return round(min(float(v[i] @ official[ids[i]]) for i in range(len(ids))), 7)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
family = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("cpu family")), "?")
out = {"bench": "ingest-vs-official", "arch": arch, "images": runs[0]["images"], "batch": batch, "threads": threads,
       "rounds": len(runs) // 3, "cpu": f"{cpu} (family {family})", "official_torch": next(r["torch"] for r in runs if r["side"] == "official")}
for side in ("official", "onnx", "torch"):
    out[f"{side}_images_per_s"] = med(side, "images_per_s")
    out[f"{side}_total_s"] = med(side, "total_s")
out["official_loop_images_per_s"] = med("official", "loop_images_per_s")
for side in ("onnx", "torch"):
    out[f"{side}_over_official"] = round(out[f"{side}_images_per_s"] / out["official_images_per_s"], 3)
    out[f"{side}_min_cosine_to_official"] = min_cosine(f"{work}/out-{side}")
print(json.dumps(out))
' "$work" "$arch" "$batch" "$threads"
