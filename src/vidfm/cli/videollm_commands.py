"""``vidfm train videollm``, ``vidfm caption``, ``vidfm ask``, ``vidfm chat``,
``vidfm segment`` and ``vidfm metrics captions``."""

from __future__ import annotations

import sys
from pathlib import Path

from vidfm.cli.common import (
    add_engine_options,
    add_train_options,
    collect_videos,
    one_video,
    print_json,
    progress,
    run_collection_job,
    summary_handled,
    train_config_from,
)
from vidfm.errors import ConfigError


def register_train(tsub) -> None:
    p = tsub.add_parser("videollm", help="train a Video-LLM (video encoder + connector + causal LM)", description=(
        "Train one stage of a Video-LLM on a synthetic world, a captions JSONL or a QA JSONL. align: video-caption "
        "pairs, only the connector trains. instruct: describe / closed QA / 'when does X happen?' / counting / yes-no "
        "templates, the connector and the LM (LoRA, or fully for the tiny LM) train. dpo: preference pairs from the "
        "ground truth (needs --init an instruct run). memory: a VideoLLaMB memory bridge learns to read sequences of "
        "2-6 world clips and answer about the one object whose colour no other clip shows (needs --init; then use "
        "'vidfm ask LONG_VIDEO ... --memory'). segment: a [SEG] token and SAM-2 learn referring segmentation from a world's "
        "instance masks, LoRA on the LM (needs --init; then use 'vidfm segment VIDEO \"the red circle\"'). OUT/best is a model "
        "for 'vidfm ask/caption/chat' (and 'vidfm segment')."))  # fmt: skip
    p.add_argument("data", help="synthetic world, captions JSONL or QA JSONL")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--stage", default="instruct", choices=["align", "instruct", "dpo", "memory", "segment"], help="training stage")
    p.add_argument("--init", help="continue from a trained Video-LLM (its settings win over the model options below)")
    p.add_argument("--lm", default="smollm2", help="smollm2 (SmolLM2-135M-Instruct, from PyPI), tiny (a 2-layer Llama built here), a model folder or a .gguf file")
    p.add_argument("--lm-train", choices=["frozen", "lora", "full"], help="how instruct/dpo tune the LM (default: full for tiny, lora otherwise)")
    p.add_argument("--lora-rank", type=int, default=16, help="LoRA rank on the LM's projections")
    p.add_argument("--encoder", default="tsm-tiny", help="video encoder: a preset (fresh) or an encoder folder, e.g. a 'vidfm pretrain' run")
    p.add_argument("--encoder-train", choices=["frozen", "full"], help="whether instruct/dpo also train the encoder (default: full for a fresh preset, "
                   "whose untrained features hardly tell colours apart; frozen for a trained encoder folder)")
    p.add_argument("--image-encoder", help="add a per-frame image tower (VideoGPT+ dual encoder): a preset or folder")
    p.add_argument("--feature-layer", type=int, default=-2, help="which hidden layer of the encoder to read")
    p.add_argument("--frames", type=int, default=8, help="frames per video (taken at --sample-fps, then thinned uniformly)")
    p.add_argument("--sample-fps", type=float, default=1.0, help="frame rate to sample before thinning")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels the encoder sees")
    p.add_argument("--tiles", type=int, default=1, help="AnyRes: read frames at TILES x --size and also encode the TILES x TILES crops "
                   "at full detail (LLaVA-NeXT); 1 = off")
    p.add_argument("--connector", default="mlp", choices=["mlp", "qformer", "perceiver"], help="LLaVA MLP, BLIP-2 Q-Former or Flamingo Perceiver resampler")
    p.add_argument("--queries", type=int, default=4, help="qformer/perceiver: tokens per time slot")
    p.add_argument("--pool", default="avg", choices=["none", "avg", "max", "bilinear"], help="pooling of each frame's token grid")
    p.add_argument("--pool-stride", type=int, default=2, help="pooling window (2 = 2x2)")
    p.add_argument("--pool-order", default="pool_then_project", choices=["pool_then_project", "project_then_pool"], help="pool before or after the MLP projection")
    p.add_argument("--memory-tokens", type=int, default=0, help="memory stage: memory tokens of the VideoLLaMB bridge it adds "
                   "(default: 32 when the stage adds one)")
    p.add_argument("--sam", help="segment stage: sam2-tiny (the default; trained from scratch) or a SAM-2 folder saved by "
                   "transformers (e.g. facebook/sam2.1-hiera-tiny), whose image encoder stays frozen")
    p.add_argument("--seg-size", type=int, help="segment stage: sam2-tiny's input side in pixels, default 128 (masks come out at a quarter)")
    p.add_argument("--seg-frames", type=int, default=4, help="segment stage: frames per video drawn for the mask loss each step")
    p.add_argument("--seg-mix", type=float, default=1.0, help="segment stage: instruction examples (questions, captions, 'when') per "
                   "referring example, so the LM keeps answering questions (0 = segmentation only)")
    p.add_argument("--rope-factor", type=int, default=1, help="linear RoPE scaling of the LM for prompts past its context")
    p.add_argument("--beta", type=float, default=0.1, help="dpo: the DPO temperature")
    p.add_argument("--turns", type=int, default=1, help="instruct: pack up to this many questions about one video into one conversation")
    add_train_options(p, lr=1e-3, epochs=5, batch_size=8)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run_train_videollm)


def register(sub) -> None:
    for name, helptext in (("caption", "describe a video with a Video-LLM"), ("ask", "ask a Video-LLM questions about a video")):
        p = sub.add_parser(name, help=helptext, description=(
            f"{helptext[0].upper() + helptext[1:]}. With --model: a trained Video-LLM ('vidfm train videollm'). With "
            "--analyzer: no training at all: shots, keyframe times, colours, motion and (optionally) a classifier, a "
            "video-text model and a grounding model describe the video in text, and a language model answers from it."))  # fmt: skip
        if name == "ask":
            p.add_argument("video")
            p.add_argument("questions", nargs="+", metavar="QUESTION")
        else:
            p.add_argument("videos", nargs="+", metavar="VIDEO", help="a video; or several files, folders and .txt lists of paths "
                           "(with --model and --out: one JSON line {video, caption} per video, as 'vidfm metrics captions' reads)")
            p.add_argument("--out", help="a collection: the JSONL file of captions")
            add_engine_options(p)
            p.add_argument("--stream", action="store_true", help="long videos: decode as it goes and print a caption each time a scene "
                           "closes (online SceneTilling), in bounded memory; with --json one JSON line per scene")
            p.add_argument("--summary", action="store_true", help="with --stream: then summarise the scene captions hierarchically with --lm")
            p.add_argument("--scene-fps", type=float, default=2.0, help="with --stream: frames per second scored for scene changes (default: 2)")
            p.add_argument("--alpha", type=float, default=0.5, help="with --stream: SceneTilling threshold, mean + alpha * std of the depths (default: 0.5)")
        _add_model_options(p)
        p.set_defaults(run=run_ask, describe=name == "caption")
    c = sub.add_parser("chat", help="talk with a Video-LLM about a video", description="A multi-turn conversation in the terminal about one video; answers stream as they are generated. An empty line or Ctrl-D ends it.")
    c.add_argument("video")
    _add_model_options(c)
    c.set_defaults(run=run_chat)

    g = sub.add_parser("segment", help="segment what a description names, on every frame (referring segmentation)", description=(
        "Ask a Video-LLM trained with '--stage segment' to segment EXPRESSION in VIDEO: it answers 'Sure, <the phrase> [SEG].' and the [SEG] "
        "token prompts SAM-2 on every frame (or says the video shows no such thing: all masks are then empty). Writes OUT/00000.png... "
        "(DAVIS-style palette PNGs, 1 = the object), OUT/overlay.mp4, OUT/overlay.gif and OUT/segment.json."))  # fmt: skip
    g.add_argument("video")
    g.add_argument("expression", help='what to segment, e.g. "the small red circle"')
    g.add_argument("--model", required=True, help="a Video-LLM trained with 'vidfm train videollm --stage segment' (run or model folder)")
    g.add_argument("--out", required=True, help="folder for the masks and overlays")
    g.add_argument("--json", action="store_true", help="print the summary as JSON")
    g.set_defaults(run=run_segment)

    m = sub.add_parser("metrics", help="score outputs against references (captions)", description="Caption metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D, as the COCO caption evaluation computes them.")
    msub = m.add_subparsers(dest="what", metavar="WHAT")
    mc = msub.add_parser("captions", help="BLEU-4, METEOR, ROUGE-L, CIDEr-D of predicted captions",
                         description='PRED.jsonl: {"video": ..., "caption": ...} per line; REFS.jsonl: {"video": ..., "captions": [...]} per line. SPICE is not supported offline (it downloads Stanford CoreNLP models).')  # fmt: skip
    mc.add_argument("predictions", metavar="PRED.jsonl")
    mc.add_argument("references", metavar="REFS.jsonl")
    mc.add_argument("--no-meteor", action="store_true", help="skip METEOR (it starts a Java process)")
    mc.add_argument("--json", action="store_true")
    mc.set_defaults(run=run_metrics_captions)
    m.set_defaults(run=lambda args: (m.print_help(), 2)[1])


def _add_model_options(p) -> None:
    p.add_argument("--model", help="a trained Video-LLM (run folder or model folder)")
    p.add_argument("--memory", action="store_true", help="long videos: read the whole video scene by scene through the model's memory "
                   "bridge (a 'vidfm train videollm --stage memory' run) instead of sampling frames from it")
    p.add_argument("--analyzer", action="store_true", help="training-free: analysers turn the video into text for a language model")
    p.add_argument("--lm", default="smollm2", help="--analyzer and --summary: the language model (smollm2, tiny, a folder or a .gguf file)")
    p.add_argument("--classifier", help="--analyzer: a classifier run whose labels go into the description")
    p.add_argument("--video-text", help="--analyzer: a video-text model for zero-shot labels (with --labels)")
    p.add_argument("--labels", help="--analyzer: comma-separated labels for --video-text")
    p.add_argument("--grounding", help="--analyzer: a grounding model for 'when' questions")
    p.add_argument("--max-new-tokens", type=int, help="longest answer in tokens")
    p.add_argument("--json", action="store_true")


def run_train_videollm(args) -> int:
    from vidfm.models import PRESETS
    from vidfm.models.videollm import VideoLLMConfig
    from vidfm.tasks.videollm import train_videollm

    lm_train = args.lm_train or ("full" if args.lm == "tiny" else "lora")
    encoder_train = args.encoder_train or ("full" if args.encoder in PRESETS else "frozen")
    config = VideoLLMConfig(encoder=args.encoder, feature_layer=args.feature_layer, image_encoder=args.image_encoder, num_frames=args.frames,
                            encoder_train=encoder_train,
                            sample_fps=args.sample_fps, image_size=args.size, tiles=args.tiles, pool=args.pool, pool_stride=args.pool_stride, pool_order=args.pool_order,
                            connector=args.connector, num_queries=args.queries, lm=args.lm, lm_train=lm_train, lora_rank=args.lora_rank,
                            rope_factor=args.rope_factor, memory_tokens=args.memory_tokens)  # fmt: skip
    if args.stage == "memory":
        from vidfm.tasks.longvideo import train_memory

        summary = train_memory(args.init, args.data, args.out, train_config_from(args), memory_tokens=args.memory_tokens or 32,
                               progress=progress, resume=not args.fresh)  # fmt: skip
    elif args.stage == "segment":
        from vidfm.tasks.segment import train_segmenter

        summary = train_segmenter(args.data, args.out, args.init, train_config_from(args), sam=args.sam, image_size=args.seg_size,
                                  frames=args.seg_frames, lora_rank=args.lora_rank, mix=args.seg_mix, progress=progress, resume=not args.fresh)  # fmt: skip
    else:
        summary = train_videollm(args.data, args.out, config=config, stage=args.stage, init=args.init, train_config=train_config_from(args),
                                 beta=args.beta, turns=args.turns, progress=progress, resume=not args.fresh)  # fmt: skip
    if summary_handled(summary, args):
        return 0
    p = summary["params"]
    print(f"{summary['stage']}: {summary['steps']} steps ({summary['epochs']} epochs) in {summary['seconds']:.1f} s on {summary['train_examples']} examples; "
          f"trainable {p['trainable']:,} of {p['total']:,} parameters ({p['percent']:.2f} %)")  # fmt: skip
    if summary.get("best_eval"):
        print("  best validation: " + ", ".join(f"{k} {v:.4g}" for k, v in summary["best_eval"].items()))
    print(f"model: {Path(args.out) / 'best'}   try: vidfm ask VIDEO 'what happens?' --model {args.out}")
    return 0


def _assistant(args):
    """A trained Video-LLM, or the training-free analyzer, ready to talk about args.video."""
    if args.analyzer == bool(args.model):
        raise ConfigError("give --model MODEL (a trained Video-LLM) or --analyzer (training-free), one of the two")
    if args.model:
        from vidfm.models.videollm import VideoLLM
        from vidfm.tasks.videollm import VideoAssistant

        model = VideoLLM.from_pretrained(args.model)
        if args.max_new_tokens:
            model.config.max_new_tokens = args.max_new_tokens
        if args.memory:
            from vidfm.tasks.longvideo import MemoryAssistant

            return MemoryAssistant(model, args.video)
        return VideoAssistant(model, args.video)
    from vidfm.tasks.analyzer import Analyzer

    analyzer = Analyzer(args.lm, classifier=args.classifier, video_text=args.video_text, labels=args.labels, grounding=args.grounding,
                        max_new_tokens=args.max_new_tokens or 64)  # fmt: skip
    return analyzer.assistant(args.video)


def run_ask(args) -> int:
    from vidfm.tasks.videollm import DESCRIBE

    if args.describe:
        if not one_video(args.videos, args.engine) or args.out:
            return run_batch_captions(args)
        args.video = args.videos[0]
    if getattr(args, "stream", False):
        return run_stream_captions(args)
    result = _assistant(args).ask([DESCRIBE] if args.describe else args.questions)
    if args.json:
        print_json(result)
        return 0
    if result.get("note"):
        print(f"({result['note']})", file=sys.stderr)
    for qa in result["answers"]:
        print(qa["answer"] if args.describe else f"Q: {qa['question']}\nA: {qa['answer']}")
    return 0


def run_batch_captions(args) -> int:
    from vidfm.scale.jobs import CaptionJob

    if not args.model or not args.out or args.analyzer or args.memory or args.stream:
        raise ConfigError("captions over a collection need a trained Video-LLM (--model) and --out FILE.jsonl (no --analyzer, --memory or --stream)")
    job = CaptionJob(args.model, max_new_tokens=args.max_new_tokens)
    return run_collection_job(job, collect_videos(args.videos), args.out, args)


def run_stream_captions(args) -> int:
    import json

    from vidfm.models.videollm import VideoLLM
    from vidfm.tasks.longvideo import stream_captions, summarise

    if not args.model:
        raise ConfigError("--stream captions with a trained Video-LLM: give --model")
    model = VideoLLM.from_pretrained(args.model)
    scenes = []
    for scene in stream_captions(model, args.video, scene_fps=args.scene_fps, alpha=args.alpha):
        scenes.append(scene)
        line = json.dumps(scene) if args.json else f"{scene['start']:8.1f} - {scene['end']:8.1f} s  {scene['caption']}"
        print(line, flush=True)
    if args.summary:
        result = summarise(scenes, args.lm)
        print(json.dumps(result) if args.json else f"summary: {result['summary']}", flush=True)
    return 0


def run_segment(args) -> int:
    from vidfm.models.videollm import VideoLLM
    from vidfm.tasks.segment import write_segmentation

    model = VideoLLM.from_pretrained(args.model)
    result = write_segmentation(model, args.video, args.expression, args.out, progress=progress)
    if args.json:
        print_json(result)
        return 0
    if result.get("note"):
        print(f"({result['note']})", file=sys.stderr)
    print(f"model: {result['answer']}")
    if not result["found"]:
        why = "the model says the video does not show it" if result["refused"] else "no frame shows it (SAM-2's object score is low on every frame)"
        print(f"nothing to segment: {why}; {result['frames']} empty masks in {result['masks']}")
    else:
        seen = f"from {result['first_seen']:.2f} s to {result['last_seen']:.2f} s" if result["frames_with_object"] else "on no frame"
        print(f"{args.expression}: on {result['frames_with_object']} of {result['frames']} frames ({seen}), "
              f"{100 * result['mean_area']:.1f} % of the frame on average")  # fmt: skip
    print(f"masks: {result['masks']}/00000.png ...   look at: {result['overlay']} and {result['gif']}")
    return 0


def run_chat(args) -> int:
    """Read questions from the terminal and stream each answer as it is generated; the
    conversation so far goes with every question."""
    from threading import Thread

    from transformers import TextIteratorStreamer

    assistant = _assistant(args)
    messages = []
    print(f"Chatting about {args.video} ({assistant.duration:.1f} s). An empty line ends the conversation.", file=sys.stderr)
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            break
        if not question:
            break
        messages.append({"role": "user", "content": question})
        streamer = TextIteratorStreamer(assistant.tokenizer, skip_prompt=True, skip_special_tokens=True)
        reply: list[str] = []
        worker = Thread(target=lambda: reply.append(assistant.reply(messages, streamer)))
        worker.start()
        sys.stdout.write("vidfm> ")
        for chunk in streamer:
            sys.stdout.write(chunk)
            sys.stdout.flush()
        worker.join()
        sys.stdout.write("\n")
        messages.append({"role": "assistant", "content": reply[0] if reply else ""})
    if args.json:
        print_json({"video": args.video, "messages": messages})
    return 0


def run_metrics_captions(args) -> int:
    from vidfm.data.datasets import read_jsonl
    from vidfm.metrics.captioning import caption_metrics

    preds, refs = {}, {}
    for n, r in enumerate(read_jsonl(Path(args.predictions)), 1):
        if "video" not in r or not isinstance(r.get("caption"), str):
            raise ConfigError(f"{args.predictions}:{n}: each line needs 'video' and 'caption'")
        preds[str(r["video"])] = r["caption"]
    for n, r in enumerate(read_jsonl(Path(args.references)), 1):
        if "video" not in r or not isinstance(r.get("captions"), list) or not r["captions"]:
            raise ConfigError(f"{args.references}:{n}: each line needs 'video' and a non-empty list 'captions'")
        refs[str(r["video"])] = r["captions"]
    metrics = caption_metrics(refs, preds, with_meteor=not args.no_meteor)
    if args.json:
        print_json(metrics)
        return 0
    print(f"{metrics['count']} captions")
    for k in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"):
        v = metrics[k]
        print(f"  {k:<8} {'unavailable (needs Java)' if v is None else f'{v:.4f}'}")
    print("  SPICE    unsupported offline")
    return 0
