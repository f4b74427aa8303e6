"""The video index: indexing throughput and query latency, side by side in one run.

1. Indexing: ``update_index`` over the synthetic world's videos with a video-text model
   (R(2+1)D-tiny + MiniLM; throughput does not depend on training), whole videos and 2 s
   windows; videos/s and segments/s, decoding and writing included.
2. Query latency at 10k and 100k vectors (256-d, clustered unit vectors like real
   embeddings): vidfm's FAISS flat (exact) and HNSW indexes vs exact brute force in NumPy
   (``X @ q`` + argpartition), one query at a time, and recall@10 of each against the exact
   answer. Also one full ``VideoIndex.search_vectors`` call (FAISS + SQLite row lookups).

    python benchmarks/index.py [--sizes 10000 100000] [--queries 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from classify import world

from vidfm.models import build_encoder
from vidfm.models.text import TextEncoder
from vidfm.objectives import VideoTextModel
from vidfm.retrieval.embedder import Embedder
from vidfm.retrieval.index import (
    FORMAT,
    VideoIndex,
    new_faiss_index,
    update_index,
    write_index,
)


def clustered(n: int, dim: int, rng, clusters: int = 200) -> np.ndarray:
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_numpy(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = x @ q
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def timed_queries(fn, queries) -> tuple[float, list]:
    out = []
    t0 = time.perf_counter()
    for q in queries:
        out.append(fn(q))
    return (time.perf_counter() - t0) / len(queries) * 1e3, out


def recall(found: list, truth: list, k: int) -> float:
    return float(np.mean([len(set(map(int, f[:k])) & set(map(int, t[:k]))) / k for f, t in zip(found, truth)]))


def latency(sizes, n_queries: int, dim: int = 256, k: int = 10) -> dict:
    rng = np.random.default_rng(0)
    results = {}
    for n in sizes:
        data = clustered(n + n_queries, dim, rng)
        x, queries = data[:n], data[n:]
        row = {}
        ms, truth = timed_queries(lambda q: exact_numpy(x, q, k), queries)
        row["numpy_exact"] = {"ms_per_query": ms, "recall@10": 1.0}
        for kind in ("flat", "hnsw"):
            index = new_faiss_index(dim, kind)
            t0 = time.perf_counter()
            index.add(x)
            build = time.perf_counter() - t0
            ms, found = timed_queries(lambda q: index.search(q[None], k)[1][0], queries)
            row[f"faiss_{kind}"] = {"ms_per_query": ms, "recall@10": recall(found, truth, k), "build_seconds": build}
        tmp = Path(tempfile.mkdtemp())
        try:  # the full path: FAISS plus SQLite lookups of path/start/end for each hit
            ix = _index_from_vectors(tmp / "ix", x)
            ms, _ = timed_queries(lambda q: ix.search_vectors(q, k), queries[:50])
            row["vidfm_index_search"] = {"ms_per_query": ms}
            ix.close()
        finally:
            shutil.rmtree(tmp)
        results[n] = row
        base = row["numpy_exact"]["ms_per_query"]
        print(f"{n:>7} vectors: numpy exact {base:.3f} ms | " + " | ".join(
            f"{name} {r['ms_per_query']:.3f} ms ({base / r['ms_per_query']:.1f}x faster, recall@10 {r.get('recall@10', float('nan')):.3f})"
            for name, r in row.items() if name != "numpy_exact"), flush=True)  # fmt: skip
    return results


def _index_from_vectors(path: Path, x: np.ndarray) -> VideoIndex:
    """A real index folder holding synthetic vectors (as if n segments had been embedded)."""
    index = new_faiss_index(x.shape[1], "flat")
    index.add(x)
    rows = [(f"/videos/{i // 10}.mp4", (i % 10) * 2.0, (i % 10) * 2.0 + 2) for i in range(len(x))]
    manifest = {"format": FORMAT, "kind": "flat", "dim": x.shape[1], "count": len(x), "model": "synthetic", "model_fingerprint": "-"}
    write_index(path, index, rows, [], manifest)
    return VideoIndex.open(path)


def indexing(root: Path, limit: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    try:
        torch.manual_seed(0)
        VideoTextModel(build_encoder("r2plus1d-tiny"), TextEncoder("minilm")).save_pretrained(tmp / "model")
        embedder = Embedder(tmp / "model")
        videos = sorted((root / "videos").glob("*.mp4"))[:limit]
        out = {}
        for label, window in (("whole videos", None), ("2 s windows", 2.0)):
            r = update_index(tmp / label.replace(" ", "_"), videos, embedder, window=window)
            out[label] = {"videos": r.added_videos, "segments": r.added_segments, "seconds": r.seconds,
                          "videos_per_s": r.added_videos / r.seconds, "segments_per_s": r.added_segments / r.seconds}  # fmt: skip
            print(f"indexing {label:<13}: {r.added_videos} videos, {r.added_segments} segments in {r.seconds:.1f} s = "
                  f"{r.added_videos / r.seconds:.1f} videos/s, {r.added_segments / r.seconds:.1f} segments/s", flush=True)  # fmt: skip
        return out
    finally:
        shutil.rmtree(tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--videos", type=int, default=600, help="world to index (all its videos)")
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {"indexing": indexing(world(args.videos), args.videos), "latency": latency(args.sizes, args.queries)}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
