"""Reads what bench/gpu/run.sh left in its log folder: the decisions it takes between phases (which variant is fastest,
the largest batch the memory samples predict, how many kernels ncu can profile in the time left) and the summary it
prints last. Standard library only (it runs where torch may be missing).

    python3 report.py best OUT                      fastest padded variant of the batch-128 rounds (else 'base')
    python3 report.py largest OUT SIDE TOTAL_MIB    batch predicted to fill TOTAL_MIB, from SIDE's sweep runs
    python3 report.py ckpt-largest OUT TOTAL_MIB    the same with gradient checkpointing, from its runs so far
    python3 report.py ncu-cap OUT SECONDS_LEFT      kernels ncu can profile in the time left, from the probe run
    python3 report.py summary OUT                   summary.json and summary.txt in OUT; the table and one JSON line
"""
import csv
import glob
import json
import os
import re
import statistics
import sys

FLOP_PER_SAMPLE = 80e9  # ViT-B/16 + RoBERTa-base, forward and backward (issue 6)
PEAK_BF16 = 989e12      # H100/H200 SXM dense bf16 datasheet, FLOP/s
MARGIN = 0.94           # share of the card's memory a predicted batch may fill (the allocator's slack, fragmentation)


def load(out, name):
    """A run's last JSON line, with its exit code, wall seconds and nvidia-smi peak; {'error': ...} when it has none."""
    path = os.path.join(out, name)
    r = {}
    try:
        lines = [l for l in open(path + ".json").read().splitlines() if l.startswith("{")]
        r = json.loads(lines[-1])
    except (OSError, IndexError, ValueError):
        try:
            err = [l for l in open(path + ".err").read().splitlines() if l.strip()]
        except OSError:
            err = []
        r = {"error": err[-1][:300] if err else "not run" if not os.path.exists(path + ".rc") else "no output"}
    for key, suffix in (("exit", ".rc"), ("wall_s", ".sec")):
        try:
            r[key] = float(open(path + suffix).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    try:
        r["nvidia_smi_peak_mib"] = max(int(x) for x in open(path + ".mem").read().split() if x.isdigit())
    except (OSError, ValueError):
        pass
    return r


def mfu(samples_per_s):
    return round(samples_per_s * FLOP_PER_SAMPLE / PEAK_BF16, 4)


def runs(out, prefix):
    return sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(out, prefix + "*.json")))


def cnclip_variants(out, prefix):
    """variant -> every round's result, over the cnclip runs named prefix*."""
    by = {}
    for name in runs(out, prefix):
        for v in load(out, name).get("variants", []):
            by.setdefault(v["variant"], []).append(v)
    return by


def best(out):
    by = cnclip_variants(out, "cnclip-128-r")
    timed = {k: statistics.median(x["ms_per_step_median"] for x in v if x.get("fits")) for k, v in by.items()
             if "full" not in k and any(x.get("fits") for x in v)}
    return min(timed, key=timed.get) if timed else "base"


def fit(points):
    """Least squares memory = a + k * batch over (batch, MiB) points."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(b for b, _ in points) / n
    my = sum(m for _, m in points) / n
    sxx = sum((b - mx) ** 2 for b, _ in points)
    if sxx == 0:
        return None
    k = sum((b - mx) * (m - my) for b, m in points) / sxx
    return my - k * mx, k


def sweep_points(out, side):
    pts = []
    for name in runs(out, f"sweep-{side}-"):
        r = load(out, name)
        ok = r.get("fits", True) and "error" not in r and (side != "cnclip" or all(v.get("fits") for v in r.get("variants", [{}])))
        if ok and r.get("nvidia_smi_peak_mib") and r.get("batch"):
            pts.append((r["batch"], r["nvidia_smi_peak_mib"]))
    return pts


def largest(out, side, total):
    f = fit(sweep_points(out, side))
    if not f or f[1] <= 0:
        return ""
    a, k = f
    return str(int((total * MARGIN - a) / k) // 32 * 32)


def ckpt_largest(out, total):
    """From two or more checkpointing runs that fit, the line through them; from the batch-128 run alone, a line
    through it and the sweep's fixed memory. The latter under-predicts: at 128 the memory is mostly fixed, and the
    checkpointing run's fixed part is larger than the sweep's (H200 call 6c: 74 MiB per sample from the 128 point,
    27 MiB between 128 and 1728)."""
    pts = []
    for name in runs(out, "ckpt-cnclip-"):
        r = load(out, name)
        ok = "error" not in r and all(v.get("fits") for v in r.get("variants", [{}]))
        if ok and r.get("nvidia_smi_peak_mib") and r.get("batch"):
            pts.append((r["batch"], r["nvidia_smi_peak_mib"]))
    f = fit(pts) if len({b for b, _ in pts}) >= 2 else None
    if f is None:
        sweep = fit(sweep_points(out, "cnclip"))
        at128 = [m for b, m in pts if b == 128]
        if not sweep or not at128:
            return ""
        f = (sweep[0], (at128[0] - sweep[0]) / 128)
    a, k = f
    return str(int((total * MARGIN - a) / k) // 32 * 32) if k > 0 else ""


def ncu_cap(out, left):
    """Per-kernel cost of ncu from the probe (100 kernels profiled inside one step), then how many fit in `left` s."""
    r = load(out, "ncu-probe")
    step = (r.get("profiled_step") or {}).get("ms")
    plain = statistics.median([v["ms_per_step_median"] for v in cnclip_variants(out, "cnclip-128-r").get(best(out), []) if v.get("fits")] or [100.0])
    if not step or "wall_s" not in r:
        return "0 0 0"
    per_kernel_s = max((step - plain) / 1000 / 100, 0.0005)
    fixed_s = r["wall_s"] - step / 1000
    cap = int((left - fixed_s - 15) / per_kernel_s)
    return f"{max(cap, 0)} {per_kernel_s:.4f} {fixed_s:.1f}"


def ncu_top(path, top=15):
    """ncu --csv --page raw with gpu__time_duration.sum: kernels summed by name, the `top` with the most time."""
    if not os.path.exists(path):
        return None
    rows = [l for l in open(path, errors="replace").read().splitlines() if l.startswith('"')]
    if not rows:
        return {"error": "no CSV rows in the ncu log"}
    table = list(csv.reader(rows))
    header = table[0]
    try:
        name_col = header.index("Kernel Name")
        time_col = header.index("gpu__time_duration.sum")
    except ValueError:
        return {"error": f"unexpected ncu columns: {header[:14]}"}
    by, count = {}, 0
    for row in table[1:]:
        try:
            ns = float(row[time_col].replace(",", ""))
        except (ValueError, IndexError):
            continue  # the units row
        count += 1
        k = by.setdefault(row[name_col], [0, 0.0])
        k[0] += 1
        k[1] += ns / 1e6
    total = sum(v[1] for v in by.values())
    top_rows = sorted(by.items(), key=lambda kv: -kv[1][1])[:top]
    return {"kernel_ms_total": round(total, 3), "kernels": count, "distinct": len(by),
            "top": [{"name": n[:160], "count": c, "ms": round(ms, 3), "share": round(ms / total, 4) if total else None} for n, (c, ms) in top_rows]}


def batch_of(name):
    return int(name.rsplit("-", 1)[-1])


def side_summary(r, name):
    keys = ( "ms_per_step_median", "samples_per_s", "fits", "error", "nvidia_smi_peak_mib", "max_memory_allocated_mib", "wall_s")
    s = {"batch": batch_of(name), **{k: r[k] for k in keys if k in r}}
    if "samples_per_s" in r:
        s["mfu"] = mfu(r["samples_per_s"])
    return s


def cnclip_single(r, name):
    """A one-variant cnclip run reduced like a peer run."""
    v = (r.get("variants") or [{}])[0]
    s = {"batch": batch_of(name), "variant": v.get("variant"), "fits": v.get("fits", False) if v else False}
    for k in ("ms_per_step_median", "samples_per_s", "error", "phases_ms", "host_vs_device_ms"):
        if k in v:
            s[k] = v[k]
    if "error" in r and not v:
        s["error"] = r["error"]
    for k in ("nvidia_smi_peak_mib", "wall_s"):
        if k in r:
            s[k] = r[k]
    if "samples_per_s" in s:
        s["mfu"] = mfu(s["samples_per_s"])
    return s


def summary(out):
    s = {}
    try:
        s["gpu"] = open(os.path.join(out, "gpu.csv")).read().strip().splitlines()[-1]
    except (OSError, IndexError):
        s["gpu"] = None
    try:
        s["phases"] = [l.rstrip() for l in open(os.path.join(out, "phases.log"))]
    except OSError:
        s["phases"] = []
    check = load(out, "check")
    s["checks"] = [{"name": c["name"], "ok": c["ok"], "detail": c["detail"]} for c in check["checks"]] if "checks" in check else check.get("error")

    # (c) batch 128: every variant over the rounds, the peer's rounds, ratios against the peer.
    by = cnclip_variants(out, "cnclip-128-r")
    peer = [load(out, n) for n in runs(out, "peer-128-r")]
    peer_ok = [p for p in peer if "ms_per_step_median" in p]
    peer_ms = statistics.median(p["ms_per_step_median"] for p in peer_ok) if peer_ok else None
    b128 = {}
    for name, rounds in by.items():
        ok = [x for x in rounds if x.get("fits")]
        if not ok:
            b128[name] = {"error": rounds[-1].get("error")}
            continue
        ms = statistics.median(x["ms_per_step_median"] for x in ok)
        last = ok[-1]
        b128[name] = {"ms": round(ms, 2), "rounds_ms": [x["ms_per_step_median"] for x in ok], "samples_per_s": round(128000 / ms, 1),
                      "mfu": mfu(128000 / ms), "phases_ms": next((x["phases_ms"] for x in reversed(ok) if x.get("phases_ms")), None),
                      "host_vs_device_ms": next((x["host_vs_device_ms"] for x in reversed(ok) if x.get("host_vs_device_ms")), None),
                      "bf16_recast": last.get("bf16_recast")}
        if peer_ms and "full" not in name:
            b128[name]["vs_peer"] = round(peer_ms / ms, 3)
    base = b128.get("base", {}).get("ms")
    for name, v in b128.items():
        if base and "ms" in v:
            v["vs_base"] = round(base / v["ms"], 3)
    s["batch128"] = {"cnclip": b128, "transformers": {"ms": round(peer_ms, 2) if peer_ms else None, "rounds_ms": [p["ms_per_step_median"] for p in peer_ok],
                                                      "samples_per_s": round(128000 / peer_ms, 1) if peer_ms else None, "mfu": mfu(128000 / peer_ms) if peer_ms else None,
                                                      "phases_ms": next((p.get("phases_ms") for p in reversed(peer_ok) if p.get("phases_ms")), None),
                                                      "errors": [p["error"] for p in peer if "error" in p]},
                     "cnclip_process_peak_mib": max((load(out, n).get("nvidia_smi_peak_mib") or 0) for n in runs(out, "cnclip-128-r")) if runs(out, "cnclip-128-r") else None,
                     "best_variant": best(out)}

    # (d) the sweep, (e) gradient checkpointing.
    s["sweep"] = {"cnclip": [cnclip_single(load(out, n), n) for n in runs(out, "sweep-cnclip-")],
                  "transformers": [side_summary(load(out, n), n) for n in runs(out, "sweep-peer-")]}
    for side in ("cnclip", "peer"):
        f = fit(sweep_points(out, side))
        if f:
            s["sweep"][f"{side}_memory_fit_mib"] = {"fixed": round(f[0]), "per_sample": round(f[1], 2)}
    s["grad_checkpointing"] = {"cnclip": [cnclip_single(load(out, n), n) for n in runs(out, "ckpt-cnclip-")],
                               "transformers": [side_summary(load(out, n), n) for n in runs(out, "ckpt-peer-")]}

    # (f) kernels: the peer's torch.profiler step, our ncu step.
    prof = next((p.get("profile") for p in reversed(peer_ok) if p.get("profile")), None)
    ours = ncu_top(os.path.join(out, "ncu-full.csv"))
    full = load(out, "ncu-full")
    if ours is not None:
        ours["profiled_step"] = full.get("profiled_step")
        ours["launch_count_cap"] = open(os.path.join(out, "ncu-full.cap")).read().strip() if os.path.exists(os.path.join(out, "ncu-full.cap")) else None
    s["kernels"] = {"transformers_torch_profiler": prof, "cnclip_ncu": ours,
                    "ncu_probe": {k: v for k, v in load(out, "ncu-probe").items() if k in ("profiled_step", "wall_s", "error", "exit")}}
    open(os.path.join(out, "summary.json"), "w").write(json.dumps(s, indent=1))
    text = table(s)
    open(os.path.join(out, "summary.txt"), "w").write(text)
    print(text)
    compact = {"gpu": s["gpu"], "best": s["batch128"]["best_variant"],
               "b128": {k: [v.get("ms"), v.get("vs_peer"), v.get("mfu")] for k, v in s["batch128"]["cnclip"].items()},
               "peer_b128_ms": s["batch128"]["transformers"]["ms"]}
    print(json.dumps(compact))


def short(name, n=70):
    name = re.sub(r"\s+", " ", name)
    return name if len(name) <= n else name[: n - 3] + "..."


def outcome(r, timed):
    if "ms_per_step_median" in r:
        return timed
    if r.get("fits") is False:
        return f"does not fit ({r.get('error')})"
    return f"failed: {r.get('error')}"


def table(s):
    L = [f"GPU: {s['gpu']}", "phases: " + "; ".join(s["phases"])]
    if isinstance(s["checks"], list):
        L.append("checks: " + ", ".join(f"{c['name']} {'ok' if c['ok'] else 'FAILED'}" for c in s["checks"]))
    else:
        L.append(f"checks: {s['checks']}")
    b = s["batch128"]
    L.append(f"batch 128 (medians of rounds): transformers {b['transformers']['ms']} ms {b['transformers']['rounds_ms']}, MFU {b['transformers']['mfu']}")
    L.append(f"{'variant':<16}{'ms':>8}{'vs base':>9}{'vs peer':>9}{'MFU':>8}  rounds / phases (recast, image, text, loss+bwd, adamw) / host vs device")
    for name, v in b["cnclip"].items():
        if "ms" not in v:
            L.append(f"{name:<16} {v.get('error')}")
            continue
        p = v.get("phases_ms") or {}
        hd = v.get("host_vs_device_ms") or {}
        L.append(f"{name:<16}{v['ms']:>8}{v.get('vs_base', ''):>9}{v.get('vs_peer', ''):>9}{v['mfu']:>8}  {v['rounds_ms']} / "
                 f"{p.get('bf16_pull_weights')}, {p.get('image_forward')}, {p.get('text_forward')}, {p.get('loss_backward')}, {p.get('adamw')} / "
                 f"{hd.get('host_queued')} vs {hd.get('device_done')}")
    tp = b["transformers"].get("phases_ms") or {}
    L.append(f"transformers phases: {tp}")
    L.append("sweep (side batch: ms, samples/s, MFU, nvidia-smi peak MiB):")
    for side in ("cnclip", "transformers"):
        for r in s["sweep"][side]:
            L.append(f"  {side} {r.get('batch')}: " + outcome(r, f"{r.get('ms_per_step_median')} ms, {r.get('samples_per_s')}/s, MFU {r.get('mfu')}, peak {r.get('nvidia_smi_peak_mib')} MiB"))
    for k in ("cnclip_memory_fit_mib", "peer_memory_fit_mib"):
        if k in s["sweep"]:
            L.append(f"  {k}: {s['sweep'][k]}")
    L.append("gradient checkpointing:")
    for side in ("cnclip", "transformers"):
        for r in s["grad_checkpointing"][side]:
            L.append(f"  {side} {r.get('batch')}: " + outcome(r, f"{r.get('ms_per_step_median')} ms, {r.get('samples_per_s')}/s, MFU {r.get('mfu')}, peak {r.get('nvidia_smi_peak_mib')} MiB"))
    for label, k in (("transformers (torch.profiler, one step)", "transformers_torch_profiler"), ("cnclip (ncu, one step)", "cnclip_ncu")):
        p = s["kernels"].get(k)
        if not p or "top" not in p:
            L.append(f"kernels {label}: {p}")
            continue
        L.append(f"kernels {label}: {p['kernels']} launches, {p['distinct']} distinct, {p['kernel_ms_total']} ms of kernel time")
        for i, t in enumerate(p["top"], 1):
            L.append(f"  {i:>2}. {t['ms']:>8.3f} ms {t['share'] * 100:5.1f}% x{t['count']:<4} {short(t['name'])}")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    cmd, out = sys.argv[1], sys.argv[2]
    if cmd == "best":
        print(best(out))
    elif cmd == "largest":
        print(largest(out, sys.argv[3], float(sys.argv[4])))
    elif cmd == "ckpt-largest":
        print(ckpt_largest(out, float(sys.argv[3])))
    elif cmd == "ncu-cap":
        print(ncu_cap(out, float(sys.argv[3])))
    elif cmd == "summary":
        summary(out)
    else:
        sys.exit(f"report.py: unknown command {cmd}")
