"""``vidfm synth``: generate a synthetic world."""

from __future__ import annotations

from vidfm.cli.common import print_json, progress


def register(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="generate a synthetic video world with exact annotations",
        description=(
            "Render procedural videos (shapes x colours x sizes doing one of 12 actions) as MP4 files plus "
            "classification CSVs, MSR-VTT-style captions, closed-form QA, Charades-STA grounding, shot "
            "boundaries, train/val/test splits and a held-out compositional split. Deterministic from --seed."
        ),
    )
    p.add_argument("out", help="output folder (created; it must be new or empty unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing world in OUT (the new one is rendered aside, then swapped in)")
    p.add_argument("--videos", type=int, default=120, help="number of videos (default 120)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same world")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    p.add_argument("--fps", type=int, default=8, help="frames per second (default 8)")
    p.add_argument("--min-seconds", type=float, default=2.0, help="shortest single-shot video (default 2)")
    p.add_argument("--max-seconds", type=float, default=6.0, help="longest single-shot video (default 6)")
    p.add_argument("--max-objects", type=int, default=3, help="objects per clip, 1-3 (default 3)")
    p.add_argument("--multishot-fraction", type=float, default=0.1, help="videos made of 2-3 shots joined by cuts/fades")
    p.add_argument("--compositional-fraction", type=float, default=0.1, help="videos in the held-out compositional split")
    p.add_argument("--camera-motion", type=float, default=0.0, help="fraction of videos with camera motion (pan, tilt or zoom)")
    p.add_argument("--frame-code", action="store_true", help="burn each frame's index into its top rows (to verify seeking)")
    p.add_argument("--audio", action="store_true",
                   help="give every video a stereo sound track tied to its events (a bounce clicks at each contact, grow/shrink "
                        "rise/fall in pitch, sounds pan with the object); the events' exact times go into metadata.jsonl")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run)

    h = sub.add_parser(
        "haystack",
        help="build a long video from world clips, with a needle to find (NIAVH)",
        description=(
            "Play synthetic-world clips one after another for --minutes, and insert a needle at --depth (0 = start, "
            "1 = end): a clip (or one frame of it) with an object whose colour appears nowhere else. Writes OUT (MP4) "
            "and OUT with .json: the clips and their times, the needle, and questions about it with exact answers."
        ),
    )
    h.add_argument("world", help="a synthetic world ('vidfm synth')")
    h.add_argument("--out", required=True, help="output .mp4")
    h.add_argument("--minutes", type=float, default=5.0, help="length of the video (default 5)")
    h.add_argument("--depth", type=float, default=0.5, help="where the needle goes, 0..1 (default 0.5)")
    h.add_argument("--no-needle", action="store_true", help="only the haystack (e.g. to measure memory against length)")
    h.add_argument("--needle", choices=["clip", "frame"], default="clip", help="a whole clip or a single frame of it (default clip)")
    h.add_argument("--seed", type=int, default=0, help="random seed (clip order, needle choice)")
    h.add_argument("--json", action="store_true", help="print the sidecar as JSON")
    h.set_defaults(run=run_haystack)


def run_haystack(args) -> int:
    from vidfm.data.haystack import make_haystack

    info = make_haystack(args.world, args.out, args.minutes, None if args.no_needle else args.depth, args.needle, args.seed)
    if args.json:
        print_json(info)
        return 0
    print(f"{info['video']}: {info['duration'] / 60:.1f} min from {len(info['clips'])} clips")
    if "needle" in info:
        n = info["needle"]
        print(f"needle ({n['kind']}): the {n['colour']} {n['shape']} from {n['start']:.1f} s to {n['end']:.1f} s (depth {n['actual_depth']:.2f})")
        for q in info["questions"]:
            print(f"  Q: {q['question']}  A: {q['answer']}")
    return 0


def run(args) -> int:
    from vidfm.data.synthetic import WorldConfig, generate_world
    from vidfm.viz import plot_world_stats

    cfg = WorldConfig(
        videos=args.videos,
        seed=args.seed,
        size=args.size,
        fps=args.fps,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        max_objects=args.max_objects,
        multishot_fraction=args.multishot_fraction,
        compositional_fraction=args.compositional_fraction,
        camera_motion_fraction=args.camera_motion,
        frame_code=args.frame_code,
        audio=args.audio,
    )
    summary = generate_world(args.out, cfg, progress=lambda it: progress(it, "rendering", unit="video"), overwrite=args.overwrite)
    summary["stats_plot"] = str(plot_world_stats(args.out))
    if args.json:
        print_json(summary)
        return 0
    print(f"synthetic world in {summary['root']}: {summary['videos']} videos ({summary['multishot_videos']} multi-shot)")
    print(f"{'split':<14}{'videos':>7}{'classif.':>9}{'QA':>6}{'ground.':>8}")
    for split, n in summary["splits"].items():
        print(f"{split:<14}{n:>7}{summary['classification'][split]:>9}{summary['qa'][split]:>6}{summary['grounding'][split]:>8}")
    print("action labels: " + ", ".join(f"{k} {v}" for k, v in summary["labels"].items()))
    print("held-out colour-action pairs: " + ", ".join("+".join(p) for p in summary["held_out_pairs"]))
    print(f"look at: {summary['overview']} (frames) and {summary['stats_plot']} (statistics)")
    return 0
