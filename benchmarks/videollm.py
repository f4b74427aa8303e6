"""Video-LLM on the synthetic world: a tiny LM and SmolLM2-135M side by side, with baselines.

    python benchmarks/videollm.py [--videos 600] [--parts quality,speed] [--json benchmarks/results/videollm.json]

Models (trained by the exact CLI commands printed and recorded in the JSON):
  tiny     ``vidfm train videollm W --lm tiny``: a 2-layer Llama trained from scratch with a
           dual encoder (VideoGPT+): R(2+1)D-tiny trained end to end for motion, plus the
           frozen R(2+1)D of a video-text (contrastive) pre-training run for detail; MLP
           connectors, questions packed 4 to a conversation;
  smollm2  the real SmolLM2-135M-Instruct with LoRA (rank 16, bf16 autocast), reading the
           tiny run's trained encoders (frozen) through new MLP connectors.
Measured on the world's test split and its held-out compositional split: closed-QA accuracy by
question type, "when" answers scored as grounding (R@1 at IoU 0.3/0.5/0.7, mIoU), caption
metrics (BLEU-4, METEOR, ROUGE-L, CIDEr-D), and the hallucination rate of captions. Baselines
in the same table: the prior answer (the most frequent training answer of each question
type), the nearest training caption by a video-text model (R(2+1)D + MiniLM, contrastive),
and vidfm's grounding head on that model's features. Speed: time to first token, tokens/s and
peak memory of one answer for each LM; memory against frame count with and without pooling.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from classify import DATA, world

VIDFM = str(Path(sys.executable).with_name("vidfm"))


def train(name: str, argv: list[str], out: Path, fresh: bool) -> dict:
    cmd = [VIDFM, "train", "videollm", *argv, "--out", str(out), "--json"]
    if (out / "best" / "videollm.json").exists() and not fresh:
        return json.loads((out / "train.json").read_text())
    t0 = time.perf_counter()
    res = subprocess.run(cmd + (["--fresh"] if fresh else []), capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{name}: training failed\n{res.stderr[-2000:]}")
    summary = json.loads(res.stdout)
    summary.pop("history", None)
    info = {"command": " ".join(cmd[1:]).replace(str(DATA), "benchmarks/_data"), "seconds": time.perf_counter() - t0, "summary": summary}
    (out / "train.json").write_text(json.dumps(info, indent=2))
    print(f"trained {name} in {info['seconds'] / 60:.1f} min: {info['command']}", flush=True)
    return info


def prior_baseline(root: Path, split: str) -> float:
    """Accuracy of always giving the most frequent training answer of the question's type."""
    from vidfm.tasks.videollm import answer_matches, instruction_records

    train = [r for r in instruction_records(root, "train") if r["type"] not in ("describe", "when")]
    prior = {t: Counter(r["answers"][0] for r in train if r["type"] == t).most_common(1)[0][0] for t in {r["type"] for r in train}}
    test = [r for r in instruction_records(root, split, seed=1) if r["type"] not in ("describe", "when")]
    return float(np.mean([answer_matches(prior.get(r["type"], ""), r["answers"][0]) for r in test]))


def retrieval_caption_baseline(root: Path, split: str, video_text: Path) -> dict:
    """Caption each test video with the training caption the video-text model ranks first."""
    from vidfm.data.datasets import DataSource
    from vidfm.data.synthetic import ACTIONS  # noqa: F401 - the world's vocabulary
    from vidfm.metrics.captioning import caption_metrics
    from vidfm.retrieval.embedder import Embedder
    from vidfm.tasks.retrieval import embed_videos
    from vidfm.tasks.videollm import hallucinations

    source = DataSource(root)
    e = Embedder(video_text)
    bank = sorted({c for r in source.captions("train") for c in r["captions"]})
    text = np.concatenate([e.encode_text(bank[i : i + 256]) for i in range(0, len(bank), 256)])
    recs = source.captions(split)
    vids = embed_videos(e, [r["path"] for r in recs])
    picks = [bank[i] for i in (vids @ text.T).argmax(1)]
    metrics = caption_metrics({r["path"]: r["captions"] for r in recs}, {r["path"]: p for r, p in zip(recs, picks)})
    meta = {m["path"]: m for m in source.world().metadata()}
    flagged = [hallucinations(p, meta[r["path"]]["shots"][0]["objects"]) for r, p in zip(recs, picks) if len(meta[r["path"]]["shots"]) == 1]
    metrics["hallucination_rate"] = float(np.mean([bool(f) for f in flagged]))
    return metrics


def grounding_baseline(root: Path, split: str, grounding: Path) -> dict:
    from vidfm.data.datasets import DataSource
    from vidfm.tasks.ground import Grounder

    return Grounder(grounding).evaluate(DataSource(root).grounding(split))


def evaluate(model_dir: Path, root: Path, split: str) -> dict:
    from vidfm.models.videollm import VideoLLM
    from vidfm.tasks.videollm import evaluate_videollm

    t0 = time.perf_counter()
    m = evaluate_videollm(VideoLLM.from_pretrained(model_dir), root, split)
    m["seconds"] = time.perf_counter() - t0
    return m


def speed(model_dir: Path, video: Path, new_tokens: int = 32) -> dict:
    """Time to first token, tokens/s (``new_tokens`` generated, the end of turn held back)
    and the peak RSS above the loaded model for one answer, in a fresh process (RSS high-water mark reset after loading, as benchmarks/encoders.py)."""
    code = f"""
import json, time, ctypes, threading, torch
torch.set_num_threads(2)
from transformers import TextIteratorStreamer
from vidfm.models.videollm import VideoLLM
from vidfm.tasks.videollm import VideoAssistant
def status(f):
    return next(int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith(f + ':'))
m = VideoLLM.from_pretrained({str(model_dir)!r}); m.config.max_new_tokens = {new_tokens}
a = VideoAssistant(m, {str(video)!r})
a.ask(['warm up'])
ctypes.CDLL('libc.so.6').malloc_trim(0); open('/proc/self/clear_refs', 'w').write('5'); base = status('VmRSS')
s = TextIteratorStreamer(m.tokenizer, skip_prompt=True, skip_special_tokens=True)
t0 = time.perf_counter(); out = []
th = threading.Thread(target=lambda: out.append(m.generate([a.features], [[{{'role': 'user', 'content': 'describe the video in detail'}}]], max_new_tokens={new_tokens}, min_new_tokens={new_tokens}, streamer=s)))
th.start(); first = None; chunks = 0
for c in s:
    first = first or time.perf_counter(); chunks += 1
th.join(); total = time.perf_counter() - t0
n = len(m.tokenizer(out[0][0], add_special_tokens=False).input_ids)
print(json.dumps({{"ttft_s": (first or time.perf_counter()) - t0, "tokens": n, "tokens_per_s": (n - 1) / max(total - (first - t0), 1e-9) if first else 0.0,
                  "peak_step_mb": status('VmHWM') - base, "rss_mb": base, "lm_params_m": sum(p.numel() for p in m.lm.parameters()) / 1e6}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def memory_vs_frames(video: Path, lm: str) -> list[dict]:
    """Peak RSS of one answer and the prompt length against the frame count, with 2x2 pooling
    and without (fresh, untrained weights: memory does not depend on training)."""
    rows = []
    for frames in (8, 16, 32):
        for pool in ("avg", "none"):
            code = f"""
import json, ctypes, torch
torch.set_num_threads(2)
from vidfm.models.videollm import VideoLLM, VideoLLMConfig
from vidfm.tasks.videollm import VideoAssistant
def status(f):
    return next(int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith(f + ':'))
m = VideoLLM(VideoLLMConfig(lm={lm!r}, encoder='r2plus1d-tiny', feature_layer=2, pool={pool!r}, pool_stride=4 if {pool!r} != 'none' else 1, num_frames={frames}))
m.config.max_new_tokens = 8
ctypes.CDLL('libc.so.6').malloc_trim(0); open('/proc/self/clear_refs', 'w').write('5'); base = status('VmRSS')
a = VideoAssistant(m, {str(video)!r})
emb, _ = m.sequence(a.features, [{{'role': 'user', 'content': 'describe the video'}}])
a.ask(['describe the video'])
print(json.dumps({{"frames": {frames}, "pool": {pool!r}, "visual_tokens": m.visual_token_count(a.features), "prompt_tokens": int(emb.shape[0]), "peak_mb": status('VmHWM') - base}}))
"""
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if res.returncode:  # e.g. the prompt is past the LM's context: its one-line error is the result
                rows.append({"frames": frames, "pool": pool, "error": res.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"  {lm}: {rows[-1]}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=600)
    ap.add_argument("--parts", default="quality,speed")
    ap.add_argument("--tiny-epochs", type=int, default=20)
    ap.add_argument("--smollm2-epochs", type=int, default=2)
    ap.add_argument("--fresh", action="store_true", help="retrain even if the runs exist")
    ap.add_argument("--json")
    args = ap.parse_args()
    root = world(args.videos)
    runs = DATA / "runs" / "videollm"
    parts = set(args.parts.split(","))
    results: dict = {"videos": args.videos}
    w = str(root)
    from pretrain import (
        run_pretraining,  # the video-text model: image tower and retrieval baseline
    )

    run_pretraining(root, DATA / "runs" / "pretrain", fresh=False, names=("contrastive",))
    video_text = DATA / "runs" / "pretrain" / "contrastive"
    tiny_argv = [w, "--lm", "tiny", "--encoder", "r2plus1d-tiny", "--image-encoder", str(video_text / "best"), "--feature-layer", "2",
                 "--pool-stride", "4", "--turns", "4", "--epochs", str(args.tiny_epochs), "--batch-size", "16", "--lr", "2e-3"]  # fmt: skip
    results["train"] = {"tiny": train("tiny", tiny_argv, runs / "tiny", args.fresh)}
    tiny = runs / "tiny" / "best"
    smol_argv = [w, "--lm", "smollm2", "--encoder", str(tiny / "encoder"), "--image-encoder", str(tiny / "image_encoder"), "--encoder-train", "frozen",
                 "--feature-layer", "2", "--pool-stride", "4", "--turns", "4", "--epochs", str(args.smollm2_epochs), "--batch-size", "8",
                 "--lr", "1e-3", "--precision", "bf16"]  # fmt: skip
    results["train"]["smollm2"] = train("smollm2", smol_argv, runs / "smollm2", args.fresh)
    video = root / "videos" / "000003.mp4"
    if "speed" in parts:
        results["speed"] = {name: speed(runs / name, video) for name in ("tiny", "smollm2")}
        print("speed", json.dumps(results["speed"], indent=1), flush=True)
        results["memory_vs_frames"] = {lm: memory_vs_frames(video, lm) for lm in ("tiny", "smollm2")}
    if "quality" in parts:
        grounding = DATA / "runs" / "ground"
        if not (grounding / "best").exists():
            from vidfm.tasks.ground import train_grounding
            from vidfm.training import TrainConfig

            train_grounding(root, video_text, train_config=TrainConfig(output_dir=str(grounding), epochs=15, batch_size=32, lr=1e-3, seed=0))
        for split in ("test", "compositional"):
            row = {name: evaluate(runs / name, root, split) for name in ("tiny", "smollm2")}
            row["baselines"] = {"prior_answer_qa": prior_baseline(root, split), "retrieval_captions": retrieval_caption_baseline(root, split, video_text),
                                "grounding_head": grounding_baseline(root, split, grounding)}  # fmt: skip
            results[split] = row
            for name in ("tiny", "smollm2"):
                m = row[name]
                t, c = m["timestamps"], m["captions"]
                print(f"[{split}] {name}: QA {m['qa_accuracy']:.3f} {m['qa_by_type']} | when R@1 IoU0.5 {t['R@1,IoU=0.5']:.3f} mIoU {t['mIoU']:.3f} "
                      f"({t['unparseable']} unparseable) | CIDEr-D {c['CIDEr-D']:.3f} BLEU-4 {c['BLEU-4']:.3f} | hallucination {m['hallucination_rate']:.3f}", flush=True)  # fmt: skip
            b = row["baselines"]
            print(f"[{split}] baselines: prior QA {b['prior_answer_qa']:.3f} | retrieval CIDEr-D {b['retrieval_captions']['CIDEr-D']:.3f} "
                  f"hallucination {b['retrieval_captions']['hallucination_rate']:.3f} | grounding head R@1 IoU0.5 {b['grounding_head']['candidates_R@1,IoU=0.5']:.3f}", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
