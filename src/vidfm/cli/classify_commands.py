"""``vidfm train classify``, ``vidfm eval`` and ``vidfm predict``."""

from __future__ import annotations

from pathlib import Path

from vidfm.cli.common import (
    add_engine_options,
    add_train_options,
    collect_videos,
    comma_list,
    for_each_video,
    print_json,
    print_ranked,
    progress,
    report_skipped,
    run_collection_job,
    summary_handled,
    train_config_from,
    warn_if_collapsed,
)
from vidfm.errors import ConfigError


def register_train_fewshot(tsub) -> None:
    f = tsub.add_parser("fewshot", help="episodic (meta-learning) fine-tuning of an encoder for few-shot", description=(
        "Fine-tune an encoder as a prototypical network, one N-way K-shot episode per step, on the labelled training videos of "
        "DATA (only --classes when given: the base classes; the others stay novel for 'vidfm eval OUT/best DATA --few-shot ... "
        "--classes NOVEL'). --consistency adds consistency regularisation: the same prototype assignment for a weak and a "
        "strong view of unlabeled clips (all training videos, labels unused). OUT/best is a plain encoder folder."))  # fmt: skip
    f.add_argument("data", help="synthetic world, CSV of 'path,label' or folder of class folders (with train/val via a world)")
    f.add_argument("--encoder", required=True, help="encoder to start from: a preset, an encoder folder or a pre-training run")
    f.add_argument("--out", required=True, help="run folder")
    f.add_argument("--few-shot", default="5way-5shot", metavar="NwayKshot", help="episode shape")
    f.add_argument("--classes", type=comma_list, help="comma-separated base classes to train on (default: all)")
    f.add_argument("--queries", type=int, default=5, help="query clips per class and episode")
    f.add_argument("--episodes", type=int, default=100, help="episodes per epoch")
    f.add_argument("--consistency", type=float, default=0.0, help="weight of the consistency term (0 = off; try 1)")
    f.add_argument("--unlabeled", type=int, default=16, help="unlabeled clips per episode for the consistency term")
    add_train_options(f, lr=1e-4, epochs=3, batch_size=1)
    f.add_argument("--json", action="store_true")
    f.set_defaults(run=run_train_fewshot)


def run_train_fewshot(args) -> int:
    from vidfm.models import resolve_encoder
    from vidfm.tasks.fewshot import episodic_finetune

    encoder = resolve_encoder(args.encoder)
    summary = episodic_finetune(encoder, args.data, train_config=train_config_from(args), spec=args.few_shot, classes=args.classes,
                                queries=args.queries, episodes=args.episodes, consistency=args.consistency,
                                unlabeled_per_episode=args.unlabeled, resume=not args.fresh,
                                progress=lambda it: progress(it, "decoding", unit="batch"))  # fmt: skip
    if summary_handled(summary, args):
        return 0
    best = f"best validation episode accuracy {summary['best']:.3f}" if summary["best"] is not None else "no validation episodes"
    print(f"episodic fine-tuning: {summary['steps']} episodes on {len(summary['classes'])} classes in {summary['seconds']:.0f} s; {best}")
    print(f"encoder: {Path(args.out) / 'best'}   evaluate: vidfm eval {Path(args.out) / 'best'} DATA --few-shot {args.few_shot} --classes NOVEL")
    return 0


def register_train(tsub) -> None:
    register_train_fewshot(tsub)
    p = tsub.add_parser(
        "classify",
        help="train a video classifier",
        description=(
            "Train a video classifier on a synthetic world (vidfm synth), a CSV of 'path,label' or a folder with one "
            "sub-folder per class. The best weights (by validation accuracy) are saved in OUT/best; the same command "
            "again resumes an interrupted run from OUT/checkpoint (other settings need --fresh or another OUT); "
            "OUT/metrics.jsonl and OUT/curves.png record the run. The defaults learn the synthetic world's 12 actions "
            "in a few CPU minutes."
        ),
    )
    p.add_argument("data", help="synthetic world folder, CSV file, or folder of class folders")
    p.add_argument("--val", help="validation CSV or folder (default: the world's val split, or 15%% of DATA)")
    p.add_argument("--encoder", default="r2plus1d-tiny", help="preset name (r2plus1d-tiny, slowfast-tiny, tsm-tiny, tsn-tiny, videomae-tiny, "
                   "timesformer-tiny, frame-tiny, or a paper size) or a folder to load; the tiny ViTs need --epochs 30 or more")
    p.add_argument("--adapt", default="full", help="full | linear | freeze:N | lora[:RANK] | adapter | parallel | prompt[:N] | prefix[:N]")
    p.add_argument("--out", required=True, help="run folder")
    add_train_options(p, lr=3e-3, epochs=20, batch_size=8)  # learns the world's 12 actions in a few CPU minutes (benchmarks/RESULTS.md)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--mixup", type=float, default=0.0, help="MixUp alpha (0 = off)")
    p.add_argument("--cutmix", type=float, default=0.0, help="CutMix alpha (0 = off)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout before the classifier head")
    p.add_argument("--drop-path", type=float, default=0.0, help="stochastic depth rate")
    p.add_argument("--frames", type=int, default=8, help="frames per clip")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels")
    p.add_argument("--per-class", type=int, help="use at most this many training videos per class (few-shot)")
    p.add_argument("--on-error", default="skip", choices=["skip", "raise"], help="what to do with videos that fail to decode")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run_train_classify)


def register(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a classifier, video-text, grounding or Video-LLM model", description="A classifier: top-1, top-5, per-class accuracy and a confusion-matrix PNG. A video-text model: R@1/5/10, median and mean rank in both directions, and zero-shot accuracy on a world.")
    e.add_argument("model", help="run folder (uses RUN/best), a saved classifier, a classifier's ONNX export (vidfm export / compress) or a video-text model")
    e.add_argument("data", help="synthetic world folder (with --split), CSV or folder of class folders")
    e.add_argument("--split", default="test", help="world split: train, val, test or compositional (default test)")
    e.add_argument("--confusion", help="write the confusion matrix PNG here (default MODEL/confusion_<split>.png)")
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime"], help="classifiers: run in PyTorch, or export and run in ONNX Runtime")
    e.add_argument("--few-shot", metavar="NwayKshot",
                   help="few-shot evaluation on the frozen features of MODEL's encoder (any encoder folder): e.g. 5way-1shot, "
                        "5way-5shot; prototypes and a linear probe on the same episodes, mean accuracy with a 95%% interval")
    e.add_argument("--episodes", type=int, default=600, help="few-shot episodes (default 600)")
    e.add_argument("--queries", type=int, default=15, help="query clips per class and episode (default 15)")
    e.add_argument("--seed", type=int, default=0, help="few-shot episode sampling seed")
    e.add_argument("--classes", type=comma_list, help="few-shot: only these comma-separated classes (e.g. the novel ones an episodic run did not train on)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=run_eval)

    pr = sub.add_parser("predict", help="top-k labels of a video", description="Classify one or more videos with a trained classifier.")
    pr.add_argument("model", help="run folder (uses RUN/best), a saved classifier folder or its ONNX export")
    pr.add_argument("videos", nargs="+", metavar="VIDEO")
    pr.add_argument("--top", type=int, default=5)
    pr.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime"], help="run in PyTorch, or export and run in ONNX Runtime")
    pr.add_argument("--out", help="a collection (folders and .txt lists of paths allowed): write one JSON line per video here "
                    "({path, labels}) instead of printing; needed with --engine ray")  # fmt: skip
    pr.add_argument("--json", action="store_true")
    add_engine_options(pr)
    pr.set_defaults(run=run_predict)


def parse_adapt(spec: str) -> tuple[str, dict]:
    method, _, arg = spec.partition(":")
    try:
        if method == "freeze":
            return method, {"blocks": int(arg or 0)}
        if method == "lora":
            rank = int(arg or 8)
            return method, {"rank": rank, "alpha": 2 * rank}
        if method in ("prompt", "prefix"):
            return method, {"tokens": int(arg or 8)}
    except ValueError:
        raise ConfigError(f"--adapt {spec!r}: expected a whole number after ':'") from None
    return method, {}


def run_train_classify(args) -> int:
    from vidfm.tasks.classify import train_classifier

    method, options = parse_adapt(args.adapt)
    cfg = train_config_from(args)
    summary = train_classifier(
        args.data, args.encoder, train_config=cfg, val=args.val, adaptation=method, adaptation_options=options,
        num_frames=args.frames, size=args.size, dropout=args.dropout, drop_path=args.drop_path,
        label_smoothing=args.label_smoothing, mixup_alpha=args.mixup, cutmix_alpha=args.cutmix,
        on_error=args.on_error, limit_train=args.per_class, resume=not args.fresh,
    )  # fmt: skip
    if summary_handled(summary, args):
        return 0
    p = summary["params"]
    print(f"trained {summary['steps']} steps ({summary['epochs']} epochs) in {summary['seconds']:.1f} s; "
          f"trainable {p['trainable']:,} of {p['total']:,} parameters ({p['percent']:.2f} %)")  # fmt: skip
    print(f"best validation accuracy {summary['best']:.4f}" + (" (stopped early)" if summary["stopped_early"] else ""))
    report_skipped(summary["skipped_videos"])
    print(f"model: {Path(args.out) / 'best'}   curves: {Path(args.out) / 'curves.png'}")
    warn_if_collapsed(summary["best_eval"])
    return 0


def _load_classifier(path, runtime: str = "torch"):
    """A classifier folder, or an ONNX export of one (run by ONNX Runtime); with
    ``runtime="onnxruntime"`` a folder is exported to a temporary file first."""
    from vidfm.files import model_folder
    from vidfm.tasks.classify import VideoClassifier

    if str(path).endswith(".onnx"):
        from vidfm.compress.onnx import OnnxClassifier

        return OnnxClassifier(path), Path(path).parent
    path = model_folder(path, "classifier.json")
    model = VideoClassifier.from_pretrained(path)
    if runtime == "onnxruntime":
        import tempfile

        from vidfm.compress.onnx import OnnxClassifier, export_classifier

        with tempfile.TemporaryDirectory(prefix="vidfm-onnx-") as tmp:  # the session holds the weights once built
            model = OnnxClassifier(export_classifier(model, Path(tmp) / "classifier.onnx"))
    return model, path


def run_eval(args) -> int:
    from vidfm.cli.ground_commands import is_grounding_model, run_eval_grounding
    from vidfm.cli.retrieval_commands import is_video_text_model, run_eval_retrieval
    from vidfm.data.datasets import DataSource, VideoDataset
    from vidfm.tasks.classify import evaluate_classifier, plot_confusion_for

    folder = not str(args.model).endswith(".onnx")  # an ONNX export is a classifier
    if args.few_shot:
        return run_eval_few_shot(args)
    if folder and is_video_text_model(args.model):
        return run_eval_retrieval(args)
    if folder and is_grounding_model(args.model):
        return run_eval_grounding(args)
    if folder and is_videollm(args.model):
        return run_eval_videollm(args)
    model, path = _load_classifier(args.model, args.runtime)
    source = DataSource(args.data)
    if source.is_world and source.world().classes != model.classes:
        raise ConfigError(f"{args.data}: the world's labels differ from the model's")
    records, _ = source.classification(args.split, classes=model.classes)
    dataset = VideoDataset(records, num_frames=model.num_frames, decode_size=(model.image_size, model.image_size), sampler="segments")
    metrics = evaluate_classifier(model, dataset, args.batch_size, progress=lambda it: progress(it, "evaluating", unit="batch"))
    out = Path(args.confusion) if args.confusion else path / f"confusion_{args.split if source.is_world else 'data'}.png"
    plot_confusion_for(metrics, model.classes, out)
    metrics["confusion_png"] = str(out)
    if args.json:
        print_json(metrics)
        return 0
    k = [key for key in metrics if key.startswith("top") and key != "top1"][0]
    print(f"{metrics['count']} videos: top-1 {metrics['accuracy']:.4f}, {k} {metrics[k]:.4f}, mean class accuracy {metrics['mean_class_accuracy']:.4f}")
    for name, acc in metrics["per_class_accuracy"].items():
        print(f"  {name:<16} {'-' if acc != acc else f'{acc:.3f}'}")
    print(f"confusion matrix: {out}")
    report_skipped(metrics["skipped"])
    warn_if_collapsed(metrics)
    return 0


def run_eval_few_shot(args) -> int:
    from vidfm.data.datasets import DataSource, VideoDataset
    from vidfm.models import load_encoder
    from vidfm.tasks.fewshot import encode_clips, few_shot_eval, parse_spec

    parse_spec(args.few_shot)  # a bad spec fails before any decoding
    if args.episodes < 2 or args.queries < 1:
        raise ConfigError(f"--episodes must be >= 2 (for an interval) and --queries >= 1, got {args.episodes} and {args.queries}")
    encoder = load_encoder(args.model)
    records, classes = DataSource(args.data).classification(args.split)
    if args.classes:
        from vidfm.tasks.fewshot import known_classes

        wanted = known_classes(args.classes, classes)
        records = [r for r in records if r["label"] in wanted]
    dataset = VideoDataset(records, num_frames=encoder.config.num_frames, decode_size=(encoder.config.image_size,) * 2, sampler="segments")
    feats, labels = encode_clips(encoder, dataset, args.batch_size, progress=lambda it: progress(it, "encoding", unit="batch"))
    result = {"model": str(args.model), "data": str(args.data), "split": args.split, "videos": len(labels),
              **few_shot_eval(feats, labels, args.few_shot, args.episodes, args.queries, args.seed)}  # fmt: skip
    if args.json:
        print_json(result)
        return 0
    print(f"{result['n_way']}-way {result['k_shot']}-shot, {result['episodes']} episodes of {result['queries']} queries per class "
          f"on {result['videos']} videos ({len(classes)} classes; chance {result['chance']:.1%}):")  # fmt: skip
    for name in ("prototypes", "linear_probe"):
        r = result[name]
        print(f"  {name.replace('_', ' '):<13} {r['accuracy']:.1%} ± {r['ci95']:.1%}")
    return 0


def is_videollm(path) -> bool:
    from vidfm.files import model_folder
    from vidfm.models.videollm import CONFIG

    return (model_folder(path, CONFIG) / CONFIG).exists()


def run_eval_videollm(args) -> int:
    from vidfm.data.datasets import DataSource
    from vidfm.models.videollm import VideoLLM
    from vidfm.tasks.videollm import evaluate_videollm

    model = VideoLLM.from_pretrained(args.model)
    metrics = evaluate_videollm(model, args.data, args.split, batch_size=args.batch_size, progress=progress)
    if model.segmenter is not None and DataSource(args.data).is_world:
        from vidfm.errors import DatasetError
        from vidfm.tasks.segment import evaluate_segmentation

        try:
            metrics["segmentation"] = evaluate_segmentation(model, args.data, args.split, progress=progress)
        except DatasetError as e:  # e.g. a world written before instance masks
            metrics["segmentation"] = {"skipped": str(e)}
    if args.json:
        print_json(metrics)
        return 0
    print(f"{metrics['videos']} videos ({args.split})")
    if "qa_accuracy" in metrics:
        print(f"  closed QA accuracy {metrics['qa_accuracy']:.3f}  (" + ", ".join(f"{k} {v:.2f}" for k, v in metrics["qa_by_type"].items()) + ")")
    if "timestamps" in metrics:
        t = metrics["timestamps"]
        print(f"  timestamps: R@1 IoU0.3 {t['R@1,IoU=0.3']:.3f}  IoU0.5 {t['R@1,IoU=0.5']:.3f}  IoU0.7 {t['R@1,IoU=0.7']:.3f}  "
              f"mIoU {t['mIoU']:.3f}  ({t['unparseable']} of {t['count']} answers unparseable)")  # fmt: skip
    if "captions" in metrics:
        c = metrics["captions"]
        meteor = "n/a" if c["METEOR"] is None else f"{c['METEOR']:.3f}"
        print(f"  captions: BLEU-4 {c['BLEU-4']:.3f}  METEOR {meteor}  ROUGE-L {c['ROUGE-L']:.3f}  CIDEr-D {c['CIDEr-D']:.3f}")
    if metrics.get("hallucination_rate") is not None:
        print(f"  hallucination rate (captions naming a colour, shape or action not in the video) {metrics['hallucination_rate']:.3f}")
    s = metrics.get("segmentation")
    if s and "skipped" in s and "JF" not in s:
        print(f"  referring segmentation: not measured ({s['skipped']})")
    elif s:
        def f(v):
            return "n/a" if v is None else f"{v:.3f}"

        b, multi = s["baselines"], s["multi_object"]
        print(f"  referring segmentation: J&F {f(s['JF'])} (J {f(s['J'])}, F {f(s['F'])}) on {s['count']} objects; several objects in the clip: "
              f"J&F {f(multi['JF'])}, right object {f(multi['right_object'])}; absent things left without a mask {f(s['absent_refused']['rate'])}; "
              f"baselines J&F: whole frame {f(b['whole_frame']['JF'])}, largest moving region {f(b['moving_region']['JF'])}")  # fmt: skip
        report_skipped(s["skipped"])
    report_skipped(metrics["skipped"])
    return 0


def run_predict(args) -> int:
    from vidfm.tasks.classify import predict

    if args.out or args.engine != "local":
        from vidfm.scale.jobs import PredictJob

        if not args.out or args.runtime != "torch" or str(args.model).endswith(".onnx"):
            raise ConfigError("over a collection give --out FILE.jsonl, with a classifier folder in PyTorch (--runtime torch)")
        return run_collection_job(PredictJob(args.model, args.top), collect_videos(args.videos), args.out, args)
    model, _ = _load_classifier(args.model, args.runtime)
    results, failed = for_each_video(args.videos, lambda v: [{"label": lab, "probability": p} for lab, p in predict(model, v, top=args.top)])
    return print_ranked(results, failed, args.json, "probability")
