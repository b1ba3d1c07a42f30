"""The peer of `cnclip bench gpu`: one fine-tuning step of Hugging Face transformers' ChineseCLIPModel with the
configuration of OFA-Sys/chinese-clip-vit-base-patch16 (written out below, random weights), AdamW, bf16 autocast,
the same batch shape as ours; prints one JSON line. `--print-config` prints the configuration without importing
torch or transformers (what can be checked on a machine without them)."""
import argparse
import json
import random
import statistics
import sys
import time

CONTEXT_LENGTH = 52
VOCAB_SIZE = 21128


def config_dict():
    """ViT-B/16 image tower and RoBERTa-wwm-ext-base text tower, as in ../shared/reference/model_configs
    (ViT-B-16.json, RoBERTa-wwm-ext-base-chinese.json) and the published HF config of the same checkpoint."""
    return {
        "projection_dim": 512,
        "logit_scale_init_value": 2.6592,
        "text_config": {
            "vocab_size": VOCAB_SIZE, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
            "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        },
        "vision_config": {
            "hidden_size": 768, "intermediate_size": 3072, "projection_dim": 512, "num_hidden_layers": 12,
            "num_attention_heads": 12, "num_channels": 3, "image_size": 224, "patch_size": 16,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0,
        },
    }


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--context-length", type=int, default=CONTEXT_LENGTH)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16", help="bf16: autocast over fp32 weights")
    p.add_argument("--device", default="cuda")
    p.add_argument("--grad-checkpointing", action="store_true", help="transformers' gradient_checkpointing_enable()")
    p.add_argument("--phase-steps", type=int, default=5, help="extra steps cut into phases (0: none)")
    p.add_argument("--profile-top", type=int, default=0,
                   help="after the timing, one more step under torch.profiler; report its N kernels with the most CUDA time")
    p.add_argument("--print-config", action="store_true")
    a = p.parse_args(argv)
    if a.batch < 1 or a.steps < 1 or a.warmup < 0 or a.context_length < 10 or a.phase_steps < 0 or a.profile_top < 0:
        p.error("--batch and --steps must be at least 1, --warmup, --phase-steps and --profile-top not negative, --context-length at least 10")
    return a


def top_kernels(trace_path, top):
    """The kernels of a torch.profiler Chrome trace, summed by name: the `top` with the most device time, and totals."""
    events = json.load(open(trace_path))
    events = events.get("traceEvents", events) if isinstance(events, dict) else events
    by_name = {}
    for e in events:
        if e.get("cat") == "kernel" and "dur" in e:
            k = by_name.setdefault(e["name"], [0, 0.0])
            k[0] += 1
            k[1] += e["dur"] / 1000.0
    total = sum(v[1] for v in by_name.values())
    rows = sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]
    return {"kernel_ms_total": round(total, 3), "kernels": sum(v[0] for v in by_name.values()), "distinct": len(by_name),
            "top": [{"name": n[:160], "count": c, "ms": round(ms, 3), "share": round(ms / total, 4) if total else None} for n, (c, ms) in rows]}


def random_ids(batch, context_length, seed=0):
    """[CLS] + random word pieces of random length + [SEP], zero-padded (as cnclip's bench does)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(batch):
        n = rng.randrange(8, context_length - 1)
        rows.append([101] + [rng.randrange(672, VOCAB_SIZE) for _ in range(n)] + [102] + [0] * (context_length - n - 2))
    return rows


def main(argv):
    a = parse(argv)
    if a.print_config:
        print(json.dumps(config_dict()))
        return 0
    import torch
    from transformers import ChineseCLIPConfig, ChineseCLIPModel

    c = config_dict()
    config = ChineseCLIPConfig(text_config=c["text_config"], vision_config=c["vision_config"],
                               projection_dim=c["projection_dim"], logit_scale_init_value=c["logit_scale_init_value"])
    torch.manual_seed(0)
    device = torch.device(a.device)
    model = ChineseCLIPModel(config).to(device).train()
    if a.grad_checkpointing:
        model.gradient_checkpointing_enable()
    # The official fine-tuning recipe's AdamW for ViT towers: betas (0.9, 0.98), eps 1e-6.
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.001)
    ids = torch.tensor(random_ids(a.batch, a.context_length), device=device)
    mask = (ids != 0).long()
    pixels = torch.randn(a.batch, 3, 224, 224, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), pixel_values=pixels, return_loss=True)
        out.loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        return out.loss.item()

    times, loss = [], 0.0
    torch.cuda.reset_peak_memory_stats(device)
    try:
        for i in range(a.warmup + a.steps):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            loss = step()
            torch.cuda.synchronize(device)
            if i >= a.warmup:
                times.append((time.perf_counter() - start) * 1000)
    except torch.OutOfMemoryError as e:
        print(json.dumps({"bench": "gpu-train-step", "side": "transformers", "batch": a.batch, "fits": False,
                          "grad_checkpointing": a.grad_checkpointing, "error": str(e).splitlines()[0][:300]}))
        return 0
    median = statistics.median(times)

    # Where a step's time goes, cut as cnclip's bench cuts it (each phase ended by a synchronize; 5 steps, medians):
    # the towers called as ChineseCLIPModel.forward calls them, then its loss, backward and the optimizer.
    def phases():
        laps = {"image_forward": [], "text_forward": [], "loss_backward": [], "adamw": []}
        labels = torch.arange(a.batch, device=device)
        for _ in range(a.phase_steps):
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize(device)
            start = time.perf_counter()

            def lap(name):
                nonlocal start
                torch.cuda.synchronize(device)
                laps[name].append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                image = model.visual_projection(model.vision_model(pixel_values=pixels)[1])
                lap("image_forward")
                text = model.text_projection(model.text_model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))[0][:, 0, :])
                lap("text_forward")
                image = image / image.norm(p=2, dim=-1, keepdim=True)
                text = text / text.norm(p=2, dim=-1, keepdim=True)
                logits = model.logit_scale.exp() * text @ image.t()
                loss = (torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.t(), labels)) / 2
            loss.backward()
            lap("loss_backward")
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, 4.6052)
            lap("adamw")
        return {k: round(statistics.median(v), 2) for k, v in laps.items()}
    try:
        split = phases() if a.phase_steps > 0 else None
    except Exception as e:  # the timing above stands even if the cut fails
        split = {"error": f"{type(e).__name__}: {e}"}

    def profile():
        import os
        import tempfile
        from torch.profiler import ProfilerActivity, profile as torch_profile
        step()  # the phase cut above ran other code paths: one plain step first
        torch.cuda.synchronize(device)
        with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            start = time.perf_counter()
            step()
            torch.cuda.synchronize(device)
            wall = (time.perf_counter() - start) * 1000
        path = os.path.join(tempfile.mkdtemp(), "trace.json")
        prof.export_chrome_trace(path)
        return dict(top_kernels(path, a.profile_top), profiled_step_wall_ms=round(wall, 2))
    try:
        kernels = profile() if a.profile_top > 0 else None
    except Exception as e:
        kernels = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps({
        "bench": "gpu-train-step", "side": "transformers", "model": "ChineseCLIPModel (chinese-clip-vit-base-patch16 config, random init)",
        "torch": torch.__version__, "device": torch.cuda.get_device_name(device), "batch": a.batch,
        "context_length": a.context_length, "precision": "bf16 autocast, fp32 weights" if a.precision == "bf16" else "fp32",
        "fits": True, "grad_checkpointing": a.grad_checkpointing,
        "steps": a.steps, "ms_per_step_median": round(median, 2), "samples_per_s": round(a.batch * 1000 / median, 2),
        "ms_per_step": [round(t, 2) for t in times], "final_loss": loss,
        "max_memory_allocated_mib": round(torch.cuda.max_memory_allocated(device) / 2**20), "phases_ms": split,
        "profile": kernels,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
