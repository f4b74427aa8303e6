"""``vidfm compress`` and ``vidfm export``."""

from __future__ import annotations

from pathlib import Path

from vidfm.cli.common import (
    add_train_options,
    print_json,
    summary_handled,
    train_config_from,
)
from vidfm.errors import ConfigError

METHOD_HELP = """methods:
  distill       train a smaller student on the teacher's softened logits + labels (--data, --student)
  prune         structured: remove attention heads / MLP units (ViTs) or channels (CNNs) with
                torch-pruning (--ratio); then optionally recover by distilling from the
                unpruned model (--data with --epochs)
  sparse        unstructured magnitude pruning (--ratio, per layer or --global-sparsity): zeros,
                same dense shapes and speed
  tome          token merging for joint space-time ViTs (--r tokens merged per layer); no training
  int8-dynamic  ONNX Runtime INT8 (weights int8, activations quantised on the fly) -> OUT.onnx
  int8-static   ONNX Runtime INT8 QDQ, activations calibrated on --data clips -> OUT.onnx
Outputs open everywhere a classifier does (vidfm eval / predict; .onnx files too)."""


def register(sub) -> None:
    p = sub.add_parser("compress", help="distil, prune, quantise or token-merge a classifier", epilog=METHOD_HELP,
                       description="Compress a trained classifier (vidfm train classify's OUT or OUT/best). Prints the "
                                   "size before and after; --json for the full report.")  # fmt: skip
    p.add_argument("model", help="a saved classifier (the teacher, for distill)")
    p.add_argument("--method", required=True, choices=["distill", "prune", "sparse", "tome", "int8-dynamic", "int8-static"])
    p.add_argument("--out", required=True, help="output folder (a run folder for distill / prune + recovery), or OUT.onnx for int8")
    p.add_argument("--data", help="training data (distill, prune recovery) or calibration clips (int8-static): a world, CSV or folder")
    p.add_argument("--student", help="distill: student preset or folder (default: the teacher's architecture, widths x --student-scale)")
    p.add_argument("--student-scale", type=float, default=0.7, help="distill: width multiplier of a preset student (default 0.7: about half the parameters)")
    p.add_argument("--temperature", type=float, default=4.0, help="distill: softmax temperature T (the soft loss is scaled by T^2)")
    p.add_argument("--alpha", type=float, default=0.7, help="distill: weight of the soft (teacher) term; 1-alpha on the labels")
    p.add_argument("--feature-weight", type=float, default=0.0, help="distill: weight of pooled-feature matching (0 = off)")
    p.add_argument("--ratio", type=float, default=0.5, help="prune: fraction of heads/channels removed; sparse: fraction of weights zeroed")
    p.add_argument("--no-heads", action="store_true", help="prune: keep every attention head (prune MLP units only)")
    p.add_argument("--global-sparsity", action="store_true", help="sparse: rank all weights together instead of within each layer")
    p.add_argument("--r", type=int, default=8, help="tome: tokens merged per layer")
    p.add_argument("--calibration", type=int, default=32, help="int8-static: calibration clips from --data")
    add_train_options(p, lr=1e-3, epochs=10, batch_size=8)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_compress)

    e = sub.add_parser("export", help="export a classifier, encoder or the shot detector to ONNX",
                       description="Export to ONNX (torch.onnx dynamo exporter, dynamic batch). Writes OUT.onnx and its weights "
                                   "OUT.onnx.data (keep them together), then runs ONNX Runtime against PyTorch on a random "
                                   "input and prints the largest difference.")  # fmt: skip
    e.add_argument("model", help="a saved classifier or encoder folder, 'shot-student' (vidfm shots' default network) or 'transnetv2'")
    e.add_argument("--out", required=True, help="OUT.onnx")
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=run_export)


def run_compress(args) -> int:
    from vidfm.compress import compress_classifier, distill_classifier

    out = Path(args.out)
    if args.method in ("distill",) or (args.method == "prune" and args.data):
        if not args.data:
            raise ConfigError("--method distill needs --data (the videos the student learns from)")
        cfg = train_config_from(args)
        student = _pruned(args) if args.method == "prune" else args.student
        summary = distill_classifier(args.model, args.data, student, train_config=cfg, student_scale=args.student_scale,
                                     temperature=args.temperature, alpha=args.alpha, feature_weight=args.feature_weight, resume=not args.fresh)  # fmt: skip
        if summary_handled(summary, args):
            return 0
        print(f"{args.method}: student {summary['student_params']:,} parameters (teacher {summary['teacher_params']:,}); "
              f"best validation accuracy {summary['best']:.4f}; model: {out / 'best'}")  # fmt: skip
        return 0
    opts = {"ratio": args.ratio, "heads": not args.no_heads, "sparsity": args.ratio, "r": args.r, "scope": "global" if args.global_sparsity else "layer"}
    if args.method == "int8-static":
        opts["calibration"] = _calibration(args)
    report = compress_classifier(args.model, args.method, out, **opts)
    if args.json:
        print_json(report)
        return 0
    print(f"{args.method}: {report['bytes_before'] / 1e6:.2f} MB -> {report['bytes_after'] / 1e6:.2f} MB on disk; written to {out}")
    if "params_after" in report:
        print(f"  parameters {report['params_before']:,} -> {report['params_after']:,}")
    if "pruned_weights_zero" in report:
        print(f"  {report['pruned_weights_zero']:.1%} of conv/linear weights are zero (dense kernels: same speed; the saving needs sparse storage)")
    if "tokens_per_layer" in report:
        print(f"  tokens per layer: {' -> '.join(map(str, report['tokens_per_layer']))}")
    return 0


def _pruned(args):
    """Prune the teacher in memory: the student that distillation then fine-tunes."""
    from vidfm.compress.prune import prune_structured
    from vidfm.tasks.classify import VideoClassifier

    model = VideoClassifier.from_pretrained(args.model)
    model.compression = prune_structured(model, args.ratio, heads=not args.no_heads)
    return model


def _calibration(args):
    from vidfm.data.datasets import DataSource, VideoDataset
    from vidfm.tasks.classify import VideoClassifier

    if not args.data:
        raise ConfigError("--method int8-static needs --data: clips to calibrate the activation ranges on")
    model = VideoClassifier.from_pretrained(args.model)
    source = DataSource(args.data)
    records, _ = source.classification("train", classes=model.classes)
    dataset = VideoDataset(records[: args.calibration], num_frames=model.num_frames, decode_size=(model.image_size,) * 2, sampler="segments", on_error="raise")
    return (dataset[i]["video"][None].numpy() for i in range(len(dataset)))


def run_export(args) -> int:
    import numpy as np
    import torch

    from vidfm.compress import onnx as ox

    out = Path(args.out)
    if args.model == "shot-student":
        from vidfm.shots.student import ShotStudent

        model = ShotStudent.from_pretrained()
        ox.export_shot_student(model, out)
        x = torch.randint(0, 256, (500, 27, 48, 3), dtype=torch.uint8)
        ref, feed = model(x), {"frames": x.numpy()}
    elif args.model == "transnetv2":
        from vidfm.shots.detect import load_transnetv2

        model = load_transnetv2()
        ox.export_transnetv2(model, out)
        x = torch.randint(0, 256, (1, 100, 27, 48, 3), dtype=torch.uint8)
        ref, feed = model(x)[0], {"frames": x.numpy()}
    else:
        from vidfm.files import model_folder

        folder = model_folder(args.model, "classifier.json")
        if (folder / "classifier.json").exists():
            from vidfm.tasks.classify import VideoClassifier

            model = VideoClassifier.from_pretrained(folder)
            ox.export_classifier(model, out)
            x = torch.rand(3, model.num_frames, 3, model.image_size, model.image_size)
            ref = model(x)
        else:
            from vidfm.models import load_encoder

            model = load_encoder(args.model)
            ox.export_encoder(model, out)
            c = model.config
            x = torch.rand(3, c.num_frames, 3, c.image_size, c.image_size)
            ref = model(x).pooled
        feed = {"video": x.numpy()}
    with torch.no_grad():
        ref = ref.detach().numpy()
    got = ox.session(out).run(None, feed)[0]
    diff = float(np.abs(got - ref).max())
    files = [out, *ox.external_files(out)]
    report = {"onnx": str(out), "files": [str(f) for f in files], "bytes": sum(f.stat().st_size for f in files), "max_abs_diff_vs_torch": diff}
    if args.json:
        print_json(report)
        return 0
    print(f"exported {out} (+ {', '.join(f.name for f in files[1:]) or 'no data file'}), {report['bytes'] / 1e6:.2f} MB; "
          f"ONNX Runtime vs PyTorch: max |diff| {diff:.2e}")  # fmt: skip
    return 0
