"""``vidfm train sync``, ``vidfm sync`` and ``vidfm train av-classify``: audio with video."""

from __future__ import annotations

from vidfm.cli.common import (
    add_train_options,
    print_json,
    progress,
    summary_handled,
    train_config_from,
)


def register_train(tsub) -> None:
    s = tsub.add_parser("sync", help="train a SyncNet-style audio-visual sync model",
                        description=("Train embeddings of 5-frame video windows and the audio under them so the audio that belongs "
                                     "with the frames is nearest (DATA: a world rendered with 'vidfm synth --audio', or any videos with "
                                     "sound). Validation injects known offsets into held-out clips and counts those found within one "
                                     "frame; OUT/best is what 'vidfm sync --model' takes."))  # fmt: skip
    s.add_argument("data", help="synthetic world with sound, or a folder / list of videos with sound")
    s.add_argument("--out", required=True, help="run folder")
    s.add_argument("--size", type=int, default=32, help="frame size the video tower sees (default 32)")
    add_train_options(s, lr=1e-3, epochs=20, batch_size=32)
    s.add_argument("--json", action="store_true")
    s.set_defaults(run=run_train_sync)

    c = tsub.add_parser("av-classify", help="train an audio-visual action classifier (sound, frames, or both)",
                        description=("Classify each clip's action from its sound, its frames and both (late fusion, trained with "
                                     "modality dropout). Reports accuracy per modality, and of the fused head with the frames or "
                                     "the sound degraded."))  # fmt: skip
    c.add_argument("data", help="synthetic world with sound (or a CSV path,label / class folders of videos with sound)")
    c.add_argument("--out", required=True, help="run folder")
    c.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    c.add_argument("--size", type=int, default=32, help="frame size (default 32)")
    add_train_options(c, lr=1e-3, epochs=15, batch_size=32)
    c.add_argument("--json", action="store_true")
    c.set_defaults(run=run_train_av_classify)


def register(sub) -> None:
    p = sub.add_parser("sync", help="measure audio-visual sync: offset, Sync-C, Sync-D",
                       description=("Sweep the audio against the video by -N..N frames with a model from 'vidfm train sync' and "
                                    "report the offset (frames and seconds; positive: the sound is late), Sync-D (the smallest mean "
                                    "embedding distance) and Sync-C (median minus smallest: confidence), as SyncNet reports them."))  # fmt: skip
    p.add_argument("videos", nargs="+", help="video files (with sound, or give --audio)")
    p.add_argument("--model", required=True, help="a 'vidfm train sync' run or model folder")
    p.add_argument("--audio", help="a sound file (WAV, MP3, ...) to use instead of each video's own track")
    p.add_argument("--max-offset", type=int, default=15, help="sweep range in frames each way (default 15)")
    p.add_argument("--plot", help="write a PNG of the distance curve of the first video")
    p.add_argument("--json", action="store_true", help="machine-readable output (with the whole curve)")
    p.set_defaults(run=run_sync)


def run_train_sync(args) -> int:
    from vidfm.tasks.sync import train_sync

    summary = train_sync(args.data, args.out, size=args.size, config=train_config_from(args),
                         progress=lambda it, desc, total: progress(it, desc, total), resume=not args.fresh)  # fmt: skip
    if summary_handled(summary, args):
        return 0
    e = summary["best_eval"]
    print(f"{args.out}/best: injected offsets found within 1 frame {e['offset_acc']:.1%} (mean error {e['offset_error']:.2f} frames, "
          f"Sync-C {e['sync_c']:.3f}, Sync-D {e['sync_d']:.3f}) on {e['trials']} trials; {summary['steps']} steps in {summary['seconds']:.0f} s")  # fmt: skip
    return 0


def run_train_av_classify(args) -> int:
    from vidfm.tasks.av_classify import train_av_classifier

    summary = train_av_classifier(args.data, args.out, num_frames=args.frames, size=args.size, config=train_config_from(args),
                                  progress=lambda it, desc, total: progress(it, desc, total), resume=not args.fresh)  # fmt: skip
    if summary_handled(summary, args):
        return 0
    e = summary["best_eval"]
    print(f"{args.out}/best: validation accuracy  sound {e['acc_audio']:.1%}  frames {e['acc_video']:.1%}  both {e['accuracy']:.1%}  "
          f"both, frames degraded {e['acc_fused_video_degraded']:.1%} (frames alone {e['acc_video_degraded']:.1%})  "
          f"both, sound degraded {e['acc_fused_audio_degraded']:.1%} (sound alone {e['acc_audio_degraded']:.1%})")  # fmt: skip
    return 0


def run_sync(args) -> int:
    from vidfm.errors import ConfigError, VidfmError
    from vidfm.tasks.sync import load_sync_model, sync_video

    if args.max_offset < 1:
        raise ConfigError(f"--max-offset must be >= 1 frame, got {args.max_offset}")
    model = load_sync_model(args.model)  # loaded once; a bad folder fails before any video
    results, failed = [], 0
    for v in args.videos:
        try:
            results.append(sync_video(model, v, args.audio, args.max_offset))
        except VidfmError as e:
            failed += 1
            results.append({"video": str(v), "error": str(e)})
            if not args.json:
                print(f"error: {e}")
    if args.plot and "curve" in results[0]:
        from vidfm.viz import plot_sync_curve

        plot_sync_curve(results[0], args.plot)
    if args.json:
        print_json(results[0] if len(results) == 1 else results)
        return 1 if failed else 0
    for r in results:
        if "curve" in r:
            print(f"{r['video']}: offset {r['offset']:+d} frames ({r['offset_seconds']:+.3f} s; positive = sound late)  "
                  f"Sync-C {r['sync_c']:.3f}  Sync-D {r['sync_d']:.3f}")  # fmt: skip
    if args.plot and "curve" in results[0]:
        print(f"curve: {args.plot}")
    return 1 if failed else 0
