"""Video generation on the synthetic world, at CPU scale (9 frames, 32x32).

Models (trained by the exact CLI commands in benchmarks/RESULTS.md, or by ``--train``):
  VAE       vae-tiny on world_gen's train split (x4 space, x2 time: 9x32x32 -> 5x8x8x4)
  flow      dit-tiny, flow matching + temporal-consistency loss, on world_gen (2400 videos, seed 1)
  epsilon   dit-tiny, epsilon prediction, same data, 100 steps: only to time DDPM/DDIM
  lora      LoRA (rank 8) of the flow model on 40 clips restyled with a warm sepia grade

Measured here, on world_gen's test split and its held-out compositional split:
  * semantic accuracy by two judges trained on world_600 (never on world_gen): the
    R(2+1)D action classifier and the video-text retrieval model (shape / colour /
    action among captions that change only that attribute), next to the same judges on
    the real clips, on VAE reconstructions, and on generated clips scored against
    another prompt's attributes (what a model that ignores the prompt would get);
  * Fréchet distances (FVD-style on clips, FID-style on frames) with the video-text
    R(2+1)D's features (a vidfm encoder trained on the world, not I3D/Inception),
    projected onto their 16 leading principal components (FD_DIMS): with ~100 clips, the
    estimate on the full 256-d features is dominated by its bias. The distance between two
    halves of the real clips (``fvd_floor``) says what "no difference" scores;
  * flicker and flow-warp error; PSNR/SSIM for first+last-frame interpolation against
    the real middle frames (and a cross-fade baseline);
  * seconds per clip and peak memory for DDPM 1000, DDIM 50/25 (epsilon model) and
    flow-matching Euler 25 steps (flow model), one clip, guidance 4.

    python benchmarks/generation.py [--train] [--prompts 120] [--json benchmarks/results/generation.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data"
RUNS = DATA / "runs" / "gen"
VIDFM = str(Path(sys.executable).with_name("vidfm"))
JUDGE_CLASSIFIER = DATA / "runs" / "families" / "r2plus1d-tiny"
JUDGE_RETRIEVAL = DATA / "runs" / "pretrain" / "contrastive"
FD_DIMS = 16  # principal components the Fréchet distances are computed on (see frechet_distance)

TRAIN = {
    "vae": [VIDFM, "train", "vae", str(DATA / "world_gen"), "--out", str(RUNS / "vae"), "--max-steps", "1600", "--epochs", "100", "--batch-size", "16", "--lr", "1e-3",
            "--warmup", "0.05", "--checkpoint-every", "200"],
    "flow": [VIDFM, "train", "denoiser", str(DATA / "world_gen"), "--vae", str(RUNS / "vae"), "--out", str(RUNS / "flow"), "--denoiser", "dit-tiny",
             "--prediction", "flow", "--max-steps", "2500", "--epochs", "1000", "--batch-size", "32", "--lr", "5e-4", "--ema", "0.99",
             "--temporal-weight", "0.5", "--checkpoint-every", "250"],
    # trained briefly: it exists to time DDPM / DDIM sampling (time per step does not depend on training)
    "epsilon": [VIDFM, "train", "denoiser", str(DATA / "world_gen"), "--vae", str(RUNS / "vae"), "--out", str(RUNS / "epsilon"), "--denoiser", "dit-tiny",
                "--prediction", "epsilon", "--max-steps", "100", "--epochs", "1000", "--batch-size", "32", "--lr", "5e-4", "--ema", "0.99", "--checkpoint-every", "250"],
    "lora": [VIDFM, "train", "denoiser", str(DATA / "style_lora" / "captions.jsonl"), "--init", str(RUNS / "flow"), "--lora-rank", "8",
             "--out", str(RUNS / "lora"), "--max-steps", "300", "--epochs", "1000", "--batch-size", "16", "--lr", "1e-3", "--checkpoint-every", "100"],
}  # fmt: skip


def style(frames: np.ndarray) -> np.ndarray:
    """The new look the LoRA learns: a warm sepia grade."""
    f = frames.astype(np.float32)
    grey = f.mean(-1, keepdims=True)
    return np.clip(0.5 * f + 0.5 * grey * np.array([1.25, 1.0, 0.65]) + np.array([30, 12, 0]), 0, 255).astype(np.uint8)


def warmth(videos: np.ndarray) -> float:
    """Mean red-minus-blue (0-255): how strongly a set of clips carries the style."""
    v = np.asarray(videos, dtype=np.float32)
    return float((v[..., 0] - v[..., 2]).mean())


def make_style_set(n: int = 40) -> Path:
    from vidfm.io.writer import write_video
    from vidfm.tasks.generation_eval import real_clips, world_prompts

    out = DATA / "style_lora"
    if (out / "captions.jsonl").exists():
        return out
    recs = world_prompts(DATA / "world_gen", "train")[:n]
    clips = real_clips(recs, 9, 32)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    lines = []
    for r, c in zip(recs, clips):
        path = out / "videos" / f"{r['video_id']}.mp4"
        write_video(path, style(c), fps=8)
        lines.append(json.dumps({"path": f"videos/{path.name}", "captions": r["captions"]}))
    (out / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return out


def train_all() -> dict:
    seconds = {}
    for name, cmd in TRAIN.items():
        if name == "lora":
            make_style_set()
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds[name] = time.perf_counter() - t0
    return seconds


def sample(pipe, prompt, seed: int = 0, steps: int = 25, guidance: float = 4.0, **kw) -> np.ndarray:
    """(B, T, H, W, 3) uint8 clips, the noise drawn from a generator seeded with ``seed``."""
    return pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(seed), **kw).frames


def generate(pipe, records, batch: int = 40, **kw) -> np.ndarray:
    return np.concatenate([sample(pipe, [r["prompt"] for r in records[s : s + batch]], seed=s, **kw) for s in range(0, len(records), batch)])


def speed_row(run: Path, scheduler: str, steps: int) -> dict:
    """Seconds per clip and peak RSS, in a fresh process (RSS of the whole process: weights,
    libraries and activations; the load-only baseline is measured the same way)."""
    code = f"""
import json, resource, time, torch
torch.set_num_threads(2)
from vidfm.pipelines import VideoGenerationPipeline
p = VideoGenerationPipeline.from_pretrained({str(run)!r})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
p("a red circle moves left", num_inference_steps=2, scheduler={scheduler!r})
t = time.perf_counter(); n = 3 if {steps} < 200 else 1
for i in range(n):
    p("a red circle moves left", num_inference_steps={steps}, scheduler={scheduler!r}, generator=torch.Generator().manual_seed(i))
print(json.dumps({{"seconds_per_clip": (time.perf_counter() - t) / n, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "load_rss_mb": base / 1024}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="store_true", help="run the training commands first (resume where they stopped)")
    ap.add_argument("--prompts", type=int, default=120)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--parts", default="quality,speed", help="comma-separated: quality (judges, distances, interpolation, LoRA), speed")
    ap.add_argument("--json")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    import torch

    from vidfm.metrics.generation import (
        fid,
        flicker,
        flow_warp_error,
        frechet_distance,
        frechet_floor,
        psnr_ssim_uint8,
    )
    from vidfm.models.generative import load_vae
    from vidfm.pipelines import VideoGenerationPipeline
    from vidfm.pipelines.video_generation import to_model_range, to_uint8
    from vidfm.retrieval.embedder import Embedder
    from vidfm.tasks.generation_eval import SemanticJudge, real_clips, world_prompts

    results: dict = {"train_seconds": train_all() if args.train else None}
    if "speed" in parts:
        results["speed"] = speed_table()
    if "quality" not in parts:
        return save(results, args.json)
    judge = SemanticJudge(JUDGE_CLASSIFIER, JUDGE_RETRIEVAL)
    feats = Embedder(JUDGE_RETRIEVAL).embed_arrays
    vae = load_vae(RUNS / "vae" / "best")

    def reconstruct(videos):
        with torch.no_grad():
            return np.concatenate([to_uint8(vae.decode(vae.encode(torch.cat([to_model_range(v) for v in videos[s : s + 32]])).mode())) for s in range(0, len(videos), 32)])

    pipes = {"flow": VideoGenerationPipeline.from_pretrained(RUNS / "flow")}
    for split in ("test", "compositional"):
        recs = world_prompts(DATA / "world_gen", split, args.prompts)
        real = real_clips(recs, 9, 32)
        recon = reconstruct(real)
        shuffled = recs[1:] + recs[:1]
        rows = {"real clips": judge.score(real, recs), "VAE reconstructions": judge.score(recon, recs)}
        psnr, ssim = psnr_ssim_uint8(real, recon)
        rows["VAE reconstructions"].update(psnr=psnr, ssim=ssim)
        real_feats = feats(real)
        for steps in (25, 10, 50) if split == "test" else (25,):
            t0 = time.perf_counter()
            fake = generate(pipes["flow"], recs, steps=steps, guidance=args.guidance)
            seconds = time.perf_counter() - t0
            row = judge.score(fake, recs)
            row.update(fvd=frechet_distance(real_feats, feats(fake), FD_DIMS), fid=fid(real, fake, feats, FD_DIMS), flicker=flicker(fake),
                       flow_warp_error=flow_warp_error(fake), seconds_per_clip=seconds / len(recs))  # fmt: skip
            rows[f"flow DiT, Euler {steps} steps"] = row
            if steps != 25:
                continue
            rows["flow DiT, judged against another prompt"] = judge.score(fake, shuffled)
            if split == "test":
                from vidfm.io.writer import save_contact_sheet

                save_contact_sheet(ROOT / "results" / "generation_samples.png", np.concatenate(fake[:8]), columns=9, scale=2,
                                   labels=[r["prompt"][-14:] if i == 0 else "" for r in recs[:8] for i in range(9)])  # fmt: skip
        # "no difference" at this sample size: two halves of the real clips (the estimate's bias)
        rows["real clips"].update(fvd_to_recon=frechet_distance(real_feats, feats(recon), FD_DIMS), fvd_floor=frechet_floor(real_feats, FD_DIMS),
                                  flicker=flicker(real), flow_warp_error=flow_warp_error(real))  # fmt: skip
        results[split] = rows
        print(f"\n[{split}] {len(recs)} prompts")
        for k, r in rows.items():
            extra = " ".join(f"{m}={r[m]:.3f}" for m in ("fvd", "fid", "fvd_floor", "flicker", "flow_warp_error", "psnr", "ssim") if m in r)
            print(f"  {k:45s} action(cls)={r['classifier_action_accuracy']:.3f} shape={r['retrieval_shape_accuracy']:.3f} "
                  f"colour={r['retrieval_colour_accuracy']:.3f} action(ret)={r['retrieval_action_accuracy']:.3f} all={r['retrieval_all_accuracy']:.3f} {extra}")  # fmt: skip

    # first + last frame -> video: PSNR/SSIM of the 7 middle frames against the real ones
    recs = world_prompts(DATA / "world_gen", "test", args.prompts)
    real = real_clips(recs, 9, 32)
    pipe = pipes["flow"]
    flf = np.stack([sample(pipe, r["prompt"], seed=i, guidance=args.guidance, image=v[0], last_image=v[-1])[0] for i, (r, v) in enumerate(zip(recs, real))])
    i2v = np.stack([sample(pipe, r["prompt"], seed=i, guidance=args.guidance, image=v[0])[0] for i, (r, v) in enumerate(zip(recs, real))])
    w = np.linspace(0, 1, 9)[None, :, None, None, None]
    fade = (real[:, :1] * (1 - w) + real[:, -1:] * w).round().astype(np.uint8)
    results["interpolation"] = {
        "first+last frame (flow DiT)": dict(zip(("psnr", "ssim"), psnr_ssim_uint8(real[:, 1:-1], flf[:, 1:-1]))),
        "image to video (flow DiT)": dict(zip(("psnr", "ssim"), psnr_ssim_uint8(real[:, 1:-1], i2v[:, 1:-1]))),
        "cross-fade baseline": dict(zip(("psnr", "ssim"), psnr_ssim_uint8(real[:, 1:-1], fade[:, 1:-1]))),
        "first frame held (baseline)": dict(zip(("psnr", "ssim"), psnr_ssim_uint8(real[:, 1:-1], np.repeat(real[:, :1], 7, 1)))),
    }
    results["interpolation"]["first+last frame (flow DiT)"].update(judge.score(flf, recs))
    print("\n[interpolation, test]", json.dumps(results["interpolation"], indent=1))

    # LoRA style adaptation
    if (RUNS / "lora" / "best").exists():
        lora = VideoGenerationPipeline.from_pretrained(RUNS / "lora")
        recs = world_prompts(DATA / "world_gen", "test", 48)
        base_v, lora_v = generate(pipes["flow"], recs, steps=25, guidance=args.guidance), generate(lora, recs, steps=25, guidance=args.guidance)
        styled_real = style(real_clips(recs, 9, 32))
        results["lora"] = {
            "warmth (R-B): real styled clips": warmth(styled_real), "warmth: base model": warmth(base_v), "warmth: LoRA model": warmth(lora_v),
            "judge on base": judge.score(base_v, recs), "judge on LoRA": judge.score(lora_v, recs),
            "adapter_bytes": sum(p.stat().st_size for p in (RUNS / "lora" / "best" / "lora").iterdir()),
            "base_denoiser_bytes": sum(p.stat().st_size for p in (RUNS / "flow" / "best" / "denoiser").iterdir()),
        }  # fmt: skip
        print("\n[LoRA]", json.dumps({k: v for k, v in results["lora"].items() if not isinstance(v, dict)}, indent=1))

    save(results, args.json)


def save(results: dict, path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2, default=float))


def speed_table() -> dict:
    rows = {
        "DDPM 1000 (epsilon)": speed_row(RUNS / "epsilon", "ddpm", 1000),
        "DDIM 50 (epsilon)": speed_row(RUNS / "epsilon", "ddim", 50),
        "DDIM 25 (epsilon)": speed_row(RUNS / "epsilon", "ddim", 25),
        "flow-matching Euler 25 (flow)": speed_row(RUNS / "flow", "euler", 25),
    }
    base = rows["DDPM 1000 (epsilon)"]["seconds_per_clip"]
    print("\n[speed, 1 clip 9x32x32, guidance 4, 2 CPU cores]")
    for k, r in rows.items():
        print(f"  {k:32s} {r['seconds_per_clip']:.3f} s/clip ({base / r['seconds_per_clip']:.0f}x faster than DDPM 1000), peak RSS {r['peak_rss_mb']:.0f} MB (after load {r['load_rss_mb']:.0f} MB)")
    return rows


if __name__ == "__main__":
    main()
