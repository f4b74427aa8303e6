"""``vidfm pretrain``, ``vidfm index``, ``vidfm search`` and ``vidfm zeroshot``."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidfm.cli.common import (
    add_engine_options,
    add_train_options,
    collect_videos,
    comma_list,
    engine_kwargs,
    for_each_video,
    job_progress,
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


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="self-supervised or video-text pre-training",
        description=(
            "Pre-train an encoder. Objectives: mvm (VideoMAE masked video modelling; videomae-* encoders), simclr, "
            "moco and triplet (two augmented views of each video), ae and vae (redraw the clip from the encoder's pooled vector; "
            "optionally with a 3D patch GAN term), contrastive (video-text InfoNCE with the pretrained MiniLM text "
            "tower). DATA is a synthetic world, a folder of videos (searched recursively), a CSV with a 'path' column, "
            "or (contrastive) a JSONL of {path, captions}. RUN/best is an encoder folder usable by 'vidfm train "
            "classify --encoder RUN/best'; a contrastive run can also be used by 'vidfm index/search/zeroshot'. "
            "Any objective can add auxiliary attribute heads (--attributes), weigh its loss terms (--loss-weighting) and "
            "follow an easy-to-hard curriculum (--curriculum)."
        ),
    )
    p.add_argument("data", help="synthetic world, folder of videos, CSV or captions JSONL")
    p.add_argument("--objective", required=True, choices=["mvm", "simclr", "moco", "triplet", "ae", "vae", "contrastive"])
    p.add_argument("--encoder", default="videomae-tiny", help="preset name or an encoder folder to continue from")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--val", help="validation data of the same kind (default: the world's val split, or 10%% of DATA)")
    add_train_options(p)
    p.add_argument("--frames", type=int, default=8, help="frames per clip")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels")
    p.add_argument("--mask-ratio", type=float, default=0.9, help="mvm: fraction of tubes hidden")
    p.add_argument("--decoder-depth", type=int, default=2, help="mvm: decoder blocks")
    p.add_argument("--proj-dim", type=int, help="simclr/moco/triplet: projection size (default 128)")
    p.add_argument("--margin", type=float, help="triplet: margin between positive and negative distances (default 0.2)")
    p.add_argument("--mining", choices=["hard", "all"], help="triplet: batch-hard (each anchor's hardest positive and negative) or batch-all (default hard)")
    p.add_argument("--target-size", type=int, help="ae/vae: side of the redrawn clip (power of two, default 32)")
    p.add_argument("--kl-weight", type=float, help="vae: weight of the KL term (default 1e-3)")
    p.add_argument("--adversarial-weight", type=float, help="ae/vae: weight of the hinge GAN term from a 3D patch discriminator (default 0 = off; try 0.1)")
    p.add_argument("--adversarial-start", type=int, help="ae/vae: step at which the discriminator joins (default 0)")
    p.add_argument("--attributes", type=comma_list, help="auxiliary heads, comma-separated: world annotations (camera, count, size, shape, colour, "
                   "background; motion and direction are derived from the action label) or CSV column names")  # fmt: skip
    p.add_argument("--loss-weighting", default="fixed", choices=["fixed", "uncertainty"], help="how loss terms add up: fixed weights, or "
                   "learned per-term uncertainty (Kendall et al.)")  # fmt: skip
    p.add_argument("--loss-weights", type=_weights, help="per-term weights, e.g. 'camera=0.5,video_to_text=0.7'; terms: the objective's name "
                   "(contrastive: video_to_text, text_to_video) and each attribute")  # fmt: skip
    p.add_argument("--curriculum", type=int, metavar="EPOCHS", help="easy videos first: the pool widens from the easiest "
                   "--curriculum-start fraction to all of them over EPOCHS epochs (world: fewer objects, plain background, static camera)")  # fmt: skip
    p.add_argument("--curriculum-start", type=float, default=0.3, help="fraction of the videos open in the first epoch")
    p.add_argument("--temperature", type=float, help="softmax temperature (default 0.1 simclr/moco, 0.07 contrastive, learnable)")
    p.add_argument("--queue", type=int, help="moco: queue length (default 4096)")
    p.add_argument("--momentum", type=float, help="moco: key-encoder momentum (default 0.99)")
    p.add_argument("--text-model", default="minilm", help="contrastive: 'minilm' (bundled all-MiniLM-L6-v2) or a Hugging Face text model folder")
    p.add_argument("--text", default="frozen", choices=["frozen", "lora", "full"], help="contrastive: how the text tower trains")
    p.add_argument("--embed-dim", type=int, help="contrastive: joint space size (default 256)")
    p.add_argument("--caption-augment", type=comma_list, help="contrastive: caption augmentations, comma-separated: synonyms (lexicon "
                   "rewriting), drop (word dropout), translate (half the captions into zh/ja/es/fr/de by the built-in lexicon: for a "
                   "multilingual text tower)")  # fmt: skip
    p.add_argument("--hard-negatives", type=float, default=0.0, help="contrastive: HN-NCE beta (0 = off, try 0.5)")
    p.add_argument("--on-error", default="skip", choices=["skip", "raise"], help="what to do with videos that fail to decode")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run_pretrain)

    ix = sub.add_parser(
        "index",
        help="embed videos into a persistent search index",
        description=(
            "Embed every video under VIDEOS (or each window of --window seconds) with MODEL and store the vectors (FAISS) "
            "and what they are (SQLite: path, start, end) in OUT. Running it again adds only new or changed videos. "
            "Videos that fail to decode are skipped and listed; the index is written atomically."
        ),
    )
    _add_embedding_options(ix, "index folder (created or updated)")
    ix.add_argument("--kind", default="flat", choices=["flat", "hnsw"], help="exact search, or HNSW for large collections")
    ix.set_defaults(run=run_index)

    em = sub.add_parser(
        "embed",
        help="extract one feature vector per video, window or shot into a Parquet table",
        description=(
            "Embed every video under VIDEOS (files, folders, or .txt lists of paths) with MODEL and write OUT (Parquet: path, "
            "segment, start, end, vector). Failed videos are listed in OUT.failures.jsonl; OUT is written atomically. "
            "With --engine ray the work is spread over an actor pool, and a killed run restarted with the same "
            "arguments reuses the shards it had finished."
        ),
    )
    _add_embedding_options(em, "Parquet file to write")
    em.set_defaults(run=run_embed)

    s = sub.add_parser("search", help="search an index by text or by an example video", description="Text -> video search (QUERY) or video -> video search (--video). Prints score, file and time range.")
    s.add_argument("index", help="index folder made by 'vidfm index'")
    s.add_argument("query", nargs="?", help="a sentence, e.g. 'a red circle moves left'")
    s.add_argument("--video", help="find segments similar to this video instead")
    s.add_argument("--model", help="model to embed the query (default: the one that built the index)")
    s.add_argument("--top", type=int, default=5)
    s.add_argument("--include-self", action="store_true", help="with --video: keep the query video's own segments")
    s.add_argument("--no-lexicon", action="store_true", help="send a non-English query to the text tower as it is (for a multilingual "
                   "tower) instead of rewriting it into English with the built-in lexicon (zh, ja, es, fr, de)")  # fmt: skip
    s.add_argument("--json", action="store_true")
    s.set_defaults(run=run_search)

    z = sub.add_parser("zeroshot", help="classify videos by label prompts, no training", description="Score videos against label prompts ('a video of {label}', prompt-ensembled) with a video-text model.")
    z.add_argument("model", help="video-text run or model folder")
    z.add_argument("videos", nargs="+", metavar="VIDEO")
    z.add_argument("--labels", required=True, help="comma-separated labels, or a text file with one label per line")
    z.add_argument("--template", action="append", help="prompt template with {} for the label (repeatable; default: a small ensemble)")
    z.add_argument("--top", type=int, default=3)
    z.add_argument("--no-lexicon", action="store_true", help="labels in another language go to the text tower as they are (default: "
                   "rewritten into English by the built-in lexicon)")  # fmt: skip
    z.add_argument("--json", action="store_true")
    z.set_defaults(run=run_zeroshot)


def _add_embedding_options(p, out_help: str) -> None:
    """What ``index`` and ``embed`` share: the videos, the model, the segments, the engine."""
    p.add_argument("videos", nargs="+", help="video files, folders (searched recursively) or .txt lists of paths")
    p.add_argument("--model", required=True, help="a video-text run/model (text and video queries) or any encoder folder (video queries)")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--window", type=float, help="embed windows of this many seconds instead of whole videos")
    p.add_argument("--stride", type=float, help="seconds between window starts (default: the window)")
    p.add_argument("--shots", choices=["student", "histogram", "transnetv2", "content", "adaptive"], help="embed each shot found by this detector instead")
    p.add_argument("--batch-size", type=int, default=32, help="segments per forward pass")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_engine_options(p)


def run_pretrain(args) -> int:
    from vidfm.tasks.pretrain import pretrain

    summary = pretrain(
        args.data, args.objective, args.encoder, train_config=train_config_from(args), val=args.val, num_frames=args.frames,
        size=args.size, on_error=args.on_error, resume=not args.fresh, mask_ratio=args.mask_ratio,
        decoder_depth=args.decoder_depth, proj_dim=args.proj_dim, temperature=args.temperature, queue_size=args.queue,
        momentum=args.momentum, margin=args.margin, mining=args.mining, text_model=args.text_model, text_mode=args.text, embed_dim=args.embed_dim,
        hard_negative_beta=args.hard_negatives or None, target_size=args.target_size, kl_weight=args.kl_weight,
        adversarial_weight=args.adversarial_weight, adversarial_start=args.adversarial_start, attributes=args.attributes,
        loss_weighting=args.loss_weighting, loss_weights=args.loss_weights, curriculum=args.curriculum, curriculum_start=args.curriculum_start,
        caption_augment=args.caption_augment,
    )  # fmt: skip
    if summary_handled(summary, args):
        return 0
    p = summary["params"]
    metric = "validation rsum (R@1+5+10 both ways)" if args.objective == "contrastive" else "validation loss"
    print(f"{args.objective}: {summary['steps']} steps ({summary['epochs']} epochs) in {summary['seconds']:.1f} s; "
          f"trainable {p['trainable']:,} of {p['total']:,} parameters")  # fmt: skip
    if summary["best"] is not None:
        print(f"best {metric} {summary['best']:.4f}")
    print(f"encoder: {Path(args.out) / 'best'}   curves: {Path(args.out) / 'curves.png'}")
    if summary.get("reconstruction_png"):
        print(f"reconstructions: {summary['reconstruction_png']}")
    warn_if_collapsed(summary["best_eval"])
    return 0


def _weights(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: expected NAME=NUMBER") from None
    return out


def run_index(args) -> int:
    from vidfm.retrieval.embedder import Embedder
    from vidfm.retrieval.index import VideoIndex, update_index

    videos = collect_videos(args.videos)
    if args.shots and args.window:
        raise ConfigError("choose --window or --shots, not both")
    if args.engine == "local":
        report = update_index(args.out, videos, Embedder(args.model), window=args.window, stride=args.stride, shots=args.shots, kind=args.kind,
                              batch_size=args.batch_size, progress=lambda it: progress(it, "indexing", unit="video"))  # fmt: skip
    else:
        from vidfm.scale.jobs import index_with_engine

        report, _ = index_with_engine(args.out, videos, args.model, window=args.window, stride=args.stride, shots=args.shots, kind=args.kind,
                                      batch_size=args.batch_size, progress=job_progress, **engine_kwargs(args))  # fmt: skip

    with VideoIndex.open(args.out) as ix:
        total = len(ix)
    result = {**report.as_dict(), "index": args.out, "total_segments": total}
    if args.json:
        print_json(result)
    else:
        rate = report.added_videos / report.seconds if report.seconds else 0
        print(f"{args.out}: added {report.added_videos} videos ({report.added_segments} segments, {rate:.1f} videos/s), "
              f"{report.unchanged_videos} unchanged, {len(report.failed)} failed; {total} segments in all")  # fmt: skip
        for path, err in report.failed:
            print(f"  skipped {path}: {err}")
    return 1 if report.failed and not report.added_videos and not report.unchanged_videos else 0


def run_embed(args) -> int:
    from vidfm.scale.jobs import EmbedJob

    if args.shots and args.window:
        raise ConfigError("choose --window or --shots, not both")
    job = EmbedJob(args.model, args.window, args.stride, args.shots, args.batch_size)
    return run_collection_job(job, collect_videos(args.videos), args.out, args, fmt="parquet")


def run_search(args) -> int:
    from vidfm.retrieval.embedder import Embedder
    from vidfm.retrieval.index import VideoIndex

    if (args.query is None) == (args.video is None):
        raise ConfigError("give either a text QUERY or --video FILE")
    if args.query is not None and not args.query.strip():
        raise ConfigError("the query is empty; give a sentence such as 'a red circle moves left'")
    with VideoIndex.open(args.index) as ix:
        embedder = Embedder(args.model or ix.model_path(), lexicon=not args.no_lexicon)
        if args.query and not args.no_lexicon:
            note_translation(args.query)
        if args.video:
            hits = ix.search_video(embedder, args.video, args.top, include_self=args.include_self)
        else:
            hits = ix.search_text(embedder, args.query, args.top)
    if args.json:
        print_json({"query": args.query or args.video, "hits": hits})
        return 0
    for h in hits:
        print(f"{h['rank']:>3}  {h['score']:.3f}  {h['path']}  {h['start']:.2f}-{h['end']:.2f} s")
    if not hits:
        print("no results (the index is empty)")
    return 0


def note_translation(text: str) -> None:
    """On stderr: how the built-in lexicon rewrote a non-English query (and what it did not know)."""
    import sys

    from vidfm.data.lexicon import to_english

    t = to_english(text)
    if t.language:
        missing = f"; not in the lexicon: {' '.join(t.unknown)}" if t.unknown else ""
        print(f"({t.language} -> English by the built-in lexicon: '{t.text}'{missing}; --no-lexicon to turn it off)", file=sys.stderr)


def run_zeroshot(args) -> int:
    from vidfm.retrieval.embedder import Embedder
    from vidfm.tasks.retrieval import TEMPLATES, zero_shot_classifier

    p = Path(args.labels)
    labels = [x.strip() for x in (p.read_text().splitlines() if p.is_file() else args.labels.split(",")) if x.strip()]
    templates = args.template or TEMPLATES
    if any("{}" not in t for t in templates):
        raise ConfigError("each --template needs a {} where the label goes")
    embedder = Embedder(args.model, lexicon=not args.no_lexicon)
    if not args.no_lexicon:
        for label in labels:
            note_translation(label)
    classifier = zero_shot_classifier(embedder, labels, templates)

    def scores(video):
        row = embedder.embed_video(video) @ classifier.T
        return [{"label": labels[i], "score": float(row[i])} for i in row.argsort()[::-1][: args.top]]

    results, failed = for_each_video(args.videos, scores)
    return print_ranked(results, failed, args.json, "score")


def is_video_text_model(path) -> bool:
    from vidfm.files import model_folder
    from vidfm.objectives.video_text import META

    return (model_folder(path, META) / META).exists()


def run_eval_retrieval(args) -> int:
    """``vidfm eval`` for a video-text model: retrieval both ways (+ zero-shot on a world)."""
    from vidfm.data.datasets import DataSource
    from vidfm.retrieval.embedder import Embedder
    from vidfm.tasks.retrieval import evaluate_retrieval, zero_shot_accuracy

    embedder = Embedder(args.model)
    source = DataSource(args.data)
    bar = lambda it: progress(it, "embedding", unit="video")  # noqa: E731
    metrics = evaluate_retrieval(embedder, source.captions(args.split), bar)
    if source.is_world:
        records, classes = source.classification(args.split)
        metrics["zero_shot"] = zero_shot_accuracy(embedder, records, classes, progress=bar)
    if args.json:
        print_json(metrics)
        return 0
    print(f"{metrics['videos']} videos, one caption each")
    report_skipped(metrics["skipped"])
    for d in ("t2v", "v2t"):
        print(f"  {d}: R@1 {metrics[f'{d}_R@1']:.3f}  R@5 {metrics[f'{d}_R@5']:.3f}  R@10 {metrics[f'{d}_R@10']:.3f}  "
              f"median rank {metrics[f'{d}_MdR']:.1f}  mean rank {metrics[f'{d}_MnR']:.1f}")  # fmt: skip
    if "zero_shot" in metrics:
        z = metrics["zero_shot"]
        print(f"  zero-shot classification: top-1 {z['accuracy']:.3f}, top-5 {z['top5']:.3f} (chance {z['chance']:.3f}) on {z['videos']} videos")
    warn_if_collapsed(metrics)
    return 0
