"""``vidfm edit``: edit a video with a trained generation pipeline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vidfm.cli.common import print_json, progress

MASK_HELP = ("where the edit may change the video: a PNG (every frame), a mask video or a folder of PNGs (one per frame; white = edit), "
             "'diffedit' (where the model's predictions under the two prompts differ) or 'attention' (the cross-attention of the edited "
             "words); default: the whole frame")  # fmt: skip


def register(sub) -> None:
    e = sub.add_parser(
        "edit",
        help="edit a video: SDEdit, inversion, prompt-to-prompt, flow propagation, drag",
        description=("Edit VIDEO toward PROMPT with a 'vidfm train denoiser' pipeline. Frames are resized to the model's size and "
                     "edited in windows of its clip length that share a frame, so any length works and memory does not grow with it. "
                     "Writes OUT, OUT_compare.mp4 (source | edit side by side) and OUT.png (a contact sheet)."),  # fmt: skip
        epilog="example: vidfm edit clip.mp4 'a blue square moves left' --source-prompt 'a red square moves left' --model runs/gen --method p2p --out edited.mp4",
    )
    e.add_argument("video", help="the source video")
    e.add_argument("prompt", help="what the edited video should show")
    e.add_argument("--source-prompt", help="what the source video shows (needed by inversion, p2p, derived masks)")
    e.add_argument("--model", required=True, help="pipeline folder (a 'vidfm train denoiser' run)")
    e.add_argument("--out", required=True, help="edited video (.mp4 / .gif)")
    e.add_argument("--method", default="sdedit", choices=["sdedit", "inversion", "p2p", "flow", "drag"],
                   help="sdedit: noise and re-denoise; inversion: invert the source, denoise under the new prompt; p2p: inversion + "
                        "attention injection; flow: edit, then carry the edited key frames along the source's optical flow; drag: move "
                        "what is under --track along it")  # fmt: skip
    e.add_argument("--strength", type=float, help="share of the noise schedule redone, in (0, 1] (default: sdedit/flow 0.6, inversion/p2p 1, drag 0.5)")
    e.add_argument("--steps", type=int, default=25, help="denoising steps of the whole schedule")
    e.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale (7.5 edited more validation pairs than 4)")
    e.add_argument("--mask", help=MASK_HELP)
    e.add_argument("--mask-threshold", type=float, default=0.7, help="derived masks: share of the frame's range above which a pixel is edited (0.7: best DiffEdit IoU on the world's validation edits)")
    e.add_argument("--no-paste-back", action="store_true", help="keep the decoded frames outside the mask instead of the source's pixels")
    e.add_argument("--from", dest="start", type=float, help="edit only from this time (seconds)")
    e.add_argument("--to", dest="stop", type=float, help="edit only up to this time (seconds)")
    e.add_argument("--border", type=int, default=2, help="frames over which a time-range edit fades in and out")
    e.add_argument("--inverted-noise", action="store_true", help="sdedit: start from the source's inversion instead of fresh noise")
    e.add_argument("--null-text", action="store_true", help="inversion/p2p: optimise the unconditional embedding per step (slower, closer reconstruction)")
    e.add_argument("--cross", default="refine", choices=["replace", "refine", "none"], help="p2p cross-attention injection")
    e.add_argument("--self", dest="self_mode", default="blend", choices=["replace", "blend", "pnp", "none"],
                   help="p2p self-attention: replace (P2P), blend (FateZero: inside the mask keep the edit's), pnp (inject queries/keys)")
    e.add_argument("--cross-steps", type=float, default=0.8, help="share of the steps with cross-attention injection")
    e.add_argument("--self-steps", type=float, default=0.4, help="share of the steps with self-attention injection")
    e.add_argument("--reweight", action="append", default=[], metavar="WORD=FACTOR", help="p2p: scale the attention on a word of PROMPT (repeatable)")
    e.add_argument("--emphasis", type=float, default=2.0, help="p2p: scale the attention on every word PROMPT adds to --source-prompt (1 = off)")
    e.add_argument("--base", default="sdedit", choices=["sdedit", "inversion", "p2p"], help="flow: the edit whose key frames are propagated")
    e.add_argument("--track", help="drag: the point path in source pixels, 'frame:x,y;frame:x,y' or a JSON list [[frame, x, y], ...]")
    e.add_argument("--drag-radius", type=float, help="drag: radius in model pixels of the region moved (default: a sixth of the frame)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=run_edit)


def read_mask(path: str, frames: int, height: int, width: int, source_size: tuple[int, int] | None = None) -> np.ndarray:
    """A PNG, a mask video or a folder of PNGs -> (H, W) or (T, H, W) float 0/1 at the
    model's size. The mask must have the source video's size (or the model's)."""
    from PIL import Image, UnidentifiedImageError

    from vidfm.errors import ConfigError
    from vidfm.io import VideoReader
    from vidfm.io.probe import probe

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such mask file or folder")

    def png(f: Path) -> np.ndarray:
        try:
            img = Image.open(f).convert("L")
        except (UnidentifiedImageError, OSError) as e:
            raise ConfigError(f"{f}: not a readable mask image ({e})") from None
        check_size(f, img.size)
        return np.asarray(img.resize((width, height), Image.NEAREST)) > 127

    def check_size(f, size) -> None:
        allowed = {(width, height)} | ({tuple(source_size)} if source_size else set())
        if tuple(size) not in allowed:
            want = " or ".join(f"{w}x{h}" for w, h in sorted(allowed))
            raise ConfigError(f"{f}: the mask is {size[0]}x{size[1]}, the video {want}")

    if p.is_dir():
        files = sorted(p.glob("*.png"))
        if not files:
            raise ConfigError(f"{p}: no PNG masks in this folder")
        m = np.stack([png(f) for f in files])
    elif p.suffix.lower() == ".png":
        return png(p).astype(np.float32)
    else:
        info = probe(p, count_frames=False)
        check_size(p, (info.width, info.height))
        with VideoReader(p, size=(height, width)) as r:
            m = np.stack(list(r.iter_frames())).max(-1) > 127
    if len(m) != frames:
        raise ConfigError(f"{p}: the mask has {len(m)} frames, the video {frames}; give one mask per frame or a single PNG")
    return m.astype(np.float32)


def run_edit(args) -> int:
    from vidfm.editing import AttentionSettings, VideoEditPipeline
    from vidfm.editing.video import EditReport, edit_video, parse_track
    from vidfm.errors import ConfigError
    from vidfm.io import VideoReader
    from vidfm.io.probe import probe
    from vidfm.io.writer import save_contact_sheet, write_video

    out = Path(args.out)
    if out.suffix.lower() not in (".mp4", ".gif", ".webm", ".mkv", ".mov"):
        raise ConfigError(f"{out}: choose an .mp4 or .gif output")
    if not args.prompt.strip():
        raise ConfigError("the prompt is empty; describe the edited video, e.g. 'a blue square moves left'")
    if args.strength is not None and not 0.0 < args.strength <= 1.0:
        raise ConfigError(f"--strength must be in (0, 1], got {args.strength}")
    if args.steps <= 0:
        raise ConfigError(f"--steps must be > 0, got {args.steps}")
    reweight = {}
    for item in args.reweight:
        word, _, factor = item.partition("=")
        try:
            reweight[word.strip()] = float(factor)
        except ValueError:
            raise ConfigError(f"--reweight {item!r}: expected WORD=FACTOR, e.g. blue=2") from None
    pipe = VideoEditPipeline.from_pretrained(args.model)
    cfg = pipe.config
    h, w, n = cfg.height, cfg.width, cfg.num_frames
    notes = []
    for prompt in (args.prompt, args.source_prompt):
        if prompt and len(pipe.text_encoder.tokenizer(prompt)["input_ids"]) > cfg.max_text_length:
            notes.append(f"the prompt {prompt[:40]!r}... is longer than the text tower's {cfg.max_text_length} tokens; its end is ignored")
    started = time.perf_counter()
    info = probe(args.video)
    total, fps, src_w, src_h = info.frames, info.fps or cfg.fps, info.width, info.height
    if (src_w, src_h) != (w, h):
        notes.append(f"frames resized from {src_w}x{src_h} to the model's {w}x{h}")
    if total > n:
        notes.append(f"{total} frames: edited in windows of the model's {n} frames that share one frame")
    frame_range = None
    if args.start is not None or args.stop is not None:
        a = 0 if args.start is None else int(round(args.start * fps))
        b = total if args.stop is None else int(round(args.stop * fps)) + 1
        a, b = max(0, a), min(total, b)
        if a >= b:
            raise ConfigError(f"--from {args.start} --to {args.stop}: no frames of this {total / fps:.2f} s video in that range")
        frame_range = (a, b)
    mask = args.mask
    if mask and mask not in ("diffedit", "attention"):
        mask = read_mask(mask, total, h, w, (src_w, src_h))
    track = parse_track(args.track, total, h, w, scale=(w / src_w, h / src_h)) if args.track else None
    attention = AttentionSettings(cross=args.cross, self=args.self_mode, cross_steps=args.cross_steps, self_steps=args.self_steps, reweight=reweight,
                                  emphasis=args.emphasis)
    report = EditReport()
    windows = max(1, -(-(total - 1) // (n - 1)))
    bar = progress(range(windows), "editing", windows, unit="window")
    sheet_every = max(1, -(-total // 12))
    sheet_src, sheet_out = [], []

    def source_frames():
        with VideoReader(args.video, size=(h, w)) as r:
            for k, f in enumerate(r.iter_frames()):
                if k % sheet_every == 0:
                    sheet_src.append(f)
                yield f

    def edited():
        for k, f in enumerate(edit_video(pipe, source_frames(), args.prompt, args.source_prompt, method=args.method, base=args.base,
                                         frame_range=frame_range, border=args.border, mask=mask, track=track, drag_radius=args.drag_radius,
                                         seed=args.seed, report=report, on_window=lambda *_: bar.update(1), strength=args.strength,
                                         num_inference_steps=args.steps, guidance_scale=args.guidance, inverted_noise=args.inverted_noise,
                                         null_text=args.null_text, attention=attention, mask_threshold=args.mask_threshold,
                                         paste_back=not args.no_paste_back)):  # fmt: skip
            if k % sheet_every == 0:
                sheet_out.append(f)
            yield f

    write_video(out, edited(), fps=fps)
    bar.close()
    compare = out.with_name(f"{out.stem}_compare.mp4")
    with VideoReader(args.video, size=(h, w)) as a, VideoReader(out) as b:
        write_video(compare, (np.concatenate([x, np.full((h, 2, 3), 255, np.uint8), y], 1) for x, y in zip(a.iter_frames(), b.iter_frames())), fps=fps)
    k = min(len(sheet_src), len(sheet_out))
    sheet = save_contact_sheet(out.with_suffix(".png"), np.concatenate([sheet_src[:k], sheet_out[:k]]), columns=k, scale=max(1, 96 // w),
                               title=f"{args.method}: '{args.prompt}'", row_labels=["source", "edited"])  # fmt: skip
    result = {"video": str(out), "compare": str(compare), "contact_sheet": str(sheet), "frames": total, "fps": fps, "method": args.method,
              "windows": report.windows, "edited_windows": report.edited_windows, "frame_range": list(frame_range) if frame_range else None,
              "inversion_psnr": float(np.mean(report.inversion_psnr)) if report.inversion_psnr else None,
              "seconds": round(time.perf_counter() - started, 2), "notes": notes}  # fmt: skip
    if args.json:
        print_json(result)
    else:
        for note in notes:
            print(f"note: {note}")
        extra = f"; inversion reconstruction {result['inversion_psnr']:.1f} dB" if result["inversion_psnr"] is not None else ""
        print(f"{out} ({total} frames, {report.edited_windows}/{report.windows} windows edited, {result['seconds']:.1f} s{extra})")
        print(f"side by side: {compare}; contact sheet: {sheet}")
    return 0
