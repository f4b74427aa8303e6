"""Small helpers shared by command modules."""

from __future__ import annotations

import argparse
import json
import sys


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (argparse's own formatter skips options
    without help text, and those whose help already mentions a default)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if action.option_strings and default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text = f"{text} (default: %(default)s)".strip()
        return text


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def for_each_video(videos, work) -> tuple[list, dict]:
    """``work(video)`` for every video, in order; a file that fails with a ``VidfmError``
    is reported on stderr (one line each) and the others still run.
    -> ([(video, result or None)], {video: error})."""
    from vidfm.errors import VidfmError

    results, failed = [], {}
    for v in videos:
        try:
            results.append((v, work(v)))
        except VidfmError as e:
            results.append((v, None))
            failed[v] = str(e)
            print(f"error: {e}", file=sys.stderr)
    return results, failed


def print_ranked(results: list, failed: dict, as_json: bool, value: str) -> int:
    """Per video, ranked ``{"label", value}`` rows (as ``for_each_video`` returns them), as
    text or JSON (with the errors); the exit code says whether any video failed."""
    done = [(v, r) for v, r in results if r is not None]
    if as_json:
        print_json({**dict(done), **({"errors": failed} if failed else {})})
    else:
        for v, rows in done:
            print(v)
            for row in rows:
                print(f"  {row[value]:6.3f}  {row['label']}")
    return 1 if failed else 0


def report_skipped(paths) -> None:
    if paths:
        print(f"skipped {len(paths)} unreadable videos: {', '.join(map(str, list(paths)[:5]))}" + (" ..." if len(paths) > 5 else ""))


def summary_handled(summary: dict, args) -> bool:
    """The start of every training command's report: JSON when asked (True), or the note
    that the run had already finished (True); False when the text summary should follow."""
    summary.pop("history", None)
    if args.json:
        print_json(summary)
        return True
    return report_finished(summary, args.out)


def report_finished(summary: dict, out) -> bool:
    """A run folder whose training had already ended: say so (True) instead of a summary."""
    if not summary.get("already_finished"):
        return False
    best = summary.get("best")
    print(f"{out}: this run already finished ({summary['steps']} steps" + (f", best validation score {best:.4f}" if best is not None else "")
          + "); nothing to do. Pass a larger --max-steps or --epochs to train it on, --fresh to train it again from scratch, or choose another --out.")  # fmt: skip
    return True


def warn_if_collapsed(metrics: dict) -> None:
    """Loud, on stderr: the model gives (almost) the same output for every video."""
    if metrics and metrics.get("collapsed"):
        spread = next((v for k, v in metrics.items() if k.endswith("_spread")), float("nan"))
        print(f"WARNING: the model's outputs barely differ from video to video (relative spread {spread:.1e}): it has "
              "collapsed, and its scores and predictions are meaningless. Train longer or with another --lr, or check the data.",
              file=sys.stderr)  # fmt: skip


def comma_list(text: str) -> list[str]:
    """An argparse type: 'a, b,c' -> ['a', 'b', 'c'] (at least one name)."""
    import argparse

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def progress(iterable, desc: str, total: int | None = None, unit: str = "it"):
    """A tqdm bar on stderr (hidden when stderr is not a terminal, e.g. in CI logs)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=None, file=sys.stderr)


def add_train_options(p, lr: float = 1e-3, epochs: int = 10, batch_size: int = 16) -> None:
    """The trainer's options, shared by every ``train``/``pretrain`` command."""
    p.add_argument("--epochs", type=int, default=epochs, help="passes over the training data")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="clips per optimizer step (per process)")
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate (AdamW)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (not on biases and norms)")
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up fraction of all steps, then cosine decay")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--clip-grad", type=float, default=1.0, help="max gradient norm (0 disables)")
    p.add_argument("--precision", default="no", choices=["no", "bf16", "fp16"], help="mixed precision")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward to save memory")
    p.add_argument("--fsdp", action="store_true", help="shard weights, gradients and optimizer state over the processes of "
                   "'torchrun --nproc-per-node N -m vidfm train ...' (PyTorch FSDP2; see docs/scale.md)")
    p.add_argument("--ema", type=float, help="EMA decay of the weights, e.g. 0.999 (evaluation uses the EMA)")
    p.add_argument("--early-stop", type=int, help="stop after this many evaluations without improvement")
    p.add_argument("--precise-bn", type=int, default=16, help="recompute BatchNorm statistics over this many batches before each evaluation (0 = off)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="save a resumable checkpoint every N steps (and after every epoch)")
    p.add_argument("--log-every", type=int, default=10, help="log the training loss every N steps")
    p.add_argument("--seed", type=int, default=0, help="random seed (data order, augmentation, initialisation)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing run in OUT and start over (without it, an interrupted run resumes)")


def train_config_from(args):
    from vidfm.training import TrainConfig

    return TrainConfig(
        output_dir=args.out, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, warmup_ratio=args.warmup, grad_accum=args.grad_accum,
        max_grad_norm=args.clip_grad or None, mixed_precision=args.precision, gradient_checkpointing=args.grad_checkpointing, fsdp=args.fsdp,
        ema_decay=args.ema, early_stopping_patience=args.early_stop, checkpoint_every_steps=args.checkpoint_every, seed=args.seed,
        bn_recalibration_batches=args.precise_bn, log_every_steps=args.log_every,
    )  # fmt: skip


def collect_videos(items) -> list:
    """Video paths from the command line: files, folders (searched recursively) and list
    files (``.txt``/``.lst``: one path per line, relative to the list's folder; ``#``
    comments). A missing file is kept: the command reports it with the others."""
    from pathlib import Path

    from vidfm.data.datasets import find_videos
    from vidfm.errors import ConfigError

    out = []
    for item in map(Path, items):
        if item.is_dir():
            found = find_videos(item)
            if not found:
                raise ConfigError(f"{item}: no videos found")
            out += found
        elif item.suffix.lower() in (".txt", ".lst"):
            if not item.is_file():
                raise ConfigError(f"{item}: list file not found")
            lines = [line.strip() for line in item.read_text().splitlines()]
            listed = [item.parent / line for line in lines if line and not line.startswith("#")]
            if not listed:
                raise ConfigError(f"{item}: the list names no videos")
            out += listed
        else:
            out.append(item)
    return out


def one_video(items, engine: str = "local") -> bool:
    """True for the one-video form of a command that also runs over collections: a single
    argument that is neither a folder nor a list file, run in this process."""
    from pathlib import Path

    return engine == "local" and len(items) == 1 and not Path(items[0]).is_dir() and Path(items[0]).suffix.lower() not in (".txt", ".lst")


def add_engine_options(p, local_help: str = "run in this process") -> None:
    """``--engine`` and the Ray options of the collection commands."""
    g = p.add_argument_group("scale-out", "Run over a collection on Ray Data (pip install 'vidfm[ray]'): a pool of actors, each "
                             "loading the model once, works through shards of videos; a killed run restarted with the same "
                             "arguments reuses the finished shards; failed videos go to OUT.failures.jsonl.")  # fmt: skip
    g.add_argument("--engine", default="local", choices=["local", "ray"], help=f"local: {local_help}; ray: Ray Data with an actor pool")
    g.add_argument("--address", help="an existing Ray cluster ('auto' or ray://HOST:10001); default: start Ray on this machine")
    g.add_argument("--num-cpus", type=float, help="CPUs of the local Ray instance (default: every core)")
    g.add_argument("--actors", type=int, help="model replicas (default: one per CPU)")
    g.add_argument("--cpus-per-actor", type=float, default=0.5, help="CPUs each actor reserves; the pool must leave some free for reading")
    g.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs each actor reserves (e.g. 1, or 0.5 to share one); > 0 runs the model on CUDA")
    g.add_argument("--shard-size", type=int, help="videos per shard, the unit of work and of resumption (default: 1/16 of the videos, at most 64)")
    g.add_argument("--retries", type=int, default=2, help="retries of a video that fails (or crashes its worker) before it is recorded as failed")


def engine_kwargs(args) -> dict:
    """The engine options of a collection command (``add_engine_options``) as keyword arguments."""
    from vidfm.scale.batch import RayOptions

    ray_options = RayOptions(address=args.address, num_cpus=args.num_cpus, actors=args.actors, cpus_per_actor=args.cpus_per_actor,
                             gpus_per_actor=args.gpus_per_actor)  # fmt: skip
    return {"engine": args.engine, "ray_options": ray_options, "shard_size": args.shard_size, "retries": args.retries}


def run_collection_job(job, videos, out, args, fmt: str = "jsonl") -> int:
    """A collection job from the CLI: run on the chosen engine with a bar, merge into OUT,
    print the report; returns the exit code."""
    from vidfm.scale.jobs import run_to_file

    report = run_to_file(job, videos, out, fmt=fmt, progress=job_progress, **engine_kwargs(args))
    return print_job_report(report, out, args.json)


def job_progress(total: int):
    """The bar of a collection job: videos done, with the rate."""
    return progress(None, "videos", total=total, unit="video")


def print_job_report(report, out, as_json: bool) -> int:
    """The summary of a collection job (videos/s, failures, time); exit 1 when every video failed."""
    from vidfm.scale.jobs import failures_file

    result = {**report.as_dict(), "out": str(out)}
    if report.failed:
        result["failures_file"] = str(failures_file(out))
    if as_json:
        print_json(result)
    else:
        print(f"{out}: {report.videos} videos, {report.videos - len(report.failed)} done ({report.reused} reused from an interrupted run), "
              f"{len(report.failed)} failed; {report.rows} rows; {report.processed} read in {report.seconds:.1f} s "
              f"({report.videos_per_second:.2f} videos/s, {report.engine}" + (f", {report.actors} actors)" if report.actors else ")"))  # fmt: skip
        for f in report.failed[:10]:
            print(f"  failed {f['path']}: {f['error']}")
        if report.failed:
            print(f"  all failures: {failures_file(out)}")
    return 1 if report.failed_all else 0
