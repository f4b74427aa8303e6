"""Video generation on the synthetic world (world_gen2: 2400 videos, 30 % with camera motion).

Models are trained by the CLI commands in benchmarks/RESULTS.md ("Generation quality,
issue 17"); this script only measures them. Parts (``--parts``, comma-separated):

  vae        the VAE ablation: each --vaes run's reconstructions judged like generated clips
  judges     the WorldJudge ceilings: colour, shape, action, camera and trajectory judged
             on real clips and on the VAE's reconstructions (test + compositional)
  quality    a model on held-out test prompts and the compositional split, Euler 10/25
             steps: judges, trajectory error, flicker, Fréchet distances (with the
             real-vs-real floor), and the same clips judged against another prompt
  ablation   every run named by --ablation, the same table at one setting
  camera     --camera control: requested motion vs motion estimated in the output
  drift      10x-length videos by windows / shared noise / keyframes: judges, colour, size
             and sharpness against time (results/generation_drift.png)
  storyboard 3-shot storyboards: cuts found by the shot detector, object kept or not
  speed      seconds per clip and peak RSS: 32x32x9 and 64x64x17, 10/25 steps, and DDPM 1000

    python benchmarks/generation.py --parts judges,quality --model benchmarks/_data/runs/gen2/p1 --json benchmarks/results/generation17.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data"
WORLD = DATA / "world_gen2"
RUNS = DATA / "runs" / "gen2"
JUDGE_ACTION = RUNS / "judge_action"
FEATURES = DATA / "runs" / "pretrain" / "contrastive"  # a vidfm video-text R(2+1)D trained on world_600: Fréchet features
FD_DIMS = 16  # principal components the Fréchet distances use (see vidfm.metrics.generation.frechet_distance)
RESULTS = ROOT / "results"


def sample(pipe, prompt, seed: int = 0, steps: int = 25, guidance: float = 4.0, **kw) -> np.ndarray:
    """(B, T, H, W, 3) uint8 clips, the noise drawn from a generator seeded with ``seed``."""
    return pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(seed), **kw).frames


def generate(pipe, records, batch: int = 32, **kw) -> np.ndarray:
    return np.concatenate([sample(pipe, [r["prompt"] for r in records[s : s + batch]], seed=s, **kw) for s in range(0, len(records), batch)])


def world_judge(frames: int, size: int):
    """WorldJudge with a shape judge fitted on world_gen2's train clips at this geometry
    (cached beside the runs) and the action classifier trained on world_gen2."""
    from vidfm.tasks.generation_eval import (
        ShapeNet,
        WorldJudge,
        fit_shape_judge,
        real_clips,
        world_prompts,
    )

    cache = RUNS / f"judge_shape_{frames}x{size}.pt"
    model = ShapeNet()
    if cache.exists():
        model.load_state_dict(torch.load(cache))
    else:
        recs = world_prompts(WORLD, "train")
        model = fit_shape_judge(real_clips(recs, frames, size), [r["shape"] for r in recs], [r["colour"] for r in recs])
        torch.save(model.state_dict(), cache)
    return WorldJudge(model, JUDGE_ACTION)


def fd_features():
    """The Fréchet feature extractor, or None when its pre-training run is absent (the
    Fréchet columns are then left out, the judges still run)."""
    from vidfm.retrieval.embedder import Embedder

    if not (FEATURES / "best").exists():
        print(f"note: no Fréchet feature model at {FEATURES} (python benchmarks/pretrain.py --only contrastive): FVD/FID-style columns left out")
        return None
    return Embedder(FEATURES).embed_arrays


def clip_metrics(fake: np.ndarray, real: np.ndarray, feats) -> dict:
    from vidfm.metrics.generation import fid, flicker, frechet_distance

    if feats is None:
        return {"flicker": flicker(fake)}
    return {"fvd": frechet_distance(feats(real), feats(fake), FD_DIMS), "fid": fid(real, fake, feats, FD_DIMS), "flicker": flicker(fake)}


def reconstruct(vae, real: np.ndarray) -> np.ndarray:
    from vidfm.pipelines.video_generation import to_model_range, to_uint8

    with torch.no_grad():
        return np.concatenate([to_uint8(vae.decode(vae.encode(torch.cat([to_model_range(v) for v in real[s : s + 32]])).mode())) for s in range(0, len(real), 32)])


def vae_row(vae, real: np.ndarray, recs: list[dict], judge) -> dict:
    from vidfm.metrics.generation import flicker, psnr_ssim_uint8

    recon = reconstruct(vae, real)
    return {**judge.score(recon, recs, reference=real), **dict(zip(("psnr", "ssim"), psnr_ssim_uint8(real, recon))), "flicker": flicker(recon)}


def part_judges(pipe, n: int) -> dict:
    from vidfm.metrics.generation import camera_motion, flicker, frechet_floor
    from vidfm.tasks.generation_eval import (
        colour_masks,
        object_pixels,
        real_clips,
        world_prompts,
    )

    frames, size = pipe.config.num_frames, pipe.config.height
    judge, feats = world_judge(frames, size), fd_features()
    out = {}
    for split in ("test", "compositional"):
        recs = world_prompts(WORLD, split, n)
        real = real_clips(recs, frames, size)
        rows = {"real clips": judge.score(real, recs, reference=real), "VAE reconstructions": vae_row(pipe.vae, real, recs, judge),
                "real clips, judged against another prompt": judge.score(real, recs[1:] + recs[:1])}  # fmt: skip
        rows["real clips"].update(flicker=flicker(real), **({"fvd_floor": frechet_floor(feats(real), FD_DIMS)} if feats else {}))
        # the camera judge alone (not the whole judge again) on the moving-camera clips, per background
        hits = {i: camera_motion(real[i], ignore=object_pixels(colour_masks(real[i : i + 1])[0])) == r["camera"] for i, r in enumerate(recs) if r["camera"] != "static"}
        by_bg = {bg: float(np.mean([h for i, h in hits.items() if recs[i]["background"] == bg])) for bg in ("solid", "gradient", "textured")
                 if any(recs[i]["background"] == bg for i in hits)}  # fmt: skip
        rows["real clips"]["camera_accuracy_moving_by_background"] = by_bg
        out[split] = rows
        show(f"judges on {split} ({len(recs)} clips)", rows)
    return out


def part_vae(vaes: list[str], n: int, frames: int = 9, size: int = 32) -> dict:
    """The VAE ablation: what each VAE's reconstructions of the test clips keep."""
    from vidfm.models.generative import load_vae
    from vidfm.tasks.generation_eval import real_clips, world_prompts

    judge = world_judge(frames, size)
    recs = world_prompts(WORLD, "test", n)
    real = real_clips(recs, frames, size)
    rows = {"real clips": judge.score(real, recs, reference=real)}
    for folder in vaes:
        vae = load_vae(Path(folder) / "best")
        rows[f"{Path(folder).name} (x{vae.spatial_factor} space, {vae.config.latent_channels} ch)"] = vae_row(vae, real, recs, judge)
    show(f"VAE reconstructions, test ({len(recs)} clips)", rows)
    return rows


def part_quality(pipe, n: int, steps_list=(25, 10), splits=("test", "compositional"), sheet: Path | None = None) -> dict:
    from vidfm.tasks.generation_eval import real_clips, world_prompts

    frames, size = pipe.config.num_frames, pipe.config.height
    judge, feats = world_judge(frames, size), fd_features()
    out = {}
    for split in splits:
        recs = world_prompts(WORLD, split, n)
        real = real_clips(recs, frames, size)
        rows = {}
        for steps in steps_list if split == "test" else steps_list[:1]:
            t0 = time.perf_counter()
            fake = generate(pipe, recs, steps=steps)
            row = {**judge.score(fake, recs, reference=real), **clip_metrics(fake, real, feats), "seconds_per_clip": (time.perf_counter() - t0) / len(recs)}
            rows[f"Euler {steps} steps" if pipe.config.prediction == "flow" else f"DDIM {steps} steps"] = row
            if steps == steps_list[0]:
                rows["the same clips, judged against another prompt"] = judge.score(fake, recs[1:] + recs[:1])
                if sheet is not None and split == "test":
                    save_samples(sheet, fake[:8], [r["prompt"] for r in recs[:8]])
        out[split] = rows
        show(f"quality on {split} ({len(recs)} prompts)", rows)
    return out


def save_samples(path: Path, clips: np.ndarray, prompts: list[str]) -> None:
    from vidfm.io.writer import save_contact_sheet

    t = clips.shape[1]
    save_contact_sheet(path, np.concatenate(list(clips)), columns=t, scale=max(2, 96 // clips.shape[2]), row_labels=prompts)


def part_ablation(runs: list[str], n: int) -> dict:
    from vidfm.pipelines import VideoGenerationPipeline

    out = {}
    for spec in runs:
        run, _, variant = spec.partition(":")  # RUN:raw = the run's last weights without EMA (its checkpoint), for the EMA ablation
        pipe = VideoGenerationPipeline.from_pretrained(run)
        if variant == "raw":
            pipe.denoiser.load_state_dict(torch.load(Path(run) / "checkpoint" / "pytorch_model.bin", map_location="cpu"))
        steps = json.loads((Path(run) / "metrics.jsonl").read_text().strip().splitlines()[-1]).get("step")
        out[Path(run).name + (" (no EMA)" if variant == "raw" else "")] = {"train_steps": steps, **part_quality(pipe, n, steps_list=(25,), splits=("test",))["test"]}
    return out


def part_camera(pipe, per_motion: int, strengths=(0.0, 0.3, 0.5)) -> dict:
    """Prompts of test objects on a textured background (where a camera motion is visible
    at all), each asked with every camera motion: by caption (the model's own learning),
    and by warp (``vidfm.pipelines.camera``) at each SDEdit ``strengths``, the warp moving
    the clip the caption-free prompt gave. Colour and shape are judged on every output, so
    a control that wrecks the content shows."""
    from vidfm.data.synthetic import CAMERA_MOTIONS
    from vidfm.metrics.generation import camera_motion
    from vidfm.pipelines.camera import generate_with_camera, move_camera
    from vidfm.pipelines.long_video import with_camera
    from vidfm.tasks.generation_eval import (
        colour_masks,
        object_pixels,
        real_clips,
        world_prompts,
    )

    judge = world_judge(pipe.config.num_frames, pipe.config.height)
    recs = [r for r in world_prompts(WORLD, "test") if r["camera"] == "static"][:per_motion]
    base = [f"{'an' if r['colour'] == 'orange' else 'a'} {r['colour']} {r['shape']} stays still on a textured background" for r in recs]
    plain = np.concatenate([sample(pipe, base[s : s + 32], seed=s) for s in range(0, len(base), 32)])

    def score(fake, motion):
        predicted = [camera_motion(v, ignore=object_pixels(m)) for v, m in zip(fake, colour_masks(fake))]
        scores = judge.score(fake, recs)
        return {"accuracy": float(np.mean([q == motion for q in predicted])), "found": {m: predicted.count(m) for m in CAMERA_MOTIONS if predicted.count(m)},
                "colour": scores["colour_accuracy"], "shape": scores["shape_accuracy"]}  # fmt: skip

    controls: dict = {"caption": {}, **{f"warp {st:g}": {} for st in strengths}}
    t0 = time.time()
    for motion in CAMERA_MOTIONS:
        prompts = [with_camera(q, motion.replace("_", "-")) for q in base]
        controls["caption"][motion] = score(np.concatenate([sample(pipe, prompts[s : s + 32], seed=s) for s in range(0, len(prompts), 32)]), motion)
        for st in strengths:
            fake = np.stack([generate_with_camera(pipe, q, motion, st, 25, 4.0, torch.Generator().manual_seed(k), video=v) for k, (q, v) in enumerate(zip(base, plain))])
            controls[f"warp {st:g}"][motion] = score(fake, motion)
        print(f"  {motion}: " + ", ".join(f"{c} {r[motion]['accuracy']:.2f}" for c, r in controls.items()), f"({time.time() - t0:.0f} s)")
    summary = {c: {"moving_accuracy": float(np.mean([r[m]["accuracy"] for m in CAMERA_MOTIONS[1:]])), "static_accuracy": r["static"]["accuracy"],
                   "colour": float(np.mean([r[m]["colour"] for m in CAMERA_MOTIONS])), "shape": float(np.mean([r[m]["shape"] for m in CAMERA_MOTIONS]))}
               for c, r in controls.items()}  # fmt: skip
    real_recs = [r for r in world_prompts(WORLD, "test") + world_prompts(WORLD, "val") if r["camera"] != "static" and r["background"] == "textured"]
    real = real_clips(real_recs, pipe.config.num_frames, pipe.config.height)
    ceiling = float(np.mean([camera_motion(v, ignore=object_pixels(m)) == r["camera"] for v, m, r in zip(real, colour_masks(real), real_recs)]))
    # the warp alone on real still clips (textured): what the judge can find of it
    still_recs = [r for r in world_prompts(WORLD, "test") if r["camera"] == "static" and r["background"] == "textured"][:16]
    still = real_clips(still_recs, pipe.config.num_frames, pipe.config.height)
    warped_real = {}
    for motion in CAMERA_MOTIONS:
        moved = np.stack([move_camera(v, motion) for v in still])
        warped_real[motion] = float(np.mean([camera_motion(v, ignore=object_pixels(m)) == motion for v, m in zip(moved, colour_masks(moved))]))
    result = {"summary": summary, "by_request": controls, "real_textured_camera_clips_accuracy": ceiling, "real_clips": len(real_recs),
              "warp_of_real_still_clips": warped_real, "prompts_per_motion": len(recs)}  # fmt: skip
    print("\n[camera control]", json.dumps(summary, indent=1), f"\n  real textured moving-camera clips: {ceiling:.3f} ({len(real_recs)})",
          "\n  the warp of real still clips:", json.dumps(warped_real))
    return result


def part_drift(pipe, prompts: int, steps: int, length_factor: int = 10) -> dict:
    """Per method, judges and object statistics in every window-length segment of a long
    video, against the segment's index (time)."""
    from vidfm.metrics.generation import sharpness
    from vidfm.pipelines.long_video import LONG_METHODS, long_video
    from vidfm.tasks.generation_eval import (
        COLOUR_NAMES,
        colour_masks,
        min_pixels,
        world_prompts,
    )

    judge = world_judge(pipe.config.num_frames, pipe.config.height)
    recs = [r for r in world_prompts(WORLD, "test") if r["camera"] == "static" and r["action"] == "stay_still"][:prompts]
    recs += [r for r in world_prompts(WORLD, "test") if r["camera"] == "static" and r["action"] in ("move_left", "move_right", "rotate")][: max(0, prompts - len(recs))]
    t = pipe.config.num_frames
    total = length_factor * t
    out = {}
    for method in LONG_METHODS:
        t0 = time.perf_counter()
        videos = long_video(pipe, [r["prompt"] for r in recs], total, method=method, num_inference_steps=steps)
        seconds = time.perf_counter() - t0
        segs = [videos[:, s : s + t] for s in range(0, total - t + 1, t)]
        colour_ok, shape_ok, colour_dev, area_ratio, judged = [], [], [], [], []
        first_rgb, first_area = None, None
        for seg in segs:
            masks = colour_masks(seg)
            cidx = np.array([COLOUR_NAMES.index(r["colour"]) for r in recs])
            own = masks == cidx[:, None, None, None]
            shown = own.sum((2, 3)) >= min_pixels(seg.shape[3])
            colour_ok.append(float((shown.sum(1) >= max(1, t // 3)).mean()))
            shapes = judge.predict_shapes(masks, list(cidx))
            shape_ok.append(float(np.mean([s == r["shape"] for s, r in zip(shapes, recs)])))
            judged.append([(bool(ok), s) for ok, s in zip(shown.sum(1) >= max(1, t // 3), shapes)])
            # mean colour of the object (all its pixels, before the palette snap) and its mean area
            rgb = np.array([seg[i][own[i]].mean(0) if own[i].any() else np.full(3, np.nan) for i in range(len(recs))])
            area = own.sum((1, 2, 3)) / t
            if first_rgb is None:
                first_rgb, first_area = rgb, np.maximum(area, 1)
            colour_dev.append(float(np.nanmean(np.linalg.norm(rgb - first_rgb, axis=1))))
            area_ratio.append(float(np.mean(area / first_area)))
        sharp = sharpness(videos).mean(0)
        # attribute consistency: later windows judged the same as the first (colour shown or not, the same shape)
        same = [[seg[i] == judged[0][i] for i in range(len(recs))] for seg in judged[1:]]
        out[method] = {"colour_shown": colour_ok, "shape_correct": shape_ok, "object_colour_shift": colour_dev, "object_area_ratio": area_ratio,
                       "sharpness_by_frame": sharp.tolist(), "attribute_consistency": float(np.mean(same)),
                       "consistent_with_first_window": [float(np.mean(x)) for x in same], "seconds_per_video": seconds / len(recs), "frames": total}  # fmt: skip
        print(f"[drift] {method:13s} consistency={out[method]['attribute_consistency']:.3f} colour={np.round(colour_ok, 2).tolist()} "
              f"shape={np.round(shape_ok, 2).tolist()} area={np.round(area_ratio, 2).tolist()} {seconds / len(recs):.1f} s/video")  # fmt: skip
        if method == "keyframes":
            save_samples(RESULTS / "generation_long_keyframes.png", videos[:3, :: max(1, total // 30)], [r["prompt"] for r in recs[:3]])
    plot_drift(out, RESULTS / "generation_drift.png", t)
    return out


def plot_drift(out: dict, path: Path, t: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    panels = [("colour_shown", "prompted colour shown"), ("shape_correct", "prompted shape (judge)"), ("object_area_ratio", "object area / first window's")]
    for method, r in out.items():
        for ax, (key, title) in zip(axes, panels):
            ax.plot(np.arange(len(r[key])) + 1, r[key], marker="o", label=method)
            ax.set_title(title)
            ax.set_xlabel(f"window ({t} frames each)")
        axes[3].plot(r["sharpness_by_frame"], label=method)
    axes[3].set_title("sharpness (Laplacian variance)")
    axes[3].set_xlabel("frame")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def part_storyboard(pipe, boards: int, steps: int) -> dict:
    """Boards of 3 shots: A, then A's object doing something else (same_object), then B.
    Measured: cuts the shot detector (TransNetV2, as 'vidfm shots') finds within 1 frame,
    and whether shot 2 keeps shot 1's object (judged shape equal, area ratio)."""
    import tempfile

    from vidfm.io.writer import write_video
    from vidfm.pipelines.long_video import storyboard
    from vidfm.shots.detect import detect_shots
    from vidfm.tasks.generation_eval import COLOUR_NAMES, colour_masks, world_prompts

    judge = world_judge(pipe.config.num_frames, pipe.config.height)
    recs = [r for r in world_prompts(WORLD, "test") if r["camera"] == "static"]
    out = {}
    for keep in (True, False):
        found, same_shape, ratios = [], [], []
        for b in range(boards):
            a, other = recs[2 * b], recs[2 * b + 1]
            second = f"{'an' if a['colour'] == 'orange' else 'a'} {a['colour']} {a['shape']} {'stays still' if a['action'] != 'stay_still' else 'moves to the right'}"
            shots = [{"prompt": a["prompt"]}, {"prompt": second, "same_object": keep}, {"prompt": other["prompt"]}]
            video, ranges = storyboard(pipe, shots, seed=100 * b, num_inference_steps=steps)
            with tempfile.TemporaryDirectory() as d:
                path = Path(d) / "film.mp4"
                write_video(path, video, fps=pipe.config.fps)
                detected = detect_shots(path)
            starts = [s for s, _ in detected.ranges[1:]]
            truth = [r[0] for r in ranges[1:]]
            found.append(sum(any(abs(s - c) <= 1 for s in starts) for c in truth) / len(truth))
            c = COLOUR_NAMES.index(a["colour"])
            s1, s2 = (video[r[0] : r[1] + 1][None] for r in ranges[:2])
            p1, p2 = judge.predict_shapes(colour_masks(s1), [c])[0], judge.predict_shapes(colour_masks(s2), [c])[0]
            same_shape.append(p1 is not None and p1 == p2)
            a1, a2 = (float((colour_masks(s) == c).sum()) / s.shape[1] for s in (s1, s2))
            ratios.append(min(a1, a2) / max(a1, a2, 1.0))
            if b == 0 and keep:
                save_samples(RESULTS / "generation_storyboard.png", np.stack([video[r[0] : r[0] + pipe.config.num_frames] for r in ranges]), [s["prompt"] for s in shots])
        out["same_object" if keep else "fresh noise per shot"] = {"cut_recall": float(np.mean(found)), "shot2_same_shape": float(np.mean(same_shape)),
                                                                  "shot2_area_ratio": float(np.mean(ratios)), "boards": boards}  # fmt: skip
    print("\n[storyboard]", json.dumps(out, indent=1))
    return out


def speed_row(run: Path, scheduler: str, steps: int) -> dict:
    """Seconds per clip and peak RSS, in a fresh process (RSS of the whole process:
    weights, libraries and activations; the load-only baseline is measured the same way)."""
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


def part_speed(models: dict[str, tuple[str, str, list[int]]]) -> dict:
    rows = {}
    for name, (run, scheduler, steps_list) in models.items():
        for steps in steps_list:
            rows[f"{name}, {scheduler} {steps}"] = speed_row(Path(run), scheduler, steps)
    print("\n[speed, 1 clip, guidance 4, 2 CPU cores]")
    for k, r in rows.items():
        print(f"  {k:45s} {r['seconds_per_clip']:.3f} s/clip, peak RSS {r['peak_rss_mb']:.0f} MB (after load {r['load_rss_mb']:.0f} MB)")
    return rows


def show(title: str, rows: dict) -> None:
    print(f"\n[{title}]")
    keys = ("colour_accuracy", "shape_accuracy", "action_accuracy", "camera_accuracy", "trajectory_error_px", "trajectory_error_still_px", "fvd", "fid", "fvd_floor", "flicker", "psnr")
    for k, r in rows.items():
        print(f"  {k:48s} " + " ".join(f"{m.replace('_accuracy', '')}={r[m]:.3f}" for m in keys if isinstance(r.get(m), float)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(RUNS / "main"), help="the generation pipeline to measure")
    ap.add_argument("--parts", default="judges,quality", help="comma-separated: judges, quality, ablation, camera, drift, storyboard, speed")
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--long-steps", type=int, default=10, help="sampling steps for the drift and storyboard parts (many calls each)")
    ap.add_argument("--vaes", nargs="*", default=[], help="VAE run folders compared by --parts vae")
    ap.add_argument("--ablation", nargs="*", default=[], help="run folders compared in the ablation; RUN:raw takes the run's last weights without EMA")
    ap.add_argument("--speed", nargs="*", default=[], help="NAME=RUN:SCHEDULER:STEPS,STEPS entries for the speed table")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))  # 2 cores; 1 when two jobs share them
    from vidfm.pipelines import VideoGenerationPipeline

    parts = set(args.parts.split(","))
    results: dict = {"model": args.model, "command": " ".join(sys.argv)}
    if "camera" in parts:  # the warped camera repaints with SDEdit: the same pipeline, plus editing
        from vidfm.editing import VideoEditPipeline as VideoGenerationPipeline  # noqa: N814
    pipe = VideoGenerationPipeline.from_pretrained(args.model) if parts - {"ablation", "speed", "vae"} else None
    RESULTS.mkdir(exist_ok=True)
    if "judges" in parts:
        results["judges"] = part_judges(pipe, args.prompts)
    if "quality" in parts:
        results["quality"] = part_quality(pipe, args.prompts, sheet=RESULTS / f"generation_samples_{pipe.config.height}_{Path(args.model).name}.png")
    if "vae" in parts:
        results["vae"] = part_vae(args.vaes, args.prompts)
    if "ablation" in parts:
        results["ablation"] = part_ablation(args.ablation, args.prompts)
    if "camera" in parts:
        results["camera"] = part_camera(pipe, max(2, args.prompts // 8))
    if "drift" in parts:
        results["drift"] = part_drift(pipe, max(2, args.prompts // 12), args.long_steps)
    if "storyboard" in parts:
        results["storyboard"] = part_storyboard(pipe, max(2, args.prompts // 12), args.long_steps)
    if "speed" in parts:
        models = {}
        for entry in args.speed:
            name, spec = entry.split("=", 1)
            run, scheduler, steps = spec.split(":")
            models[name] = (run, scheduler, [int(s) for s in steps.split(",")])
        results["speed"] = part_speed(models)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
