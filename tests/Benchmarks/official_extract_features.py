#!/usr/bin/env python3
# Peer benchmark for image ingest (`cnclip index build`): the image half of the OFFICIAL cn_clip/eval/extract_features.py
# run on the CPU. The official script calls torch.cuda.set_device and moves batches to the GPU, so it cannot run here as
# it is; this runner does the same steps with the official modules, imported from --official-src (nothing of the
# official code lives in this repository):
#   model    CLIP(**model_info) from the official VISION and TEXT config files, convert_weights, then the fp32 cast
#            that extract_features.py does for --precision amp/fp32 (convert_models_to_fp32), eval mode;
#   data     the official get_eval_img_dataset (EvalImgDataset over the LMDB of base64 images: PIL decode,
#            Resize((R, R), BICUBIC), RGB, ToTensor, Normalize; DataLoader with num_workers=0, batch --img-batch-size);
#   weights  torch.load(--resume)["state_dict"], a leading "module." removed, load_state_dict;
#   loop     torch.no_grad: model(images, None), divided by its norm, one {"image_id", "feature"} JSON line per image.
# torch.set_num_threads(--threads) is the only change of setting. One JSON line on stdout: total_s (process start to
# the last feature written, what a user waits for), loop_s (the data + forward loop alone) and images_per_s of each.
# --make-checkpoint PATH instead writes a randomly initialised official checkpoint of the architecture (seed 0) and exits.
# Needs Debian's python3-torch, python3-torchvision, python3-lmdb and python3-tqdm (the official modules import them).
import time

STARTED = time.perf_counter()

import argparse
import json
import os
import platform
import sys


def parse_args():
    p = argparse.ArgumentParser(description="The image half of the official extract_features.py, on the CPU.")
    p.add_argument("--official-src", required=True, help="folder containing the official cn_clip package")
    p.add_argument("--vision-model", default="ViT-B-16")
    p.add_argument("--text-model", default="RoBERTa-wwm-ext-base-chinese")
    p.add_argument("--resume", help="official checkpoint (.pt)")
    p.add_argument("--image-data", help="LMDB folder of base64 images ({lmdb}/{split}/imgs)")
    p.add_argument("--image-feat-output-path", help="where the features go (jsonl)")
    p.add_argument("--img-batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--make-checkpoint", help="write a random official checkpoint here and exit")
    a = p.parse_args()
    if not os.path.isdir(os.path.join(a.official_src, "cn_clip")):
        p.error(f"--official-src {a.official_src}: no cn_clip package there")
    if a.make_checkpoint is None:
        for name in ("resume", "image_data", "image_feat_output_path"):
            if getattr(a, name) is None:
                p.error(f"--{name.replace('_', '-')} is required")
    return a


def model_info(src, vision, text):
    configs = os.path.join(src, "cn_clip", "clip", "model_configs")
    with open(os.path.join(configs, vision + ".json")) as fv, open(os.path.join(configs, text + ".json")) as ft:
        info = json.load(fv)
        info.update(json.load(ft))
    if isinstance(info["vision_layers"], str):  # "[3,4,6,3]" in RN50.json; the official code eval()s it
        info["vision_layers"] = json.loads(info["vision_layers"])
    return info


def main():
    a = parse_args()
    sys.path.insert(0, os.path.abspath(a.official_src))
    import torch
    from cn_clip.clip.model import CLIP, convert_weights
    from cn_clip.eval.data import get_eval_img_dataset

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = CLIP(**model_info(a.official_src, a.vision_model, a.text_model))
    convert_weights(model)
    for p in model.parameters():  # convert_models_to_fp32 of cn_clip/training/main.py
        p.data = p.data.float()
        if p.grad is not None:
            p.grad.data = p.grad.data.float()
    if a.make_checkpoint:
        torch.save({"epoch": 0, "step": 0, "name": "random-init", "state_dict": model.state_dict()}, a.make_checkpoint)
        print(json.dumps({"checkpoint": a.make_checkpoint, "arch": f"{a.vision_model}@{a.text_model}"}))
        return

    data = get_eval_img_dataset(a)
    checkpoint = torch.load(a.resume, map_location="cpu")
    sd = checkpoint["state_dict"]
    if next(iter(sd.items()))[0].startswith("module"):
        sd = {k[len("module."):]: v for k, v in sd.items() if "bert.pooler" not in k}
    model.load_state_dict(sd)

    written = 0
    loop_started = time.perf_counter()
    with open(a.image_feat_output_path, "w") as out:
        model.eval()
        with torch.no_grad():
            for image_ids, images in data.dataloader:
                features = model(images, None)
                features /= features.norm(dim=-1, keepdim=True)
                for image_id, feature in zip(image_ids.tolist(), features.tolist()):
                    out.write("{}\n".format(json.dumps({"image_id": image_id, "feature": feature})))
                    written += 1
    ended = time.perf_counter()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(json.dumps({
        "bench": "ingest", "side": "official", "arch": f"{a.vision_model}@{a.text_model}", "images": written,
        "batch": a.img_batch_size, "threads": a.threads, "torch": torch.__version__, "cpu": cpu,
        "total_s": round(ended - STARTED, 2), "loop_s": round(ended - loop_started, 2),
        "images_per_s": round(written / (ended - STARTED), 3), "loop_images_per_s": round(written / (ended - loop_started), 3),
    }))


if __name__ == "__main__":
    main()
