#!/usr/bin/env python3
# Peer of `cnclip bench gemm`: the same fp32 products, timed the same way and printed with the same JSON fields, on
# Python PyTorch (Debian's python3-torch calls OpenBLAS). For each linear layer shape ROWSxINxOUT: forward x.W^T
# (torch.nn.functional.linear), input gradient dY.W and weight gradient dY^T.x (torch.mm); one warm-up, then the
# median of --repeats runs. Also prints the OpenBLAS core the process really uses (openblas_get_corename).
import argparse
import json
import statistics
import time

import torch

from official_train_step import openblas_core  # the same check of the OpenBLAS core in use (beside this file)

DEFAULT_SHAPES = "800x256x768,800x256x256,800x256x1024,800x1024x256,788x768x2304,788x768x768,788x768x3072,788x3072x768"


def median_ms(compute, repeats):
    compute()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        compute()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description="Time fp32 linear-layer products on Python PyTorch (peer of cnclip bench gemm).")
    p.add_argument("--shapes", default=DEFAULT_SHAPES)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    if a.threads < 1 or a.repeats < 1:
        p.error("--threads and --repeats must be at least 1")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    shapes, total = [], 0.0
    with torch.no_grad():
        for item in a.shapes.split(","):
            rows, n_in, n_out = (int(v) for v in item.strip().split("x"))
            x, w, dy = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(rows, n_out)
            flops = 2.0 * rows * n_in * n_out
            entry = {"rows": rows, "in": n_in, "out": n_out}
            for name, compute in (("forward", lambda: torch.nn.functional.linear(x, w)),
                                  ("grad_input", lambda: torch.mm(dy, w)),
                                  ("grad_weight", lambda: torch.mm(dy.t(), x))):
                ms = median_ms(compute, a.repeats)
                total += ms
                entry[name + "_ms"] = round(ms, 4)
                entry[name + "_gflops"] = round(flops / ms / 1e6, 2)
            shapes.append(entry)
    print(json.dumps({"bench": "gemm", "threads": a.threads, "repeats": a.repeats, "total_ms": round(total, 3),
                      "shapes": shapes, "openblas_core": openblas_core(), "torch_version": torch.__version__}))


if __name__ == "__main__":
    main()
