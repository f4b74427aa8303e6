"""Compression, side by side in one run: fp32 PyTorch against every method, per model.

    python benchmarks/compress.py --parts train --vit-s-epochs 3    # the fp32 models and the trained methods (~50 min)
    python benchmarks/compress.py --parts build     # every row's ONNX file / folder (cached in _data/runs/compress/artifacts)
    python benchmarks/compress.py --parts table --json benchmarks/results/compress.json

Models (600-video world, 8 frames at 64x64, trained with `vidfm train classify`):
* videomae-tiny (472 k parameters, 30 epochs) and r2plus1d-tiny (909 k, 10 epochs);
* vit-s: VideoMAE-small's transformer (384 wide, 12 layers, 6 heads, ~21 M parameters) on
  64x64 clips with the tiny models' 8-pixel patches (256 tokens), trained for --vit-s-epochs only: its
  accuracy is low, so for it the columns that matter are speed, size and how closely each
  method follows the fp32 model (agreement of the top-1 label).

Methods: ``vidfm compress`` with each method, plus fp32 ONNX Runtime (to separate the
runtime's gain from INT8's) and, when installed, torchao int8 and torch.ao dynamic int8.
Per row: test and compositional top-1, top-1 agreement with fp32 on both splits, the logit
error relative to fp32 (||logits - fp32|| / ||fp32 - its mean over clips||), clips/s
(batch 8, 2 threads, the median of 5 timed passes after a warm-up), size on disk, and
peak activation memory (the growth of the process's resident size during its first batch
of 8, sampled every millisecond; each row's model is built by one subprocess and measured
by a fresh one, so nothing ran inference there before).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from classify import world

from vidfm.data.datasets import DataSource, VideoDataset

RUNS = Path(__file__).parent / "_data" / "runs" / "compress"
HERE = Path(__file__).parent
MODELS = {  # name: (encoder argument, extra train args)
    "videomae-tiny": ["--encoder", "videomae-tiny", "--epochs", "30", "--lr", "1e-3", "--batch-size", "16"],
    "r2plus1d-tiny": ["--encoder", "r2plus1d-tiny", "--epochs", "10", "--lr", "3e-3", "--batch-size", "16"],
}


def vidfm(*args):
    cmd = [sys.executable, "-m", "vidfm", *map(str, args)]
    print("$ vidfm " + " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True)


def part_train(args):
    w = world(600)
    for name, extra in MODELS.items():
        if not (RUNS / name / "best" / "classifier.json").exists():
            vidfm("train", "classify", w, "--out", RUNS / name, *extra)
    if args.vit_s_epochs and not (RUNS / "vit-s" / "best" / "classifier.json").exists():
        train_vit_s(w, args.vit_s_epochs)
    for name in MODELS:
        src = RUNS / name / "best"
        scale = "0.7"  # width x0.7 -> about half the parameters
        if not (RUNS / f"{name}-distilled" / "best").exists():
            vidfm("compress", src, "--method", "distill", "--data", w, "--out", RUNS / f"{name}-distilled", "--student-scale", scale,
                  "--epochs", MODELS[name][MODELS[name].index("--epochs") + 1], "--lr", MODELS[name][MODELS[name].index("--lr") + 1], "--batch-size", "16")  # fmt: skip
        if not (RUNS / f"{name}-pruned" / "best").exists():
            heads = [] if name.startswith("videomae") else ["--no-heads"]
            vidfm("compress", src, "--method", "prune", "--ratio", "0.3", *heads, "--data", w, "--out", RUNS / f"{name}-pruned", "--epochs", "5", "--lr", "1e-3", "--batch-size", "16")


def train_vit_s(w, epochs: int):
    """VideoMAE-small's transformer at the tiny models' tokenisation (8x8 patches of 64x64
    frames, tubelets of 2: 256 tokens), from a fresh initialisation."""
    from vidfm.models import build_encoder
    from vidfm.tasks.classify import train_classifier
    from vidfm.training import TrainConfig

    init = RUNS / "vit-s-init"
    torch.manual_seed(0)
    build_encoder("videomae-small", image_size=64, patch_size=8, num_frames=8, conv_stem=True).save_pretrained(init)
    cfg = TrainConfig(output_dir=str(RUNS / "vit-s"), epochs=epochs, batch_size=16, lr=5e-4, seed=0)
    summary = train_classifier(w, str(init), train_config=cfg, num_frames=8, size=64)
    print(f"vit-s trained in {summary['seconds']:.0f} s, best val {summary['best']:.3f}")


# -- the table --------------------------------------------------------------------------------
def clips(split: str, classes) -> tuple[torch.Tensor, torch.Tensor]:
    records, _ = DataSource(world(600)).classification(split, classes=classes)
    ds = VideoDataset(records, num_frames=8, decode_size=(64, 64), sampler="segments", on_error="raise")
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([x["video"] for x in items]), torch.tensor([int(x["label"]) for x in items])


def logits_of(model, videos: torch.Tensor, batch: int = 8) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([torch.as_tensor(model(videos[i : i + batch])).float() for i in range(0, len(videos), batch)])


ARTIFACTS = RUNS / "artifacts"


def build(spec: dict) -> Path | None:
    """Write the row's model to disk (an ONNX file or a classifier folder); ``None`` when
    the method is an in-memory transformation of the source (applied by ``load``)."""
    from vidfm.compress import compress_classifier
    from vidfm.compress.onnx import export_classifier
    from vidfm.tasks.classify import VideoClassifier

    src, method = Path(spec["src"]), spec["method"]
    out = ARTIFACTS / f"{spec['model']}-{method.replace(':', '')}"
    for done in (out.with_suffix(".onnx"), out / "classifier.json"):
        if done.exists() and not spec.get("rebuild"):
            return done if done.suffix == ".onnx" else out
    if method == "onnx-fp32":
        return export_classifier(VideoClassifier.from_pretrained(src), out.with_suffix(".onnx"))
    if method in ("int8-dynamic", "int8-static"):
        opts = {}
        if method == "int8-static":
            calib, _ = clips("train", VideoClassifier.from_pretrained(src).classes)
            opts["calibration"] = (calib[i : i + 1].numpy() for i in range(32))
        return Path(compress_classifier(src, method, out.with_suffix(".onnx"), **opts)["out"])
    if method.startswith(("sparse", "tome")):
        m, _, arg = method.partition(":")
        compress_classifier(src, m, out, **({"sparsity": 0.5, "scope": arg or "layer"} if m == "sparse" else {"r": int(arg)}))
        return out
    return None


def load(spec: dict):
    """(model, bytes on disk) for a row whose artifact ``build`` wrote (``spec["built"]``)."""
    from vidfm.compress.onnx import OnnxClassifier
    from vidfm.compress.quantize import torch_ao_dynamic, torchao_int8
    from vidfm.tasks.classify import VideoClassifier

    built = Path(spec["built"]) if spec.get("built") else None
    if built is not None and built.suffix == ".onnx":
        return OnnxClassifier(built, threads=2), _bytes(built)
    model = VideoClassifier.from_pretrained(built or spec["src"])
    if spec["method"] == "torchao":
        return torchao_int8(model), None
    if spec["method"] == "torch.ao":
        return torch_ao_dynamic(model), None
    return model, _bytes(built or Path(spec["src"]))


def _bytes(path: Path) -> int:
    from vidfm.compress import _size_on_disk

    return _size_on_disk(path)


def speed(model, video: torch.Tensor, repeats: int = 5) -> float:
    logits_of(model, video)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        logits_of(model, video)
        times.append(time.perf_counter() - t0)
    return len(video) / float(np.median(times))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_growth(fn) -> float:
    """MB: the highest resident size while ``fn`` runs (sampled every millisecond by a
    thread) minus the size just before: what running it adds (activations, workspaces)."""
    import threading

    base, peak, done = _rss(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    t = threading.Thread(target=sample)
    t.start()
    try:
        fn()
    finally:
        done.set()
        t.join()
    return max(0, max(peak[0], _rss()) - base) / 2**20


def rows_for(name: str, args) -> list[dict]:
    src = RUNS / name / "best"
    rows = [{"model": name, "method": m, "src": str(src)} for m in ("fp32", "onnx-fp32", "int8-dynamic", "int8-static", "sparse", "sparse:global")]
    if name != "r2plus1d-tiny":
        rows += [{"model": name, "method": f"tome:{r}", "src": str(src)} for r in (args.tome_r[name] if isinstance(args.tome_r, dict) else [8])]
    for kind, method in (("distilled", "distill"), ("pruned", "prune-kd")):
        if (RUNS / f"{name}-{kind}" / "best").exists():
            rows.append({"model": name, "method": method, "src": str(RUNS / f"{name}-{kind}" / "best")})
    for method, module in (("torchao", "torchao"), ("torch.ao", None)):
        if module is None or __import__("importlib").util.find_spec(module):
            rows.append({"model": name, "method": method, "src": str(src)})
    return rows


def measure_row(spec: dict) -> dict:
    """Everything for one row, in this fresh process; the first inference here is the one
    whose memory is measured."""
    torch.set_num_threads(2)
    model, size = load(spec)
    test, test_y = clips("test", model.classes)
    comp, comp_y = clips("compositional", model.classes)
    peak_mb = peak_rss_growth(lambda: logits_of(model, test[:8]))
    lt, lc = logits_of(model, test), logits_of(model, comp)
    return {**spec, "bytes": size, "peak_activation_mb": peak_mb, "clips_per_s": speed(model, test[:16]),
            "test": float((lt.argmax(-1) == test_y).float().mean()), "compositional": float((lc.argmax(-1) == comp_y).float().mean()),
            "pred_test": lt.argmax(-1).tolist(), "pred_comp": lc.argmax(-1).tolist(), "logits": torch.cat([lt, lc]).tolist(),
            "params": sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else None}  # fmt: skip


def part_build(args) -> None:
    """Write every row's artifact (cached: a later table reuses them)."""
    for name in args.models:
        for spec in rows_for(name, args):
            out = subprocess.run([sys.executable, __file__, "--build", json.dumps(spec)], capture_output=True, text=True, cwd=HERE)
            print(f"{name} {spec['method']}: {'built' if out.returncode == 0 else 'FAILED ' + out.stderr.strip()[-300:]}", flush=True)


def part_table(args) -> list[dict]:
    rows = []
    for name in args.models:
        fp32 = None
        for spec in rows_for(name, args):
            if args.methods and spec["method"] not in args.methods + ["fp32"]:
                continue
            out = subprocess.run([sys.executable, __file__, "--build", json.dumps(spec)], capture_output=True, text=True, cwd=HERE)
            if out.returncode == 0:
                spec["built"] = json.loads(out.stdout.strip().splitlines()[-1])
                out = subprocess.run([sys.executable, __file__, "--row", json.dumps(spec)], capture_output=True, text=True, cwd=HERE)
            if out.returncode:
                print(f"{name} {spec['method']}: FAILED {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ''}", flush=True)
                rows.append({**spec, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"})
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            if spec["method"] == "fp32":
                fp32 = row
            if fp32:
                row["agreement"] = float(np.mean(np.array(row["pred_test"] + row["pred_comp"]) == np.array(fp32["pred_test"] + fp32["pred_comp"])))
                row["speedup"] = row["clips_per_s"] / fp32["clips_per_s"]
                row["delta_test"] = row["test"] - fp32["test"]
                ref, got = np.array(fp32["logits"]), np.array(row["logits"])
                # logit error relative to how much fp32's logits vary across clips: meaningful
                # even for a model whose top-1 barely changes (the briefly trained vit-s)
                row["logit_rel_error"] = float(np.linalg.norm(got - ref) / np.linalg.norm(ref - ref.mean(0)))
            size = f"{row['bytes'] / 1e6:7.2f} MB" if row.get("bytes") else "      - "
            print(f"{name:<14} {spec['method']:<13} test {row['test']:.3f} ({row.get('delta_test', 0):+.3f})  comp {row['compositional']:.3f}  "
                  f"agree {row.get('agreement', 1):.3f} logit err {row.get('logit_rel_error', 0):.3f}  {row['clips_per_s']:7.1f} clips/s ({row.get('speedup', 1):.2f}x)  {size}  "
                  f"peak +{row['peak_activation_mb']:.0f} MB", flush=True)  # fmt: skip
            rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="train,table")
    ap.add_argument("--models", nargs="+", default=["videomae-tiny", "r2plus1d-tiny", "vit-s"])
    ap.add_argument("--vit-s-epochs", type=int, default=6)
    ap.add_argument("--methods", nargs="*", help="table: only these rows (and fp32, the reference)")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    ap.add_argument("--build", help=argparse.SUPPRESS)
    ap.add_argument("--json")
    args = ap.parse_args()
    args.tome_r = {"videomae-tiny": [16, 32], "vit-s": [8, 10, 16, 20]}
    if args.build:
        built = build(json.loads(args.build))
        print(json.dumps(str(built) if built else None))
        return
    if args.row:
        print(json.dumps(measure_row(json.loads(args.row))))
        return
    if "train" in args.parts:
        part_train(args)
    if "build" in args.parts:
        part_build(args)
    if "table" in args.parts:
        rows = part_table(args)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
