"""Collections at scale: one process against Ray Data on this machine, and a long run that
is killed halfway and resumed.

    python benchmarks/scale.py --parts index large --json benchmarks/results/scale.json

index: ``vidfm index`` of the 600-video world (contrastive r2plus1d-tiny model,
  ``benchmarks/_data/runs/pretrain/contrastive``) in one process (``update_index``, torch
  on both cores) and with ``--engine ray`` (2 actors x 0.5 CPU, one torch thread each);
  videos/s of each (Ray's start-up included) and the largest difference between the two
  indexes' vectors.
large: ``vidfm embed --engine ray`` over N short world videos (the 600 files hard-linked N/600
  times under distinct names: distinct paths, the same bytes), with an untrained
  r2plus1d-tiny (4 frames, 32 px) so decoding and scheduling dominate. The command is
  SIGKILLed once half of the shards are done, then started again with the same arguments.
  Sampled every second: the resident memory of the driver and of all its Ray processes,
  and the shards finished (videos/s per tenth of the run).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parent / "_data"
WORLD = ROOT / "world_600"
MODEL = ROOT / "runs" / "pretrain" / "contrastive"


def bench_index(tmp: Path) -> dict:
    import torch

    from vidfm.data.datasets import find_videos
    from vidfm.retrieval.embedder import Embedder
    from vidfm.retrieval.index import VideoIndex, update_index
    from vidfm.scale import RayOptions, index_with_engine

    videos = find_videos(WORLD / "videos")
    torch.set_num_threads(2)
    t = time.perf_counter()
    update_index(tmp / "one", videos, Embedder(MODEL))
    one = time.perf_counter() - t
    t = time.perf_counter()
    _, job = index_with_engine(tmp / "ray", videos, MODEL, ray_options=RayOptions(num_cpus=2))
    ray_s = time.perf_counter() - t
    with VideoIndex.open(tmp / "one") as a, VideoIndex.open(tmp / "ray") as b:
        diff = float(np.abs(a.vectors.reconstruct_n(0, len(a)) - b.vectors.reconstruct_n(0, len(b))).max())
        same_rows = a.db.execute("SELECT path, start, end FROM segments ORDER BY id").fetchall() == b.db.execute(
            "SELECT path, start, end FROM segments ORDER BY id").fetchall()  # fmt: skip
    import ray

    ray.shutdown()
    out = {"videos": len(videos), "one_process_s": one, "one_process_videos_per_s": len(videos) / one, "ray_s": ray_s,
           "ray_videos_per_s": len(videos) / ray_s, "ray_over_one": one / ray_s, "actors": job.actors, "max_vector_diff": diff,
           "same_rows": same_rows}  # fmt: skip
    print(f"index {len(videos)} videos: one process {out['one_process_videos_per_s']:.2f} videos/s, Ray {out['ray_videos_per_s']:.2f} "
          f"videos/s ({out['ray_over_one']:.2f}x), max vector difference {diff:.1e}, same rows {same_rows}")  # fmt: skip
    return out


def _tree_rss(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def _watch(cmd, parts: Path, stop_at_shards: int | None, total_shards: int) -> dict:
    """Run ``cmd`` in its own process group, sampling memory and finished shards each second;
    SIGKILL the group once ``stop_at_shards`` shards are done."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    t0, trace, killed = time.perf_counter(), [], False
    while proc.poll() is None:
        done = len(list(parts.glob("*.json"))) if parts.exists() else 0
        trace.append({"t": round(time.perf_counter() - t0, 1), "shards": done, "rss_mb": round(_tree_rss(proc.pid), 1)})
        if stop_at_shards is not None and done >= stop_at_shards:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(1.0)
    out, err = proc.communicate()
    return {"seconds": time.perf_counter() - t0, "killed": killed, "returncode": proc.returncode, "trace": trace, "stdout": out.decode(), "stderr": err.decode()[-2000:]}


def _rss_by_progress(trace: list[dict]) -> dict:
    """Memory when 25, 50, 75 and 100 % of the shards the run had left were done."""
    first, last = trace[0]["shards"], max(r["shards"] for r in trace)
    out = {}
    for q in (0.25, 0.5, 0.75, 1.0):
        goal = first + q * (last - first)
        row = next(r for r in trace if r["shards"] >= goal)
        out[f"{int(q * 100)}%"] = row["rss_mb"]
    return out


def bench_large(tmp: Path, n: int) -> dict:
    import pyarrow.parquet as pq
    import torch

    from vidfm.data.datasets import find_videos
    from vidfm.models import build_encoder
    from vidfm.scale.batch import auto_shard_size

    torch.manual_seed(0)
    build_encoder("r2plus1d-tiny", num_frames=4, image_size=32).save_pretrained(tmp / "encoder")
    source = find_videos(WORLD / "videos")
    folder = tmp / "many"
    folder.mkdir()
    for k in range(n):
        os.link(source[k % len(source)], folder / f"{k:06d}.mp4")
    shards = -(-n // auto_shard_size(n))
    out = tmp / "features.parquet"
    cmd = [sys.executable, "-m", "vidfm", "embed", str(folder), "--model", str(tmp / "encoder"), "--out", str(out), "--engine", "ray", "--json"]
    first = _watch(cmd, tmp / "features.parquet.parts", shards // 2, shards)
    second = _watch(cmd, tmp / "features.parquet.parts", None, shards)
    assert second["returncode"] == 0, second["stderr"]
    report = json.loads(second["stdout"])
    rows = pq.read_table(out, columns=["path"]).num_rows
    trace = first["trace"] + [{**r, "t": r["t"] + first["seconds"], "run": 2} for r in second["trace"]]
    rates = []
    for run in (first["trace"], second["trace"]):  # videos/s between samples a tenth of the run apart
        step = max(1, len(run) // 10)
        for a, b in zip(run[::step], run[step::step]):
            if b["t"] > a["t"] and b["shards"] > a["shards"]:
                rates.append(round((b["shards"] - a["shards"]) * auto_shard_size(n) / (b["t"] - a["t"]), 2))
    rss = [r["rss_mb"] for r in trace if r["rss_mb"]]
    result = {
        "videos": n, "shards": shards, "shard_size": auto_shard_size(n), "first_run_s": first["seconds"], "killed_after_shards": first["trace"][-1]["shards"],
        "second_run_s": second["seconds"], "reused": report["reused"], "processed_after_restart": report["processed"], "rows": rows,
        "failed": len(report["failed"]), "videos_per_s_second_run": report["videos_per_second"], "rates_per_tenth": rates,
        "rss_mb_by_progress": _rss_by_progress(second["trace"]), "rss_mb_peak": max(rss), "trace": trace,
    }  # fmt: skip
    print(f"large: {n} videos, killed after {result['killed_after_shards']}/{shards} shards ({first['seconds']:.0f} s); restart reused "
          f"{result['reused']} videos and did {result['processed_after_restart']} in {second['seconds']:.0f} s; {rows} rows; "
          f"videos/s per tenth {rates}; RSS of the driver + its Ray processes by shards done (second run) "
          f"{result['rss_mb_by_progress']}, peak {result['rss_mb_peak']:.0f} MB")  # fmt: skip
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["index", "large"], choices=["index", "large"])
    ap.add_argument("--videos", type=int, default=10000, help="large: videos in the simulated collection")
    ap.add_argument("--json")
    args = ap.parse_args()
    results = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else {}
    with tempfile.TemporaryDirectory(prefix="vidfm-scale-") as tmp:
        tmp = Path(tmp)
        if "index" in args.parts:
            results["index"] = bench_index(tmp)
        if "large" in args.parts:
            results["large"] = bench_large(tmp, args.videos)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
