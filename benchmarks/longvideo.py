"""Long videos: memory of streaming captions against video length, and needles in haystacks.

    python benchmarks/longvideo.py [--parts rss,needle] [--minutes 1,5,20,60] [--needle-minutes 1,5,15,30] [--seeds 2] [--json F]

Part ``rss``:
Haystacks of world clips (``vidfm haystack --no-needle``, world_600) of each length are
captioned scene by scene in two ways, each in a fresh process, and the process's peak RSS
(VmHWM) is read at the end:
  stream  ``vidfm caption VIDEO --stream``: decode as it goes, online SceneTilling, one
          bounded frame buffer per scene (vidfm.tasks.longvideo.stream_captions);
  batch   what one writes with whole-video tools: SceneTilling over the whole video
          (``detect_scenes``), then each scene's frames read by random access and captioned
          with the same model (``VideoReader.get_frames`` builds a frame index; every
          scene's frames are decoded together).
Captions are capped at 8 new tokens here (memory does not depend on their length).

Part ``needle``: haystacks of each length with a needle clip at each depth (``vidfm
haystack``), three questions each (shape, action, when), answered by the tiny Video-LLM of
benchmarks/videollm.py in three ways: uniform frames, retrieval over a window index (the
video-text model of benchmarks/pretrain.py), and the memory bridge (trained here with
``vidfm train videollm --stage memory --init`` that model). The ceiling row shows the model
only the needle clip. Accuracy per cell, drawn as heat maps (benchmarks/results/niavh.png).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from classify import DATA, world

STREAM = """
import json, sys, time
from vidfm.models.videollm import VideoLLM
from vidfm.tasks.longvideo import stream_captions
m = VideoLLM.from_pretrained({model!r}); m.config.max_new_tokens = 8
t0 = time.perf_counter()
scenes = list(stream_captions(m, {video!r}))
"""
BATCH = """
import json, sys, time
import numpy as np, torch
from vidfm.data.transforms import to_float_clip
from vidfm.io.reader import VideoReader
from vidfm.io.samplers import uniform_indices
from vidfm.models.videollm import VideoLLM
from vidfm.shots.scenes import detect_scenes
from vidfm.tasks.videollm import DESCRIBE
m = VideoLLM.from_pretrained({model!r}); c = m.config; c.max_new_tokens = 8
t0 = time.perf_counter()
sc = detect_scenes({video!r}).as_dict()["scenes"]
scenes = []
with VideoReader({video!r}, size=(c.read_size, c.read_size)) as r:
    ts = r.timestamps
    for s in sc:
        idx = np.flatnonzero((ts >= s["start"]) & (ts < s["end"]))
        idx = idx[uniform_indices(len(idx), c.num_frames)]
        with torch.no_grad():
            f = m.encode_video(to_float_clip(r.get_frames(idx))[None], [torch.from_numpy(ts[idx] - s["start"])], [s["end"] - s["start"]])
        scenes.append({{"start": s["start"], "end": s["end"], "caption": m.generate(f, [[{{"role": "user", "content": DESCRIBE}}]])[0]}})
"""
TAIL = """
hwm = next(int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:'))
print(json.dumps({"scenes": len(scenes), "seconds": time.perf_counter() - t0, "peak_rss_mb": hwm, "first": scenes[0]["caption"]}))
"""


def measure(kind: str, model: Path, video: Path) -> dict:
    code = (STREAM if kind == "stream" else BATCH).format(model=str(model), video=str(video)) + TAIL
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{kind} on {video} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def train_memory_model(base: Path, out: Path, root: Path) -> Path:
    if not (out / "best" / "videollm.json").exists():
        cmd = [str(Path(sys.executable).with_name("vidfm")), "train", "videollm", str(root), "--stage", "memory", "--init", str(base), "--out", str(out),
               "--memory-tokens", "32", "--epochs", "3", "--batch-size", "16", "--lr", "1e-3", "--json"]  # fmt: skip
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"memory training failed:\n{res.stderr[-2000:]}")
        (out / "train.json").write_text(json.dumps({"command": " ".join(cmd[1:]), "seconds": time.perf_counter() - t0}))
        print(f"trained the memory bridge in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return out


def needle_grid(model_dir: Path, memory_dir: Path, video_text: Path, root: Path, lengths: list[float], depths: list[float], seeds: int) -> list[dict]:
    import shutil
    import tempfile

    from vidfm.data.haystack import make_haystack
    from vidfm.models.videollm import VideoLLM
    from vidfm.tasks.longvideo import answer_needle, score_needle

    model, memory = VideoLLM.from_pretrained(model_dir), VideoLLM.from_pretrained(memory_dir)
    rows = []
    for minutes, depth, seed in [(m, d, s) for m in lengths for d in depths for s in range(seeds)]:
        video = DATA / "long" / f"needle_{minutes:g}min_{depth:g}_{seed}.mp4"
        info = make_haystack(root, video, minutes, depth=depth, seed=int(minutes * 100 + depth * 10) + 1000 * seed) if not video.with_suffix(".json").exists() \
            else json.loads(video.with_suffix(".json").read_text())  # fmt: skip
        needle = {**info, "video": info["needle"]["source"], "questions": [q for q in info["questions"] if q["type"] != "when"]}
        results = {"ceiling": score_needle(answer_needle(model, needle, "uniform"))}
        for method, m in (("uniform", model), ("memory", memory), ("retrieval", model)):
            tmp = Path(tempfile.mkdtemp())
            t0 = time.perf_counter()
            results[method] = score_needle(answer_needle(m, info, method, video_text=video_text, index_dir=tmp / "idx"))
            results[method]["seconds"] = time.perf_counter() - t0
            shutil.rmtree(tmp)
        rows.append({"minutes": minutes, "depth": depth, "seed": seed, "needle": info["needle"], **results})
        (Path(__file__).parent / "results" / "niavh_partial.json").write_text(json.dumps(rows, indent=1, default=str))
        print(f"{minutes:5g} min depth {depth:.2f} seed {seed}: " + "  ".join(f"{k} {v['accuracy']:.2f}" + (f" (found {v['found']:.2f})" if v.get("found") is not None else "")
                                                              for k, v in results.items()), flush=True)  # fmt: skip
    return rows


def heat_maps(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    lengths, depths = sorted({r["minutes"] for r in rows}), sorted({r["depth"] for r in rows})
    methods = ["uniform", "retrieval", "memory", "ceiling"]
    fig, axes = plt.subplots(1, len(methods), figsize=(4 * len(methods), 3.4))
    for ax, method in zip(axes, methods):
        grid = np.full((len(depths), len(lengths)), np.nan)
        for (i, d), (j, m) in [((i, d), (j, m)) for i, d in enumerate(depths) for j, m in enumerate(lengths)]:
            cell = [r[method]["accuracy"] for r in rows if r["depth"] == d and r["minutes"] == m]
            grid[i, j] = np.mean(cell) if cell else np.nan
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(lengths)), [f"{m:g}" for m in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:g}" for d in depths])
        ax.set_xlabel("video length (min)")
        ax.set_ylabel("needle depth")
        ax.set_title(method)
    fig.suptitle(f"Needle in a video haystack: accuracy (shape, action, when; {len(rows) // (len(lengths) * len(depths))} haystacks per cell)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"heat map: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DATA / "runs" / "videollm" / "tiny"))
    ap.add_argument("--minutes", default="1,5,20,60")
    ap.add_argument("--kinds", default="stream,batch")
    ap.add_argument("--parts", default="rss,needle")
    ap.add_argument("--needle-minutes", default="1,5,15,30")
    ap.add_argument("--depths", default="0,0.5,1")
    ap.add_argument("--seeds", type=int, default=2, help="haystacks per cell")
    ap.add_argument("--json")
    args = ap.parse_args()
    from vidfm.data.haystack import make_haystack

    root = world(600)
    results: dict = {}
    if "needle" in args.parts:
        memory = train_memory_model(Path(args.model), DATA / "runs" / "videollm" / "memory", root)
        rows = needle_grid(Path(args.model), memory, DATA / "runs" / "pretrain" / "contrastive", root,
                           [float(x) for x in args.needle_minutes.split(",")], [float(x) for x in args.depths.split(",")], args.seeds)  # fmt: skip
        heat_maps(rows, Path(__file__).parent / "results" / "niavh.png")
        (Path(__file__).parent / "results" / "niavh_partial.json").unlink(missing_ok=True)  # kept only while the grid runs
        results["needle"] = rows
    rows = []
    for minutes in [float(x) for x in args.minutes.split(",")] if "rss" in args.parts else []:
        video = DATA / "long" / f"haystack_{minutes:g}min.mp4"
        if not video.exists():
            video.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            make_haystack(root, video, minutes, depth=None, seed=0)
            print(f"built {video.name} in {time.perf_counter() - t0:.0f} s", flush=True)
        for kind in args.kinds.split(","):
            row = {"minutes": minutes, "kind": kind, **measure(kind, Path(args.model), video)}
            rows.append(row)
            print(f"{minutes:5g} min  {kind:<6}  peak RSS {row['peak_rss_mb']:7.0f} MB  {row['scenes']:5d} scenes  {row['seconds']:7.1f} s", flush=True)
    if rows:
        base = {r["kind"]: r["peak_rss_mb"] for r in rows if r["minutes"] == rows[0]["minutes"]}
        for r in rows:
            r["rss_vs_shortest"] = r["peak_rss_mb"] / base[r["kind"]]
        print("peak RSS relative to the shortest video: " + ", ".join(f"{r['kind']} {r['minutes']:g} min {r['rss_vs_shortest']:.2f}x" for r in rows))
        results["rss"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
