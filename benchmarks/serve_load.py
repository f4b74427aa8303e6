"""Load test of ``vidfm serve`` on 127.0.0.1: N concurrent clients, a fixed number of
requests per endpoint (search, probe, shots) while generation jobs run; latency
percentiles, throughput, 5xx count, lost jobs, and the server's memory over the run. The
same searches run in-process first, so the HTTP overhead shows as a ratio.

    python benchmarks/serve_load.py --index IDX --media world/videos [--generator RUN] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

COLOURS = ["red", "green", "blue", "yellow", "purple", "white"]
SHAPES = ["circle", "square", "triangle", "cross", "star"]
ACTIONS = ["moves left", "moves right", "moves up", "moves down", "grows", "shrinks", "spins", "bounces", "appears", "disappears"]


def queries(n: int, seed: int = 0) -> list[str]:
    """Varied sentences (300 distinct): a cache of the last few queries would not help."""
    rng = random.Random(seed)
    return [f"a {rng.choice(COLOURS)} {rng.choice(SHAPES)} {rng.choice(ACTIONS)}" for _ in range(n)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2)}


async def hammer(base: str, headers: dict, clients: int, requests: list) -> dict:
    """``requests``: (method, path, kwargs) tuples, shared by ``clients`` workers."""
    latencies, statuses = [], {}
    queue = list(reversed(requests))
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=httpx.Limits(max_connections=clients)) as client:

        async def worker():
            while queue:
                method, path, kwargs = queue.pop()
                start = time.perf_counter()
                r = await client.request(method, path, **kwargs)
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - start
    return {"requests": len(latencies), "seconds": round(seconds, 2), "per_second": round(len(latencies) / seconds, 1),
            **percentiles(latencies), "statuses": statuses, "server_errors": sum(n for s, n in statuses.items() if s >= 500)}  # fmt: skip


def in_process_search(index_dir: str, texts: list[str]) -> dict:
    from vidfm.retrieval.embedder import Embedder
    from vidfm.retrieval.index import VideoIndex

    with VideoIndex.open(index_dir) as ix:
        embedder = Embedder(ix.model_path())
        ix.search_text(embedder, texts[0], 5)
        ms = []
        for t in texts:
            start = time.perf_counter()
            ix.search_text(embedder, t, 5)
            ms.append((time.perf_counter() - start) * 1000)
    return {"requests": len(ms), **percentiles(ms)}


def tiny_generator(world: str, out: Path) -> str:
    """A one-step VAE + DiT (the load test exercises the job queue, not the clip quality)."""
    vidfm = [sys.executable, "-m", "vidfm"]
    subprocess.run(vidfm + ["train", "vae", world, "--out", str(out / "vae"), "--max-steps", "1", "--batch-size", "2", "--size", "16", "--frames", "5"], check=True, capture_output=True)
    subprocess.run(vidfm + ["train", "denoiser", world, "--vae", str(out / "vae"), "--out", str(out / "gen"), "--max-steps", "1", "--batch-size", "2", "--frames", "5"],
                   check=True, capture_output=True)  # fmt: skip
    return str(out / "gen")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", required=True)
    ap.add_argument("--media", required=True, help="a folder of videos (probe and shots upload from it)")
    ap.add_argument("--generator", help="a text-to-video run (default: a one-step tiny one trained here on --world)")
    ap.add_argument("--world", default="world")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--search", type=int, default=4000, help="search requests")
    ap.add_argument("--probe", type=int, default=400, help="probe requests (each uploads a video)")
    ap.add_argument("--shots", type=int, default=100, help="shot-detection requests (each uploads a video)")
    ap.add_argument("--jobs", type=int, default=20, help="generation jobs submitted during the run")
    ap.add_argument("--out", default="benchmarks/results/serve_load.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vidfm-load-"))
    generator = args.generator or tiny_generator(args.world, work)
    texts = queries(args.search)
    reference = in_process_search(args.index, texts[:300])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = "load-test-key-0123456789"
    proc = subprocess.Popen([sys.executable, "-m", "vidfm", "serve", "--port", str(port), "--index", args.index, "--media", args.media,
                             "--generator", generator, "--data-dir", str(work / "data"), "--rate-limit", "1000000", "--log-level", "warning"],
                            env={**os.environ, "VIDFM_API_KEYS": key}, stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "w"))  # fmt: skip
    base, headers = f"http://127.0.0.1:{port}", {"X-API-Key": key}
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit(f"the server exited: {(work / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        memory, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                memory.append(rss_mb(proc.pid))
                time.sleep(0.5)

        threading.Thread(target=sample, daemon=True).start()
        videos = sorted(Path(args.media).glob("*.mp4"))
        blobs = [(v.name, v.read_bytes()) for v in videos[:20]]
        job_ids = [httpx.post(f"{base}/v1/generate", json={"prompt": t, "steps": 25}, headers=headers).json()["id"] for t in texts[: args.jobs]]
        results = {}
        results["search"] = asyncio.run(hammer(base, headers, args.clients, [("POST", "/v1/search", {"json": {"query": t, "top": 5}}) for t in texts]))
        results["probe"] = asyncio.run(hammer(base, headers, args.clients, [("POST", "/v1/probe", {"files": {"file": blobs[i % len(blobs)]}}) for i in range(args.probe)]))
        results["shots"] = asyncio.run(hammer(base, headers, args.clients, [("POST", "/v1/shots", {"files": {"file": blobs[i % len(blobs)]}, "data": {"method": "histogram", "thumbs": "false"}})
                                                                           for i in range(args.shots)]))  # fmt: skip
        end = time.monotonic() + 300
        while time.monotonic() < end:
            states = [httpx.get(f"{base}/v1/jobs/{j}", headers=headers).json()["status"] for j in job_ids]
            if all(s in ("done", "failed", "cancelled") for s in states):
                break
            time.sleep(0.5)
        stop.set()
        results["jobs"] = {"submitted": len(job_ids), "done": states.count("done"), "failed": states.count("failed"), "lost": len(job_ids) - len(states)}
        warm = memory[len(memory) // 4]  # after the first quarter: models warmed up, the jobs' tensors allocated
        results["memory_mb"] = {"start": round(memory[0], 1), "after_first_quarter": round(warm, 1), "end": round(memory[-1], 1), "max": round(max(memory), 1),
                                "growth_after_first_quarter": round(memory[-1] - warm, 1), "samples": len(memory), "series": [round(m) for m in memory]}  # fmt: skip
        results["in_process_search"] = reference
        results["http_over_in_process_p50"] = round(results["search"]["p50_ms"] / reference["p50_ms"], 2)
        results["clients"] = args.clients
        leftovers = list((work / "data" / "uploads").iterdir())
        results["upload_files_left"] = len(leftovers)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
