"""``vidfm probe`` and ``vidfm frames``: look inside real video files."""

from __future__ import annotations

from pathlib import Path

from vidfm.cli.common import for_each_video, print_json
from vidfm.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("probe", help="print a video's metadata", description="Frames, fps (average and real), duration, size, rotation, codec, bit rate and audio of each video.")
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--fast", action="store_true", help="trust the container header for the frame count instead of counting packets")
    p.add_argument("--json", action="store_true", help="print JSON (a list when several videos are given)")
    p.set_defaults(run=run_probe)

    f = sub.add_parser(
        "frames",
        help="show which frames a sampler picks (contact sheet or PNG files)",
        description="Sample frame indices from VIDEO with one of the samplers and write them as a contact sheet (--out x.png) or one PNG per frame (--out DIR/).",
    )
    f.add_argument("video", metavar="VIDEO")
    f.add_argument("--sampler", default="uniform", choices=["uniform", "random", "segments", "fps", "windows", "keyframes"])
    f.add_argument("--num", type=int, default=16, help="frames to take (uniform, random, keyframes), default 16")
    f.add_argument("--segments", type=int, default=8, help="segments for --sampler segments (default 8)")
    f.add_argument("--per-segment", type=int, default=1, help="frames per segment (default 1)")
    f.add_argument("--train", action="store_true", help="training-time (random) placement for segments")
    f.add_argument("--stride", type=int, default=1, help="frame stride for --sampler random")
    f.add_argument("--jitter", type=int, default=3, help="± jitter in frames for --sampler random (default 3)")
    f.add_argument("--target-fps", type=float, default=1.0, help="output rate for --sampler fps (default 1)")
    f.add_argument("--window", type=int, default=16, help="window length for --sampler windows")
    f.add_argument("--overlap", type=int, default=8, help="overlap between windows (default 8)")
    f.add_argument("--max-frames", type=int, default=64, help="cap on frames drawn (default 64)")
    f.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="resize frames while decoding")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", help="sheet.png (contact sheet) or a folder (one PNG per frame); omit to only list indices")
    f.add_argument("--json", action="store_true", help="print indices and timestamps as JSON")
    f.set_defaults(run=run_frames)


def run_probe(args) -> int:
    from vidfm.io.probe import probe

    if len(args.videos) == 1:  # one file: its error is the command's error
        results, failed = [(args.videos[0], probe(args.videos[0], count_frames=not args.fast).to_dict())], {}
    else:
        results, failed = for_each_video(args.videos, lambda v: probe(v, count_frames=not args.fast).to_dict())
    if args.json:
        listing = [info or {"path": v, "error": failed[v]} for v, info in results]
        print_json(listing[0] if len(listing) == 1 else listing)
        return 1 if failed else 0
    for info in (info for _, info in results if info):
        print(info["path"])
        rows = [
            ("frames", info["frames"]),
            ("fps", f"{info['fps']:.3f} (real {info['real_fps']:.3f}{', variable' if info['variable_frame_rate'] else ''})"),
            ("duration", f"{info['duration']:.3f} s"),
            ("size", f"{info['width']}x{info['height']}" + (f" (rotated {info['rotation']}°)" if info["rotation"] else "")),
            ("codec", f"{info['codec']} {info['pix_fmt']}"),
            ("bit rate", f"{info['bit_rate'] / 1000:.1f} kb/s"),
            ("audio", f"{info['audio_codec']} {info['audio_rate']} Hz, {info['audio_channels']} ch" if info["has_audio"] else "no"),
        ]
        for k, v in rows:
            print(f"  {k:<9} {v}")
    return 1 if failed else 0


def pick_indices(args, num_frames: int, fps: float, timestamps, keyframes) -> list[int]:
    from vidfm.io import samplers as S

    if args.sampler == "uniform":
        idx = S.uniform_indices(num_frames, args.num)
    elif args.sampler == "random":
        idx = S.random_clip_indices(num_frames, args.num, args.stride, args.jitter, rng=args.seed)
    elif args.sampler == "segments":
        idx = S.segment_indices(num_frames, args.segments, args.per_segment, train=args.train, rng=args.seed)
    elif args.sampler == "fps":
        idx = S.fps_indices(timestamps=timestamps, dst_fps=args.target_fps)
    elif args.sampler == "windows":
        import numpy as np

        idx = np.concatenate(S.window_indices(num_frames, args.window, overlap=args.overlap))
    else:
        idx = S.keyframe_sample(keyframes, args.num)
    return [int(i) for i in idx[: args.max_frames]]


def run_frames(args) -> int:
    from vidfm.io.reader import VideoReader
    from vidfm.io.writer import save_contact_sheet

    if args.max_frames < 1:
        raise ConfigError("--max-frames must be >= 1")
    with VideoReader(args.video, size=tuple(args.size) if args.size else None) as reader:
        ts = reader.timestamps
        idx = pick_indices(args, len(reader), reader.fps, ts, reader.keyframe_indices)
        times = [round(float(ts[i]), 3) for i in idx]
        frames = reader.get_frames(idx) if args.out else None
    written = None
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() in (".png", ".jpg", ".jpeg"):
            title = f"{Path(args.video).name}: {args.sampler}, {len(idx)} frames"
            scale = max(1, 96 // frames.shape[1])
            written = str(save_contact_sheet(out, frames, labels=[f"#{i} {t:.2f}s" for i, t in zip(idx, times)], title=title, scale=scale))
        else:
            from PIL import Image

            out.mkdir(parents=True, exist_ok=True)
            for k, (i, fr) in enumerate(zip(idx, frames)):
                Image.fromarray(fr).save(out / f"{k:04d}_frame{i:06d}.png")
            written = str(out)
    if args.json:
        print_json({"video": args.video, "sampler": args.sampler, "indices": idx, "times": times, "written": written})
    else:
        print(f"{args.sampler}: {len(idx)} frames: {idx}")
        if written:
            print(f"wrote {written}")
    return 0
