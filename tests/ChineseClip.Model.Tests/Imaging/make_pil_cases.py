#!/usr/bin/env python3
# Writes pil_cases.tsv: small images in every mode PIL distinguishes, with what the official transform's PIL steps
# make of them: Image.open(...).resize((R, R), BICUBIC).convert("RGB") for R = 8 and 17. Columns: name, image
# (base64), then the expected RGB bytes (HWC, base64) for each R. Made with Pillow 9.4.0 (Debian's python3-pil) and
# numpy; run from this folder.
import base64, io, struct, zlib
import numpy as np
from PIL import Image

rng = np.random.default_rng(7)


def content(w, h, channels=3):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 255 // (w + h)], -1)
    noisy = np.clip(base + rng.integers(-60, 60, base.shape), 0, 255).astype(np.uint8)
    return noisy[..., 0] if channels == 1 else noisy


def alpha(w, h):
    a = rng.integers(0, 256, (h, w)).astype(np.uint8)
    a[:, : w // 3] = 255
    a[: h // 4] = 0
    return a


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(w, h, depth, color_type, rows, palette=None, transparency=None):
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    if palette is not None:
        data += chunk(b"PLTE", palette)
    if transparency is not None:
        data += chunk(b"tRNS", transparency)
    return data + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows))) + chunk(b"IEND", b"")


def packed(values, depth):
    per, out = 8 // depth, bytearray()
    for i in range(0, len(values), per):
        byte = 0
        for j, v in enumerate(values[i : i + per]):
            byte |= int(v) << (8 - depth * (j + 1))
        out.append(byte)
    return bytes(out)


def saved(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gif_on_bigger_screen(data, w, h):
    data = bytearray(data)  # the frame stays at (0, 0); PIL fills the rest of the screen from the palette
    data[6:10] = struct.pack("<HH", w, h)
    return bytes(data)


W, H = 23, 13
rgb, gray, a = content(W, H), content(W, H, 1), alpha(W, H)
wide16 = lambda v: (v.astype(np.uint16) * 256 + rng.integers(0, 256, v.shape)).astype(">u2")
quantized = Image.fromarray(rgb).quantize(40)
cases = {
    "png-gray-8": png(W, H, 8, 0, [r.tobytes() for r in gray]),
    "png-gray-16": png(W, H, 16, 0, [r.tobytes() for r in (gray.astype(np.uint16) * 2).astype(">u2")]),
    "png-gray-1": png(W, H, 1, 0, [packed(r >> 7, 1) for r in gray]),
    "png-gray-4": png(W, H, 4, 0, [packed(r >> 4, 4) for r in gray]),
    "png-gray-alpha-8": png(W, H, 8, 4, [r.tobytes() for r in np.stack([gray, a], -1)]),
    "png-gray-alpha-16": png(W, H, 16, 4, [r.tobytes() for r in wide16(np.stack([gray, a], -1))]),
    "png-rgb-8-trns": png(W, H, 8, 2, [r.tobytes() for r in rgb], transparency=struct.pack(">HHH", *map(int, rgb[0, 0]))),
    "png-rgb-16": png(W, H, 16, 2, [r.tobytes() for r in wide16(rgb)]),
    "png-rgba-8": png(W, H, 8, 6, [r.tobytes() for r in np.concatenate([rgb, a[..., None]], -1)]),
    "png-rgba-16": png(W, H, 16, 6, [r.tobytes() for r in wide16(np.concatenate([rgb, a[..., None]], -1))]),
    "png-palette-4-trns": png(W, H, 4, 3, [packed(r >> 4, 4) for r in gray], palette=bytes(rng.integers(0, 256, 48).astype(np.uint8)),
                              transparency=bytes(rng.integers(0, 256, 10).astype(np.uint8))),
    "png-rgb-8-height-only": png(8, H, 8, 2, [r.tobytes() for r in rgb[:, :8]]),
    "png-rgba-8-width-only": png(W, 8, 8, 6, [r.tobytes() for r in np.concatenate([rgb, a[..., None]], -1)[:8]]),
    "bmp-gray-ramp": saved(Image.fromarray(gray, "L"), "BMP"),
    "bmp-palette": saved(quantized, "BMP"),
    "gif-bigger-screen": gif_on_bigger_screen(saved(quantized, "GIF"), W + 4, H + 3),
    "gif-transparent-bigger-screen": gif_on_bigger_screen(saved(quantized, "GIF", transparency=3), W + 4, H + 3),
    "webp-lossless-alpha": saved(Image.fromarray(np.concatenate([rgb, a[..., None]], -1), "RGBA"), "WEBP", lossless=True),
    "webp-lossy": saved(Image.fromarray(rgb), "WEBP", quality=80),
}
with open("pil_cases.tsv", "w") as out:
    for name, data in cases.items():
        expected = [Image.open(io.BytesIO(data)).resize((r, r), Image.BICUBIC).convert("RGB").tobytes() for r in (8, 17)]
        out.write("\t".join([name] + [base64.b64encode(b).decode() for b in [data] + expected]) + "\n")
