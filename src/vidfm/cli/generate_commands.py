"""``vidfm train vae``, ``vidfm train denoiser`` and ``vidfm generate``."""

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
    v = tsub.add_parser("vae", help="train a causal video VAE (the latent space for generation)",
                        description=("Train a KL-regularised causal video VAE on clips of DATA (a synthetic world: each clip spans "
                                     "the main object's action; or any folder of videos). Validation PSNR/SSIM pick OUT/best."))  # fmt: skip
    v.add_argument("data", help="synthetic world, captions .jsonl or folder of videos")
    v.add_argument("--out", required=True, help="run folder")
    v.add_argument("--preset", default="vae-tiny", help="vae-tiny (x4 space, x2 time), vae-tiny-x2 (x2 space, x2 time: keeps small objects) or vae-base (x8 space, x4 time)")
    v.add_argument("--init", help="continue from a saved VAE folder")
    v.add_argument("--frames", type=int, default=9, help="frames per clip: 1 + a multiple of the temporal factor (default 9)")
    v.add_argument("--size", type=int, default=32, help="square frame size (default 32)")
    v.add_argument("--kl-weight", type=float, default=1e-4)
    v.add_argument("--latent-channels", type=int, help="latent channels (default: the preset's, 4 for vae-tiny)")
    add_train_options(v, lr=5e-4, epochs=20)
    v.add_argument("--json", action="store_true")
    v.set_defaults(run=run_train_vae)

    d = tsub.add_parser("denoiser", help="train a latent video denoiser (text/image/first+last frame to video)",
                        description=("Train a DiT, U-ViT or pseudo-3D UNet on the VAE's latents of captioned clips, with "
                                     "classifier-free guidance dropout and first/last-frame conditioning, under epsilon, "
                                     "v-prediction or flow matching. OUT/best is a pipeline for 'vidfm generate'. With --init "
                                     "PIPELINE --lora-rank R it fine-tunes that pipeline's denoiser with LoRA instead."))  # fmt: skip
    d.add_argument("data", help="synthetic world or captions .jsonl")
    d.add_argument("--out", required=True, help="run folder")
    d.add_argument("--vae", help="a 'vidfm train vae' run or VAE folder")
    d.add_argument("--denoiser", default="dit-tiny", help="dit-tiny, uvit-tiny, unet3d-tiny, dit-base, unet3d-base")
    d.add_argument("--prediction", default="flow", choices=["flow", "epsilon", "v_prediction"])
    d.add_argument("--attention", choices=["full", "causal", "sparse_causal", "divided"], help="temporal attention pattern")
    d.add_argument("--text-encoder", default="minilm", help="'minilm' (bundled) or a local Hugging Face text model folder")
    d.add_argument("--frames", type=int, default=9)
    d.add_argument("--size", type=int, help="frame size (default: the VAE's training size)")
    d.add_argument("--fps", type=int, default=8, help="frame rate written into generated videos")
    d.add_argument("--temporal-weight", type=float, default=0.0, help="weight of the temporal-consistency loss")
    d.add_argument("--snr-gamma", type=float, help="Min-SNR-gamma loss weighting, e.g. 5 (epsilon / v_prediction only)")
    d.add_argument("--patch-size", type=int, help="spatial patch size of a DiT / U-ViT (default: the preset's; 1 = finest tokens, ~4x the cost of 2)")
    d.add_argument("--text-dropout", type=float, default=0.1, help="share of captions dropped for classifier-free guidance")
    d.add_argument("--init", help="a pipeline to fine-tune (with --lora-rank)")
    d.add_argument("--lora-rank", type=int, help="LoRA rank on the attention projections (needs --init)")
    d.add_argument("--lora-alpha", type=float)
    d.add_argument("--audio", choices=["cross", "add"],
                   help="also condition on each clip's sound (DATA: videos with sound, e.g. 'vidfm synth --audio'): cross-attention "
                        "per latent frame, or added per token; with --init the text-only model gains audio layers that start at zero")
    add_train_options(d, lr=3e-4, epochs=100)
    d.add_argument("--json", action="store_true")
    d.set_defaults(run=run_train_denoiser)


def register(sub) -> None:
    g = sub.add_parser("generate", help="generate a video from text, a first frame, first and last frames, or a storyboard",
                       description=("Sample a video with a pipeline from 'vidfm train denoiser'. The same --seed gives the same video. "
                                    "--camera adds a camera motion, --frames makes a long video (--long-method), --storyboard "
                                    "makes one video of several shots joined by cuts."))  # fmt: skip
    g.add_argument("prompt", nargs="?", help="what the video shows, e.g. 'a small red circle moves left' (not with --storyboard)")
    g.add_argument("--model", required=True, help="pipeline folder (a 'vidfm train denoiser' run)")
    g.add_argument("--out", required=True, help="output .mp4 or .gif (a contact sheet .png is written beside it)")
    g.add_argument("--image", help="first frame (PNG, RGB, the model's size): image to video")
    g.add_argument("--last", help="last frame (with --image): first+last frame to video")
    g.add_argument("--continue", dest="extend", help="a video to continue from its last frame")
    g.add_argument("--windows", type=int, default=1, help="windows to generate, each continuing the last frame (long videos)")
    g.add_argument("--frames", type=int, help="total frames: more than the model's clip makes a long video by --long-method")
    g.add_argument("--long-method", default="keyframes", choices=["windows", "shared-noise", "keyframes"],
                   help="how a long video is made: windows continuing the last frame, the same with shared noise, or keyframes then in-betweens (default; least drift)")  # fmt: skip
    g.add_argument("--camera", choices=["static", "pan-left", "pan-right", "tilt-up", "tilt-down", "zoom-in", "zoom-out"],
                   help="camera motion, made by --camera-control")
    g.add_argument("--camera-control", choices=["warp", "caption"], default="warp",
                   help="warp (default): generate, then move a view window along the camera path (optionally repainted with "
                        "SDEdit at --camera-strength); caption: ask for it in the prompt (a model trained with 'vidfm synth --camera-motion' "
                        "captions may learn it)")
    g.add_argument("--camera-strength", type=float, default=0.0,
                   help="with --camera-control warp: how much of the moved clip is re-noised and repainted, in [0, 1); "
                        "default 0 (none: on the world model a repaint at 0.3 undid most of the motion)")  # fmt: skip
    g.add_argument("--storyboard", help="a JSON list of shots {prompt, windows?, camera?, seed?, same_object?}: one video with a cut between shots")
    g.add_argument("--audio", help="a sound file (WAV, MP3, or a video's track) to drive a model trained with --audio: the motion follows "
                                  "the sound (a bounce lands on each click); the clip's stretch of it is muxed into the output")
    g.add_argument("--audio-start", type=float, default=0.0, help="where in --audio the clip starts, in seconds (default 0)")
    g.add_argument("--sync-model", help="with --audio: a 'vidfm train sync' model that steers sampling so the motion lands on the "
                                       "sound (training-free guidance; works with text-only models too)")
    g.add_argument("--sync-guidance", type=float, default=1.0, help="with --sync-model: the guidance step (0 = none; default 1)")
    g.add_argument("--fps", type=float, help="frame rate of the written video (default: the model's)")
    g.add_argument("--size", type=int, help="frame side to generate at (default: the model's training size; other sizes are out of its training distribution)")
    g.add_argument("--steps", type=int, default=25)
    g.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale (1 = none)")
    g.add_argument("--scheduler", help="ddpm, ddim or dpm (epsilon/v models), euler (flow models); default: the model's")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--num-videos", type=int, default=1)
    g.add_argument("--json", action="store_true")
    g.set_defaults(run=run_generate)


def _report(args, summary: dict, what: str) -> int:
    if summary_handled(summary, args):
        return 0
    best = summary["best"]
    print(f"trained {summary['steps']} steps in {summary['seconds']:.1f} s; best validation {what} {best:.4f}" if best is not None else f"trained {summary['steps']} steps")
    if summary.get("best_eval"):
        print("  at the best evaluation: " + ", ".join(f"{k} {v:.4g}" for k, v in summary["best_eval"].items()))
    print(f"model: {Path(args.out) / 'best'}")
    return 0


def run_train_vae(args) -> int:
    from vidfm.tasks.generate import train_vae

    summary = train_vae(args.data, args.out, preset=args.preset, init=args.init, num_frames=args.frames, size=args.size,
                        kl_weight=args.kl_weight, latent_channels=args.latent_channels, config=train_config_from(args), resume=not args.fresh)  # fmt: skip
    return _report(args, summary, "PSNR")


def run_train_denoiser(args) -> int:
    from vidfm.tasks.generate import train_denoiser

    summary = train_denoiser(
        args.data, args.out, vae=args.vae, denoiser=args.denoiser, prediction=args.prediction, attention=args.attention,
        text_encoder=args.text_encoder, num_frames=args.frames, size=args.size, fps=args.fps, temporal_weight=args.temporal_weight,
        snr_gamma=args.snr_gamma, patch_size=args.patch_size, text_dropout=args.text_dropout, init=args.init, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
        audio=args.audio, config=train_config_from(args), progress=lambda it, desc, total: progress(it, desc, total), resume=not args.fresh,
    )  # fmt: skip
    return _report(args, summary, "loss")


def run_generate(args) -> int:
    from vidfm.errors import ConfigError
    from vidfm.io import VideoReader
    from vidfm.io.writer import save_contact_sheet, write_video
    from vidfm.pipelines import VideoGenerationPipeline
    from vidfm.pipelines.long_video import (
        long_video,
        read_storyboard,
        storyboard,
        with_camera,
    )
    from vidfm.pipelines.video_generation import load_image

    out = Path(args.out)
    if out.suffix.lower() not in (".mp4", ".gif", ".webm", ".mkv", ".mov"):
        raise ConfigError(f"{out}: choose an .mp4 or .gif output")
    if args.last and not args.image:
        raise ConfigError("--last needs --image (first+last frame to video)")
    if bool(args.storyboard) == bool(args.prompt):
        raise ConfigError("give a prompt or --storyboard board.json (one of the two)")
    if args.fps is not None and args.fps <= 0:
        raise ConfigError(f"--fps must be > 0, got {args.fps}")
    shots = read_storyboard(args.storyboard) if args.storyboard else None
    if args.audio and (shots is not None or args.extend or args.frames or args.windows > 1):
        raise ConfigError("--audio drives one clip: it does not combine with --storyboard, --continue, --frames or --windows")
    if args.audio and args.fps is not None:
        raise ConfigError("--audio fixes the frame rate to the model's (the motion follows the sound at that rate); drop --fps")
    sound = None
    if args.audio:
        from vidfm.data.audio import AUDIO_RATE
        from vidfm.io.audio import load_audio

        sound = load_audio(args.audio, rate=AUDIO_RATE)
        if not 0 <= args.audio_start < sound.duration:
            raise ConfigError(f"--audio-start {args.audio_start} is outside {args.audio} ({sound.duration:.2f} s)")
    import torch

    warp = args.camera not in (None, "static") and args.camera_control == "warp"
    if warp and (args.image or args.audio or args.extend or args.frames or args.windows > 1):
        raise ConfigError("--camera-control warp moves one text-to-video clip: use --camera-control caption with --image, --audio, "
                          "--continue, --frames or --windows")  # fmt: skip
    if args.sync_model and not args.audio:
        raise ConfigError("--sync-model steers the motion towards a sound: give --audio too")
    if warp or args.sync_model or (shots is not None and args.camera_control == "warp"):
        from vidfm.editing import VideoEditPipeline as VideoGenerationPipeline  # noqa: N814 (the same pipeline, plus SDEdit)
    pipe = VideoGenerationPipeline.from_pretrained(args.model)
    if args.size:
        pipe.vae.check_size(pipe.config.num_frames, args.size, args.size)
        pipe.register_to_config(height=args.size, width=args.size)
    h, w = pipe.config.height, pipe.config.width
    if args.frames is not None and args.frames < pipe.config.num_frames:
        raise ConfigError(f"--frames must be at least the model's clip length ({pipe.config.num_frames}), got {args.frames}")
    kwargs = dict(num_inference_steps=args.steps, guidance_scale=args.guidance, scheduler=args.scheduler)
    generator = torch.Generator().manual_seed(args.seed)
    prompt = with_camera(args.prompt, args.camera) if args.prompt and not warp else args.prompt
    camera = dict(camera_control=args.camera_control, camera_strength=args.camera_strength)
    extra: dict = {}
    if shots is not None:
        video, ranges = storyboard(pipe, shots, seed=args.seed, **camera, **kwargs)
        videos, extra = [video], {"shots": [list(r) for r in ranges]}
    elif args.extend:
        with VideoReader(args.extend, size=(h, w)) as r:
            frames = r.get_frames(list(range(len(r))))
        videos = [pipe.extend(frames, prompt, windows=args.windows, generator=generator, progress=True, **kwargs)]
    elif args.frames is not None and args.frames > pipe.config.num_frames:
        videos = [long_video(pipe, prompt, args.frames, method=args.long_method, seed=args.seed + k, **kwargs) for k in range(args.num_videos)]
    else:
        image = load_image(args.image, h, w) if args.image else None
        last = load_image(args.last, h, w) if args.last else None
        if args.sync_model:
            if image is not None:
                raise ConfigError("--sync-model generates from text and sound; it does not take --image")
            from vidfm.tasks.sync import load_sync_model
            from vidfm.tasks.sync_guidance import generate_in_sync

            clip_sound = sound.cut(args.audio_start, sound.duration)
            frames, misalignment = generate_in_sync(pipe, load_sync_model(args.sync_model), prompt, clip_sound, scale=args.sync_guidance,
                                                    num_videos=args.num_videos, num_inference_steps=args.steps, guidance_scale=args.guidance,
                                                    generator=generator)  # fmt: skip
            videos = list(frames)
            extra["sync_guidance"] = {"scale": args.sync_guidance, "misalignment": [round(m, 4) for m in misalignment]}
        else:
            videos = list(pipe(prompt, image=image, last_image=last, num_videos_per_prompt=args.num_videos, generator=generator, progress=True,
                               audio=sound, audio_start=args.audio_start, **kwargs).frames)  # fmt: skip
        if warp:
            from vidfm.pipelines.camera import generate_with_camera

            videos = [generate_with_camera(pipe, prompt, args.camera, args.camera_strength, args.steps, args.guidance, generator, video=v) for v in videos]
            extra["camera"] = {"camera": args.camera, "control": "warp", "strength": args.camera_strength}
        if args.windows > 1:
            videos = [pipe.extend(v, prompt, windows=args.windows - 1, generator=generator, **kwargs) for v in videos]
    fps = args.fps or pipe.config.fps
    title = (f"{prompt} [camera {args.camera}, warped]" if warp else prompt) or f"storyboard: {len(shots)} shots"
    written = []
    for k, video in enumerate(videos):
        path = out if len(videos) == 1 else out.with_name(f"{out.stem}_{k}{out.suffix}")
        track = sound.cut(args.audio_start, args.audio_start + len(video) / fps) if sound is not None else None
        write_video(path, video, fps=fps, audio=track)
        step = -(-len(video) // 24)  # a sheet a person can take in: at most 24 frames
        sheet = save_contact_sheet(path.with_suffix(".png"), video[::step], scale=max(1, 128 // w), title=title)
        written.append({"video": str(path), "contact_sheet": str(sheet), "frames": int(video.shape[0]), "fps": fps})
    if args.json:
        print_json({"prompt": prompt, "seed": args.seed, "steps": args.steps, "guidance": args.guidance, "outputs": written, **extra})
    else:
        for w_ in written:
            print(f"{w_['video']} ({w_['frames']} frames at {w_['fps']:g} fps), contact sheet {w_['contact_sheet']}")
        if "shots" in extra:
            print("shots (frames): " + ", ".join(f"{a}-{b}" for a, b in extra["shots"]))
    return 0
