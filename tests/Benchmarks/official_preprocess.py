#!/usr/bin/env python3
# Peer benchmark for `cnclip bench preprocess`: the official evaluation transform done the way the official loaders do
# it with Pillow (Image.open on the base64-decoded bytes, Resize((R, R), BICUBIC), convert("RGB"), ToTensor,
# Normalize), timed over an imgs.tsv, one JSON line with the same fields. torchvision's ToTensor/Normalize on a PIL
# image are a uint8 -> float32 division and a per-channel affine map; they are written with numpy here so the peer
# needs only Pillow and numpy (Debian: python3-pil python3-numpy).
# --fast: Image.draft("RGB", (R, R)) before the resize, Pillow's own scaled JPEG decoding (libjpeg's 1/2, 1/4, 1/8
# IDCT, the largest reduction keeping both sides >= R; a no-op for other formats): the peer of `cnclip bench
# preprocess --fast`. The official pipeline does not call draft.
import argparse, base64, io, json, statistics, time
import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)

def transform(data, res, fast=False):
    image = Image.open(io.BytesIO(data))
    if fast: image.draft("RGB", (res, res))
    image = image.resize((res, res), Image.BICUBIC).convert("RGB")
    x = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / 255.0
    return (x - MEAN) / STD

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True); p.add_argument("--res", type=int, default=224); p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--fast", action="store_true", help="Image.draft before the resize (scaled JPEG decoding)")
    a = p.parse_args()
    images = [base64.urlsafe_b64decode(line.split("\t", 1)[1].strip() + "==") for line in open(a.input) if line.strip()]
    times = []
    for _ in range(a.rounds):
        t = time.perf_counter()
        for data in images: transform(data, a.res, a.fast)
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    print(json.dumps({"bench": "preprocess-pillow", "mode": "draft" if a.fast else "exact", "images": len(images), "res": a.res, "threads": 1, "rounds": a.rounds,
                      "images_per_s": round(len(images) / median, 1), "ms_per_image": round(median * 1000 / len(images), 3)}))

if __name__ == "__main__":
    main()
