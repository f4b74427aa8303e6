"""Highlight detection and summaries against exact annotations.

    python benchmarks/highlights.py --json benchmarks/results/highlights.json

Highlights (QVHighlights-style mAP and HIT@1, moments inside the annotated interval are
relevant, random ranking as the floor):
* world: the 600-video world's test grounding queries ("the red square grows"), 0.5 s
  moments; the highlight is the annotated action interval.
* needles: the 1-minute needle-in-a-haystack videos (``benchmarks/_data/long``), 2 s
  moments; the query names the needle ("the green square"), the highlight is its clip.
Sources: motion (no model), query (the contrastive r2plus1d-tiny,
``runs/pretrain/contrastive``), grounding (``runs/ground``, trained on the world).

Summaries (budget 15 %, 0.5 s segments) of the 1-, 5- and 20-minute haystacks against
the same number of evenly spaced and of random segments: coverage of the clips (scenes),
redundancy (segments spent on a clip already shown), and the share of segments that show
an action happening (the main object's annotated action, not 'stay still').
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parent / "_data"
WORLD = ROOT / "world_600"
LONG = ROOT / "long"
VT = ROOT / "runs" / "pretrain" / "contrastive"
GROUND = ROOT / "runs" / "ground"


def scorers():
    from vidfm.retrieval.embedder import Embedder
    from vidfm.tasks.ground import Grounder

    return {"motion": None, "query": Embedder(VT), "grounding": Grounder(GROUND)}


def bench_world(all_scorers) -> dict:
    from vidfm.data.datasets import DataSource
    from vidfm.tasks.highlights import evaluate_highlights

    records = DataSource(WORLD).grounding("test")
    out = {}
    for method, scorer in all_scorers.items():
        t = time.perf_counter()
        out[method] = evaluate_highlights(records, method, scorer=scorer, clip=0.5)
        out[method]["seconds"] = time.perf_counter() - t
        print(f"world {method}: mAP {out[method]['mAP']:.3f} HIT@1 {out[method]['HIT@1']:.3f} (random {out[method]['random_mAP']:.3f} / "
              f"{out[method]['random_HIT@1']:.3f}) over {out[method]['queries']} queries")  # fmt: skip
    return out


def bench_needles(all_scorers) -> dict:
    from vidfm.tasks.highlights import evaluate_highlights

    records = []
    for f in sorted(LONG.glob("needle_1min_*.json")):
        d = json.loads(f.read_text())
        n = d["needle"]
        if n["kind"] != "clip":
            continue
        records.append({"path": d["video"], "sentence": f"the {n['colour']} {n['shape']}", "start": n["start"], "end": n["end"]})
    out = {}
    for method, scorer in all_scorers.items():
        out[method] = evaluate_highlights(records, method, scorer=scorer, clip=2.0)
        print(f"needles {method}: mAP {out[method]['mAP']:.3f} HIT@1 {out[method]['HIT@1']:.3f} (random {out[method]['random_mAP']:.3f} / "
              f"{out[method]['random_HIT@1']:.3f}) over {out[method]['queries']} videos")  # fmt: skip
    return out


def action_intervals(haystack: dict, metadata: dict) -> list[tuple[float, float]]:
    """Where, in the haystack's time, a clip's main object is doing its (non-still) action."""
    out = []
    for c in haystack["clips"]:
        meta = metadata.get(Path(c["source"]).name)
        if meta is None:
            continue
        obj = meta["shots"][0]["objects"][0]
        if obj["action"] != "stay_still":
            out.append((c["start"] + obj["start"] / meta["fps"], c["start"] + (obj["end"] + 1) / meta["fps"]))
    return out


def eventful(segments, actions) -> float:
    centres = [(s["start"] + s["end"]) / 2 for s in segments]
    return float(np.mean([any(a <= c < b for a, b in actions) for c in centres])) if centres else 0.0


def bench_summaries() -> dict:
    from vidfm.tasks.highlights import moment_grid
    from vidfm.tasks.summarize import (
        coverage_and_redundancy,
        summarize,
        uniform_summary,
    )

    metadata = {Path(r["path"]).name: r for r in map(json.loads, (WORLD / "metadata.jsonl").read_text().splitlines())}
    rng = np.random.default_rng(0)
    out = {}
    for name in ("haystack_1min", "needle_1min_0.5", "needle_5min_0.5", "haystack_5min", "haystack_20min"):
        d = json.loads((LONG / f"{name}.json").read_text())
        clips = [(c["start"], c["end"]) for c in d["clips"]]
        actions = action_intervals(d, metadata)
        t = time.perf_counter()
        ours = summarize(d["video"], 0.15, 0.5)["segments"]
        seconds = time.perf_counter() - t
        uniform = uniform_summary(d["duration"], 0.15, 0.5)
        grid = moment_grid(d["duration"], 0.5)
        randoms = [[{"start": float(grid[i, 0]), "end": float(grid[i, 1])} for i in sorted(rng.choice(len(grid), len(uniform), replace=False))] for _ in range(20)]
        row = {"duration": d["duration"], "clips": len(clips), "segments": len(uniform), "seconds": seconds}
        for label, segs in (("ours", ours), ("uniform", uniform)):
            row[label] = {**coverage_and_redundancy(segs, clips), "eventful": eventful(segs, actions)}
        row["random"] = {k: float(np.mean([({**coverage_and_redundancy(s, clips), "eventful": eventful(s, actions)})[k] for s in randoms]))
                         for k in ("coverage", "redundancy", "eventful")}  # fmt: skip
        out[name] = row
        print(f"{name} ({d['duration']:.0f} s, {len(clips)} clips, {len(uniform)} segments, {seconds:.1f} s): " + "; ".join(
            f"{k} coverage {row[k]['coverage']:.3f} redundancy {row[k]['redundancy']:.3f} eventful {row[k]['eventful']:.3f}" for k in ("ours", "uniform", "random")))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["world", "needles", "summaries"], choices=["world", "needles", "summaries"])
    ap.add_argument("--json")
    args = ap.parse_args()
    results = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else {}
    all_scorers = scorers() if {"world", "needles"} & set(args.parts) else None
    if "world" in args.parts:
        results["world"] = bench_world(all_scorers)
    if "needles" in args.parts:
        results["needles"] = bench_needles(all_scorers)
    if "summaries" in args.parts:
        results["summaries"] = bench_summaries()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
