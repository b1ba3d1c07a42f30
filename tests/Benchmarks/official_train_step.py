#!/usr/bin/env python3
# Peer benchmark for `cnclip bench train-step`: the same fine-tuning step, timed the same way and reported with the
# same JSON fields, but run by the OFFICIAL Chinese-CLIP model code (https://github.com/OFA-Sys/Chinese-CLIP) on
# Python PyTorch, CPU, fp32. Nothing of the official code lives in this repository: fetch it separately and pass
# the folder that contains its `cn_clip` package with --official-src. Run with an interpreter that has torch
# (on Debian: /usr/bin/python3 with the python3-torch package).
#
# What is "the same step" (as cn_clip/training/main.py and train.py do it, world size 1, precision fp32):
#   model    CLIP(**model_info), vision JSON merged with text JSON (or one merged JSON file), vision_layers given
#            as a string parsed into a list; then cn_clip.clip.load(model, device="cpu") with no weight files and
#            convert_models_to_fp32, as main.py does (so the parameters take the same fp16 round trip), train mode.
#   step     zero_grad; image_features, text_features, logit_scale = model(images, texts) (the official forward
#            normalises both features and returns logit_scale.exp()); the loss of get_loss without aggregation;
#            backward; AdamW step; clamp logit_scale to [0, 4.6052].
#   AdamW    the official two groups (names containing "bn", "ln", "bias" or "logit_scale" get no weight decay),
#            lr 5e-5 and weight decay 0.001 as cnclip uses, betas/eps as the official defaults per vision tower
#            (ResNet: 0.9/0.999/1e-8, ViT: 0.9/0.98/1e-6).
#   inputs   torch.manual_seed(0) before the model is built; pixels randn [B,3,R,R]; texts [CLS] + 8..50 random
#            word-piece ids in [672, vocab) + [SEP], zero-padded to 52.
#   timing   one untimed warm-up step, then --steps timed steps (each until the loss is read back); median.
import argparse
import ast
import importlib.util
import json
import os
import random
import resource
import statistics
import sys
import time
import types

CONTEXT_LENGTH = 52


def parse_args():
    p = argparse.ArgumentParser(description="Time the official Chinese-CLIP fine-tuning step on random inputs (CPU).")
    p.add_argument("--official-src", required=True, help="folder containing the official cn_clip package")
    p.add_argument("--arch", required=True, help="VISION@TEXT (official config names) or a merged architecture .json")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    a = p.parse_args()
    for name in ("batch", "steps", "threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    if not os.path.isdir(os.path.join(a.official_src, "cn_clip")):
        p.error(f"--official-src {a.official_src}: no cn_clip package there")
    return a


def stub_torchvision_if_missing():
    """cn_clip.clip's package __init__ imports cn_clip.clip.utils, which imports torchvision.transforms for its image
    preprocessing only (not used to build or run the model). If torchvision is absent, put in placeholders that fail
    loudly when used. Returns the names of the stubbed modules."""
    if importlib.util.find_spec("torchvision") is not None:
        return []

    class _Stubbed:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("torchvision is stubbed by official_train_step.py (not installed)")

    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    for name in ("Compose", "ToTensor", "Normalize", "Resize"):
        setattr(tr, name, type(name, (_Stubbed,), {}))
    tr.InterpolationMode = types.SimpleNamespace(BICUBIC="bicubic", BILINEAR="bilinear", NEAREST="nearest")
    tv.transforms = tr
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.transforms"] = tr
    return ["torchvision", "torchvision.transforms"]


def resolve_arch(arch, src):
    """(name, model_info) the way cn_clip/training/main.py builds model_info."""
    if arch.endswith(".json") or os.path.isfile(arch):
        with open(arch, "r", encoding="utf-8") as f:
            model_info = json.load(f)
        name = os.path.splitext(os.path.basename(arch))[0]
    else:
        parts = arch.split("@")
        if len(parts) != 2:
            raise SystemExit(f"--arch {arch}: use VISION@TEXT or a .json file")
        configs = os.path.join(src, "cn_clip", "clip", "model_configs")
        vision_file = os.path.join(configs, parts[0].replace("/", "-") + ".json")
        text_file = os.path.join(configs, parts[1].replace("/", "-") + ".json")
        for path in (vision_file, text_file):
            if not os.path.exists(path):
                raise SystemExit(f"--arch {arch}: no official config {path}")
        with open(vision_file, "r") as fv, open(text_file, "r") as ft:
            model_info = json.load(fv)
            model_info.update(json.load(ft))
        name = arch
    # main.py eval()s a string vision_layers ("[3,4,6,3]" in RN50.json); literal_eval gives the same list safely.
    if isinstance(model_info["vision_layers"], str):
        model_info["vision_layers"] = ast.literal_eval(model_info["vision_layers"])
    model_info["use_flash_attention"] = False
    return name, model_info


def random_ids(batch, vocab, torch):
    rng = random.Random(0)
    ids = torch.zeros(batch, CONTEXT_LENGTH, dtype=torch.long)
    for b in range(batch):
        length = rng.randint(8, CONTEXT_LENGTH - 2)  # 8..50 word pieces
        ids[b, 0] = 101  # [CLS]
        ids[b, 1:length + 1] = torch.tensor([rng.randrange(672, vocab) for _ in range(length)], dtype=torch.long)
        ids[b, length + 1] = 102  # [SEP]
    return ids


def openblas_core():
    """The kernel set OpenBLAS actually runs (openblas_get_corename), or None when this process has no OpenBLAS."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if len(line.split()) >= 6}
    except OSError:
        return None
    for path in sorted(paths):
        if os.path.basename(path).startswith("libopenblas"):
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_corename.restype = ctypes.c_char_p
                return lib.openblas_get_corename().decode()
            except (OSError, AttributeError):
                return None
    return None


def blas_description(torch, threads):
    """Which BLAS the process actually loaded (Debian's torch says only BLAS_INFO=generic and goes through the
    libblas.so.3 alternative), with OpenBLAS's own build line and thread count when it is OpenBLAS."""
    import ctypes
    info = "unknown"
    for line in torch.__config__.show().splitlines():
        if "BLAS_INFO=" in line:
            info = line.split("BLAS_INFO=")[1].split(",")[0].strip()
    loaded = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(path)
                if (base.startswith("libblas") or base.startswith("libopenblas") or base.startswith("libmkl")
                        or base.startswith("libblis")) and path not in loaded:
                    loaded.append(path)
    except OSError:
        pass
    desc = f"BLAS_INFO={info}; loaded: {', '.join(loaded) or 'none found'}"
    openblas = next((p for p in loaded if os.path.basename(p).startswith("libopenblas")), None)
    if openblas:
        try:
            lib = ctypes.CDLL(openblas)
            lib.openblas_set_num_threads(threads)  # torch.set_num_threads does not reach OpenBLAS's own pool
            lib.openblas_get_config.restype = ctypes.c_char_p
            desc += f"; {lib.openblas_get_config().decode()}; openblas threads={lib.openblas_get_num_threads()}"
        except (OSError, AttributeError):
            pass
    desc += f"; mkldnn={'on' if torch.backends.mkldnn.is_available() else 'off'}"
    if "Prescott" in desc and "AVX2" in torch.__config__.show():
        # OpenBLAS 0.3.21 does not know newer CPU models (e.g. Xeon model 207) and falls back to its SSE3 kernels.
        print("official_train_step.py: warning: OpenBLAS runs its Prescott (SSE3) kernels on an AVX2 CPU; "
              "set OPENBLAS_CORETYPE (e.g. SkylakeX, Cooperlake, Haswell) for a fair comparison", file=sys.stderr)
    return desc


def main():
    args = parse_args()
    # OpenBLAS (pthread build) and OpenMP size their pools when loaded: set them before torch is imported.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch
    from torch import nn, optim

    src = os.path.abspath(args.official_src)
    sys.path.insert(0, src)
    stubbed = stub_torchvision_if_missing()
    from cn_clip.clip.model import CLIP, convert_models_to_fp32
    from cn_clip.clip.utils import load

    torch.set_num_threads(args.threads)
    blas = blas_description(torch, args.threads)
    name, model_info = resolve_arch(args.arch, src)

    torch.manual_seed(0)
    model = CLIP(**model_info)
    load(model, device="cpu", clip_path=None, bert_path=None, use_flash_attention=False)
    convert_models_to_fp32(model)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    model.train()

    is_resnet = isinstance(model_info["vision_layers"], (tuple, list))
    beta1, beta2, eps = (0.9, 0.999, 1e-8) if is_resnet else (0.9, 0.98, 1e-6)
    exclude = lambda n: "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
    include = lambda n: not exclude(n)
    named_parameters = list(model.named_parameters())
    gain_or_bias_params = [p for n, p in named_parameters if exclude(n) and p.requires_grad]
    rest_params = [p for n, p in named_parameters if include(n) and p.requires_grad]
    optimizer = optim.AdamW(
        [{"params": gain_or_bias_params, "weight_decay": 0.0}, {"params": rest_params, "weight_decay": 0.001}],
        lr=5e-5, betas=(beta1, beta2), eps=eps)
    loss_img = nn.CrossEntropyLoss()
    loss_txt = nn.CrossEntropyLoss()

    resolution = model_info["image_resolution"]
    images = torch.randn(args.batch, 3, resolution, resolution)
    texts = random_ids(args.batch, model_info["vocab_size"], torch)

    def train_step():
        optimizer.zero_grad()
        image_features, text_features, logit_scale = model(images, texts, 0)
        logit_scale = logit_scale.mean()
        logits_per_image = logit_scale * image_features @ text_features.t()
        logits_per_text = logit_scale * text_features @ image_features.t()
        ground_truth = torch.arange(len(logits_per_image)).long()
        total_loss = (loss_img(logits_per_image, ground_truth) + loss_txt(logits_per_text, ground_truth)) / 2
        total_loss.backward()
        optimizer.step()
        model.logit_scale.data = torch.clamp(model.logit_scale.data, 0, 4.6052)
        return total_loss.item()

    # Wall time and the process's CPU time (all threads) per step, as cnclip reports them.
    times, cpu_times = [], []
    loss = 0.0
    for i in range(args.steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = train_step()
        if i > 0:
            times.append((time.perf_counter() - start) * 1000.0)
            cpu_times.append((time.process_time() - cpu_start) * 1000.0)
    median = statistics.median(times)
    result = {
        "bench": "train-step",
        "arch": name,
        "batch": args.batch,
        "steps": args.steps,
        "threads": args.threads,
        "ms_per_step_median": round(median, 2),
        "samples_per_s": round(args.batch * 1000.0 / median, 3),
        "ms_per_step": [round(t, 2) for t in times],
        "cpu_ms_per_step_median": round(statistics.median(cpu_times), 2),
        "final_loss": loss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "torch_version": torch.__version__,
        "blas": blas,
        "openblas_core": openblas_core(),
        "allocator": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "glibc",
        "malloc_conf": os.environ.get("MALLOC_CONF") if "jemalloc" in os.environ.get("LD_PRELOAD", "") else None,
        "stubbed_modules": stubbed,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
