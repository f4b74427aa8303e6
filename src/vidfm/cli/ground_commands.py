"""``vidfm train ground`` and ``vidfm ground``."""

from __future__ import annotations

from pathlib import Path

from vidfm.cli.common import (
    add_train_options,
    print_json,
    progress,
    summary_handled,
    train_config_from,
)


def register_train(tsub) -> None:
    p = tsub.add_parser("ground", help="train a temporal grounding model",
                        description=("Train sentence -> (start, end) on a synthetic world's grounding annotations. Clip features come "
                                     "from --features (a video-text run or any encoder folder), computed once per video; the sentence "
                                     "side is the frozen MiniLM. The best model by validation mIoU is saved in OUT/best."))  # fmt: skip
    p.add_argument("data", help="synthetic world folder")
    p.add_argument("--features", required=True, help="model that embeds the clips (e.g. a 'vidfm pretrain --objective contrastive' run)")
    p.add_argument("--out", required=True, help="run folder")
    add_train_options(p, lr=1e-3, epochs=15)
    p.add_argument("--clips", type=int, default=16, help="clip features per video")
    p.add_argument("--window", type=int, default=8, help="frames per clip window")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_train_ground)


def register(sub) -> None:
    g = sub.add_parser("ground", help="find when something happens in a video", description="Temporal grounding: the (start, end) seconds a sentence describes, with a confidence.")
    g.add_argument("video")
    g.add_argument("query", nargs="+", help="one or more sentences")
    g.add_argument("--model", required=True, help="a 'vidfm train ground' run or model folder")
    g.add_argument("--head", default="candidates", choices=["candidates", "regression"], help="candidate-segment scoring (default) or regression")
    g.add_argument("--json", action="store_true")
    g.set_defaults(run=run_ground)


def run_train_ground(args) -> int:
    from vidfm.tasks.ground import train_grounding

    summary = train_grounding(args.data, args.features, train_config=train_config_from(args), num_clips=args.clips, window_frames=args.window,
                              hidden=args.hidden, progress=lambda it: progress(it, "clip features", unit="sentence"), resume=not args.fresh)  # fmt: skip
    if summary_handled(summary, args):
        return 0
    print(f"trained {summary['steps']} steps in {summary['seconds']:.1f} s on {summary['train_sentences']} sentences; best validation mIoU {summary['best']:.4f}")
    print(f"model: {Path(args.out) / 'best'}")
    return 0


def run_ground(args) -> int:
    from vidfm.tasks.ground import Grounder

    results = Grounder(args.model).ground(args.video, args.query, args.head)
    if args.json:
        print_json(results)
        return 0
    for r in results:
        print(f"{r['start']:7.2f} - {r['end']:.2f} s  (confidence {r['confidence']:.2f})  {r['sentence']}")
    return 0


def is_grounding_model(path) -> bool:
    from vidfm.files import model_folder
    from vidfm.tasks.ground import META

    return (model_folder(path, META) / META).exists()


def run_eval_grounding(args) -> int:
    from vidfm.data.datasets import DataSource
    from vidfm.tasks.ground import Grounder

    metrics = Grounder(args.model).evaluate(DataSource(args.data).grounding(args.split), progress=lambda it: progress(it, "clip features", unit="sentence"))
    if args.json:
        print_json(metrics)
        return 0
    print(f"{metrics['sentences']} sentences ({args.split})")
    for head in ("candidates", "regression"):
        print(f"  {head:<10}  R@1 IoU0.3 {metrics[f'{head}_R@1,IoU=0.3']:.3f}  IoU0.5 {metrics[f'{head}_R@1,IoU=0.5']:.3f}  "
              f"IoU0.7 {metrics[f'{head}_R@1,IoU=0.7']:.3f}  mIoU {metrics[f'{head}_mIoU']:.3f}")  # fmt: skip
    return 0
