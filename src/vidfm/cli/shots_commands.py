"""``vidfm shots`` and ``vidfm split``."""

from __future__ import annotations

from pathlib import Path

from vidfm.cli.common import (
    add_engine_options,
    collect_videos,
    one_video,
    print_json,
    progress,
    run_collection_job,
)
from vidfm.errors import ConfigError


def _add_detector_options(p) -> None:
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="a video; or several files, folders and .txt lists of paths (then --out is needed)")
    p.add_argument("--method", default="student", choices=["student", "transnetv2", "histogram", "content", "adaptive"],
                   help="student (default: a small network distilled from TransNetV2, tens of times faster), transnetv2 (the "
                        "teacher, real weights), histogram (fast classical), content/adaptive (PySceneDetect)")  # fmt: skip
    p.add_argument("--threshold", type=float, default=0.5, help="student/transnetv2: transition probability threshold (default 0.5)")
    p.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime"], help="student: run the network in PyTorch or ONNX Runtime")


def register(sub) -> None:
    p = sub.add_parser("shots", help="detect shot boundaries (cuts and gradual transitions)",
                       description="Detect shots and the transitions between them. Prints each shot's frames and seconds; --timeline "
                                   "writes a PNG with thumbnails. Over a collection (several videos, a folder, a list, or --engine ray) "
                                   "it writes one JSON line per video to --out.")  # fmt: skip
    _add_detector_options(p)
    p.add_argument("--timeline", help="write a timeline PNG here (one video)")
    p.add_argument("--out", help="a collection: JSONL file with each video's shots")
    p.add_argument("--json", action="store_true")
    add_engine_options(p)
    p.set_defaults(run=run_shots)

    s = sub.add_parser("split", help="write one video file per shot", description="Detect shots, then write OUT/<name>_shot_NNN.mp4 for each; "
                       "over a collection also OUT/shots.jsonl (each video's shots and files).")  # fmt: skip
    _add_detector_options(s)
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--json", action="store_true")
    add_engine_options(s)
    s.set_defaults(run=run_split)
    register_scenes(sub)


def _runtime(args) -> dict:
    if args.runtime != "torch" and args.method != "student":
        raise ConfigError(f"--runtime {args.runtime} is for the student detector, not {args.method}")
    return {"runtime": args.runtime} if args.method == "student" else {}


def _collection(args) -> list | None:
    """The videos when the command runs over a collection (several, a folder, a list file,
    or --engine ray); None for the one-video form."""
    if one_video(args.videos, args.engine):
        args.video = args.videos[0]
        return None
    return collect_videos(args.videos)


def _run_collection(args, videos, out, split_dir=None) -> int:
    from vidfm.scale.jobs import ShotsJob, unique_stems

    _runtime(args)
    job = ShotsJob(args.method, args.threshold, split_dir=split_dir, runtime=args.runtime, stems=unique_stems(videos) if split_dir else None)
    return run_collection_job(job, videos, out, args)


def run_shots(args) -> int:
    from vidfm.shots import detect_shots
    from vidfm.viz import plot_shot_timeline

    videos = _collection(args)
    if videos is not None:
        if not args.out or args.timeline:
            raise ConfigError("over several videos give --out FILE.jsonl (and no --timeline, which is for one video)")
        return _run_collection(args, videos, args.out)
    if args.out:
        raise ConfigError("--out is for a collection; for one video use --json or --timeline")
    shots = detect_shots(args.video, args.method, args.threshold, progress=progress, **_runtime(args))
    result = shots.as_dict()
    if args.timeline:
        result["timeline_png"] = str(plot_shot_timeline(shots, args.timeline))
    if args.json:
        print_json(result)
        return 0
    cuts = sum(t["kind"] == "cut" for t in result["transitions"])
    print(f"{args.video}: {len(result['shots'])} shots, {cuts} cuts, {len(result['transitions']) - cuts} gradual transitions ({args.method})")
    for k, sh in enumerate(result["shots"], 1):
        print(f"  shot {k:>3}  frames {sh['start_frame']:>6}-{sh['end_frame']:<6}  {sh['start']:8.2f}-{sh['end']:.2f} s")
    if args.timeline:
        print(f"timeline: {args.timeline}")
    return 0


def run_split(args) -> int:
    from tqdm.auto import tqdm

    from vidfm.shots import detect_shots, split_shots

    videos = _collection(args)
    if videos is not None:
        return _run_collection(args, videos, Path(args.out) / "shots.jsonl", split_dir=args.out)
    shots = detect_shots(args.video, args.method, args.threshold, progress=progress, **_runtime(args))
    paths = split_shots(shots, args.out, progress=lambda total: tqdm(total=total, desc="splitting", unit="frame", disable=None))
    if args.json:
        print_json({**shots.as_dict(), "files": [str(p) for p in paths]})
        return 0
    print(f"{len(paths)} shots written to {Path(args.out)}")
    return 0


def register_scenes(sub) -> None:
    for name, helptext in (("scenes", "semantic scenes (SceneTilling over frame features)"), ("keyframes", "keyframes: one per scene, or the k most representative")):
        p = sub.add_parser(name, help=helptext, description=(
            f"{helptext[0].upper() + helptext[1:]}. Frames are sampled at --fps; features are colour histograms or, with "
            "--model, a vidfm model's embeddings. Boundaries: depth > mean + alpha*std (at most 15), or the k-1 deepest "
            "for --k scenes."))  # fmt: skip
        p.add_argument("video")
        p.add_argument("--k", type=int, help="exactly this many scenes (the k-1 deepest boundaries)")
        p.add_argument("--alpha", type=float, default=0.5, help="threshold: mean + alpha*std of the depth scores")
        p.add_argument("--fps", type=float, default=2.0, help="frames per second to sample (default 2)")
        p.add_argument("--model", help="a vidfm model folder for semantic features (default: colour histograms)")
        p.add_argument("--streaming", action="store_true", help="left-side depth only (decides without seeing the future)")
        p.add_argument("--sheet", help="write a contact sheet of the keyframes here" + (" (default: VIDEO_keyframes.png)" if name == "keyframes" else ""))
        p.add_argument("--json", action="store_true")
        p.set_defaults(run=run_scenes, keyframes_only=name == "keyframes")


def run_scenes(args) -> int:
    from vidfm.errors import ConfigError
    from vidfm.io.reader import VideoReader
    from vidfm.io.writer import save_contact_sheet
    from vidfm.shots.scenes import detect_scenes

    if args.k is not None and args.k < 1:
        raise ConfigError(f"--k must be >= 1, got {args.k}")
    embedder = None
    if args.model:
        from vidfm.retrieval.embedder import Embedder

        embedder = Embedder(args.model)
    scenes = detect_scenes(args.video, k=None if args.k is None else args.k - 1, alpha=args.alpha, fps=args.fps, embedder=embedder, streaming=args.streaming)
    result = scenes.as_dict()
    sheet = args.sheet or (str(Path(args.video).with_suffix("")) + "_keyframes.png" if args.keyframes_only else None)
    if sheet:
        with VideoReader(args.video) as r:
            frames = r.get_frames([s["keyframe_frame"] for s in result["scenes"]])
        save_contact_sheet(sheet, frames, labels=[f"{s['keyframe_time']:.1f}s" for s in result["scenes"]])
        result["sheet"] = sheet
    if args.json:
        print_json(result)
        return 0
    for n, s in enumerate(result["scenes"], 1):
        print(f"  {'keyframe' if args.keyframes_only else 'scene'} {n:>3}  {s['start']:8.2f}-{s['end']:.2f} s  keyframe at {s['keyframe_time']:.2f} s (frame {s['keyframe_frame']})")
    if sheet:
        print(f"contact sheet: {sheet}")
    return 0
