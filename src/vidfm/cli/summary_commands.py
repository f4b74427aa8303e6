"""``vidfm highlights`` and ``vidfm summarize``."""

from __future__ import annotations

from pathlib import Path

from vidfm.cli.common import print_json
from vidfm.errors import ConfigError


def register(sub) -> None:
    h = sub.add_parser("highlights", help="score every moment of a video for how much it matters", description=(
        "Cut VIDEO into moments of --clip seconds and score each: by motion (no model), by similarity to --query with a video-text "
        "model (--method query --model VT), or by a trained grounding model's belief that the moment is the one --query describes "
        "(--method grounding --model G). Prints the top moments; --plot draws the saliency over time with thumbnails."))  # fmt: skip
    h.add_argument("video")
    h.add_argument("--query", help="what to look for, e.g. 'the red circle bounces' (default method then: query)")
    h.add_argument("--method", choices=["motion", "query", "grounding"], help="default: motion, or query when --query is given")
    h.add_argument("--model", help="a video-text model (query) or a grounding model (grounding)")
    h.add_argument("--clip", type=float, default=2.0, help="moment length in seconds (QVHighlights uses 2)")
    h.add_argument("--top", type=int, default=5, help="how many moments to list")
    h.add_argument("--plot", help="write the saliency plot here (PNG)")
    h.add_argument("--json", action="store_true", help="every moment and its score as JSON")
    h.set_defaults(run=run_highlights)

    s = sub.add_parser("summarize", help="a short summary video under a length budget", description=(
        "Pick short segments of VIDEO that cover its shots, the most eventful moments first and without repeating themselves, "
        "within --budget of its length; write them as one MP4 (--out) and a contact sheet (--sheet, default OUT.png)."))  # fmt: skip
    s.add_argument("video")
    s.add_argument("--budget", type=float, default=0.15, help="the summary's share of the video's length")
    s.add_argument("--out", required=True, help="summary MP4")
    s.add_argument("--segment", type=float, default=0.5, help="length of each candidate segment in seconds")
    s.add_argument("--shots", default="histogram", choices=["histogram", "student", "transnetv2", "content", "adaptive"], help="shot detector for the parts to cover")
    s.add_argument("--model", help="a vidfm model folder whose embeddings judge redundancy (default: colour histograms)")
    s.add_argument("--sheet", help="contact sheet PNG (default: OUT with .png)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(run=run_summarize)


def run_highlights(args) -> int:
    from vidfm.tasks.highlights import highlights

    method = args.method or ("query" if args.query else "motion")
    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    scorer = None  # without --model, highlights() says which model the method needs
    if method != "motion" and args.model:
        if method == "query":
            from vidfm.retrieval.embedder import Embedder

            scorer = Embedder(args.model)
        else:
            from vidfm.tasks.ground import Grounder

            scorer = Grounder(args.model)
    result = highlights(args.video, method, query=args.query, scorer=scorer, clip=args.clip, top=args.top)
    if args.plot:
        from vidfm.viz import plot_highlights

        result["plot"] = str(plot_highlights(result, args.plot))
    if args.json:
        print_json(result)
        return 0
    print(f"{args.video}: {len(result['moments'])} moments of {args.clip:g} s by {method}" + (f" for '{args.query}'" if args.query else ""))
    for k, m in enumerate(result["top"], 1):
        print(f"  #{k}  {m['start']:8.2f}-{m['end']:.2f} s  score {m['score']:.4f}")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def run_summarize(args) -> int:
    from vidfm.tasks.summarize import summarize, write_summary

    if args.segment <= 0:
        raise ConfigError(f"--segment must be positive, got {args.segment}")
    embedder = None
    if args.model:
        from vidfm.retrieval.embedder import Embedder

        embedder = Embedder(args.model)
    summary = summarize(args.video, args.budget, args.segment, embedder=embedder, shots=args.shots)
    summary.update(write_summary(summary, args.out, args.sheet or Path(args.out).with_suffix(".png")))
    if args.json:
        print_json(summary)
        return 0
    print(f"{args.video}: {len(summary['segments'])} segments, {summary['seconds']:.1f} s of {summary['duration']:.1f} s "
          f"({summary['seconds'] / summary['duration']:.0%}), covering {summary['shots']} shots")  # fmt: skip
    for sg in summary["segments"]:
        print(f"  {sg['start']:8.2f}-{sg['end']:.2f} s")
    print(f"summary: {summary['video']}   contact sheet: {summary['sheet']}")
    return 0
