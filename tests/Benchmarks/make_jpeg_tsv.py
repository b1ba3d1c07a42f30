#!/usr/bin/env python3
# Writes an imgs.tsv (image_id<TAB>urlsafe base64) of photo-like JPEGs for `cnclip bench preprocess`: N images from
# 800x600 to 1600x1200 (4:3, sizes spread evenly), quality 90, 4:2:0, each a smooth random field with shapes and
# sensor-like noise, so the files are as large as photos of that size. Deterministic for a given --seed.
# Needs Pillow and numpy (Debian: python3-pil python3-numpy).
import argparse, base64, io
import numpy as np
from PIL import Image, ImageDraw

def photo(rng, width, height):
    coarse = Image.fromarray(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8), "RGB").resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(coarse)
    for _ in range(12):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(20, width // 5))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    pixels = np.asarray(coarse, dtype=np.int16) + rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--output", required=True); p.add_argument("--count", type=int, default=200); p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    with open(a.output, "w") as out:
        for i in range(a.count):
            width = 800 + 8 * round(100 * i / max(1, a.count - 1))  # 800 .. 1600
            buffer = io.BytesIO()
            photo(rng, width, width * 3 // 4).save(buffer, "JPEG", quality=90)
            out.write(f"{i}\t{base64.urlsafe_b64encode(buffer.getvalue()).decode()}\n")

if __name__ == "__main__":
    main()
