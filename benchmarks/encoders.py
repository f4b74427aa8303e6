"""Encoder throughput: vidfm's VideoMAE / TimeSformer vs transformers', side by side.

    python benchmarks/encoders.py [--device cpu|cuda] [--dtype fp32|bf16] [--batch 2] [--json out.json]

Identical configs and identical weights: each transformers model is built, saved, and loaded
into vidfm's encoder with ``from_transformers`` (the outputs are compared, max abs diff
printed). Both use PyTorch SDPA attention where they have it. Reported: inference clips/s
(forward, no grad) and training clips/s (forward + backward), and the memory one step needs
above the loaded model (activations, gradients, workspace). Each measurement runs in a fresh
process. On CPU: after the timed steps, freed memory is handed back to the OS
(``malloc_trim``), the kernel's RSS high-water mark is reset (``/proc/self/clear_refs``) and
one more step runs; its peak RSS minus the RSS before it is the step's memory. (Loading a
checkpoint peaks higher than a step does, so the process's lifetime peak says nothing about
the step.) On GPU: ``torch.cuda.max_memory_allocated`` during that step minus the allocation
before it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

CONFIGS = {
    # ViT-S/16 at 112 px: 16 frames -> 8 x 7 x 7 = 392 tokens (VideoMAE), 8 frames x 49 (TimeSformer)
    "videomae": dict(image_size=112, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=384,
                     num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),  # fmt: skip
    "timesformer": dict(image_size=112, patch_size=16, num_frames=8, hidden_size=384,
                        num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),  # fmt: skip
}


def build(family: str, impl: str, folder: str):
    import torch

    from vidfm.models import TimeSformerEncoder, VideoMAEEncoder

    if impl == "transformers":
        from transformers import AutoModel

        try:
            return AutoModel.from_pretrained(folder, attn_implementation="sdpa")
        except ValueError:  # transformers' TimeSformer has no SDPA path: eager attention only
            return AutoModel.from_pretrained(folder)
    cls = VideoMAEEncoder if family == "videomae" else TimeSformerEncoder
    torch.manual_seed(0)
    return cls.from_transformers(folder)


def measure(family: str, impl: str, mode: str, folder: str, batch: int, iters: int, device: str, dtype: str) -> dict:
    import resource

    import torch

    torch.manual_seed(0)
    model = build(family, impl, folder).to(device)
    cfg = CONFIGS[family]
    video = torch.rand(batch, cfg["num_frames"], 3, cfg["image_size"], cfg["image_size"], device=device)
    amp = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bf16")

    def step():
        with amp:
            out = model(video)
            y = out.last_hidden_state if impl == "transformers" else out.tokens
        if mode == "train":
            y.float().mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    if mode == "train":
        model.train()
        ctx = torch.enable_grad()
    else:
        model.eval()
        ctx = torch.no_grad()
    with ctx:
        step()  # warm-up: one-time allocations (kernels, workspaces) are not the step's cost
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        seconds = time.perf_counter() - t0
        if mode == "train":
            model.zero_grad(set_to_none=True)
        base = _memory_baseline(device)
        step()
        step_mb = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _peak_rss_mb()) - base
    lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"clips_per_s": batch * iters / seconds, "peak_mb": step_mb, "process_peak_mb": lifetime}


def _memory_baseline(device: str) -> float:
    """What the process holds before a step, with the peak counter reset to it (MB)."""
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap back, so the step's allocations show in RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:  # one measurement in this fresh process
        family, impl, mode, folder = args.worker
        print(json.dumps(measure(family, impl, mode, folder, args.batch, args.iters, args.device, args.dtype)))
        return

    import torch
    from transformers import (
        TimesformerConfig,
        TimesformerModel,
        VideoMAEConfig,
        VideoMAEModel,
    )

    from vidfm.models import TimeSformerEncoder, VideoMAEEncoder
    from vidfm.models.common import normalize_video

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, {args.dtype}, batch {args.batch}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family, (cfg_cls, model_cls, ours_cls) in {
            "videomae": (VideoMAEConfig, VideoMAEModel, VideoMAEEncoder),
            "timesformer": (TimesformerConfig, TimesformerModel, TimeSformerEncoder),
        }.items():
            torch.manual_seed(0)
            folder = f"{tmp}/{family}"
            model_cls(cfg_cls(**CONFIGS[family])).save_pretrained(folder)
            hf, ours = model_cls.from_pretrained(folder).eval(), ours_cls.from_transformers(folder).eval()
            x = torch.rand(1, CONFIGS[family]["num_frames"], 3, 112, 112)
            with torch.no_grad():  # ours normalises [0, 1] input itself; transformers gets processed pixels
                pixels = normalize_video(x, ours.config.pixel_mean, ours.config.pixel_std)
                diff = (hf(pixels).last_hidden_state - ours(x).tokens).abs().max().item()
            n_params = sum(p.numel() for p in ours.parameters()) / 1e6
            print(f"\n== {family}: {n_params:.1f} M parameters, outputs differ by at most {diff:.2e}")
            results[family] = {"max_abs_diff": diff, "params_m": n_params}
            for mode in ("infer", "train"):
                row = {}
                for impl in ("transformers", "vidfm"):
                    cmd = [sys.executable, __file__, "--worker", family, impl, mode, folder, "--batch", str(args.batch),
                           "--iters", str(args.iters), "--device", args.device, "--dtype", args.dtype]  # fmt: skip
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
                    row[impl] = json.loads(out)
                ratio = row["vidfm"]["clips_per_s"] / row["transformers"]["clips_per_s"]
                mem = row["vidfm"]["peak_mb"] / row["transformers"]["peak_mb"]
                print(
                    f"  {mode:<6} transformers {row['transformers']['clips_per_s']:7.2f} clips/s, peak {row['transformers']['peak_mb']:7.0f} MB | "
                    f"vidfm {row['vidfm']['clips_per_s']:7.2f} clips/s, peak {row['vidfm']['peak_mb']:7.0f} MB | speed x{ratio:.2f}, memory x{mem:.2f}"
                )
                results[family][mode] = {**row, "speed_ratio": ratio, "memory_ratio": mem}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
