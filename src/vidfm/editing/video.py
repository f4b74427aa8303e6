"""Editing a video of any length: windows, time ranges, flow propagation and drag.

``edit_video`` walks the video in windows of the model's clip length that share one
frame (window k's first frame is held to window k-1's edited last frame, so the cut
between windows is invisible). Frames come in from an iterator and go out as soon as
their window is done: memory depends on the window, not on the video's length.

- ``frame_range``: only frames ``[start, stop)`` change; ``border`` frames on each side
  blend linearly from the source to the edit.
- ``flow``: every window is edited (``base`` method), then its in-between frames are
  replaced by its first and last edited frames carried along the *source's* optical flow
  (OpenCV Farneback), forward and backward, weighted by distance; pixels failing the
  forward-backward check keep the base edit (Rerender-A-Video / TokenFlow's idea: the
  source's motion decides where edited pixels go).
- ``drag``: a point track (DragNUWA's input). The dragged point's path in the source is
  followed with optical flow; the latents of a disc around it are moved, frame by frame,
  by (track - source path), the hole filled with the surrounding latents' mean, and the
  clip is re-denoised (SDEdit) with everything outside the old and new discs held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vidfm.editing.pipeline import (
    CLIP_METHODS,
    DEFAULT_STRENGTH,
    ClipEdit,
    VideoEditPipeline,
)
from vidfm.errors import ConfigError

METHODS = (*CLIP_METHODS, "flow", "drag")


# -- optical flow ---------------------------------------------------------------------------
def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Farneback flow from frame ``a`` to ``b`` (H, W, 2): pixel p of ``a`` sits at p + flow in ``b``."""
    import cv2

    ga, gb = (cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY) for x in (a, b))
    levels = max(1, int(np.log2(min(a.shape[:2]) / 8)))
    return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, levels, 9, 5, 5, 1.1, 0)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``out[p] = image[p + flow[p]]`` (bilinear, edges clamped)."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Forward-backward check (Sundaram et al.): True where following a->b then b->a
    comes back (pixels occluded or disoccluded in b fail)."""
    back = warp(flow_ba, flow_ab)
    err = np.sum((flow_ab + back) ** 2, -1)
    return err <= 0.01 * (np.sum(flow_ab**2, -1) + np.sum(back**2, -1)) + 0.5


def propagate(source: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Replace the in-between frames of ``edited`` (T, H, W, 3) by its first and last
    frames carried along the source's flow (forward from the first, backward from the
    last, blended by distance); failing pixels keep ``edited``."""
    t = len(source)
    if t < 3:
        return edited
    img = edited.astype(np.float32)
    # each neighbouring pair's flow both ways, once: back[k] maps frame k+1 to k, ahead[k] frame k to k+1
    back = [optical_flow(source[k + 1], source[k]) for k in range(t - 1)]
    ahead = [optical_flow(source[k], source[k + 1]) for k in range(t - 1)]
    fwd, bwd = [img[0]], [img[-1]]
    ok_f, ok_b = [np.ones(source.shape[1:3], bool)], [np.ones(source.shape[1:3], bool)]
    for k in range(1, t):  # frame k from frame k-1
        fwd.append(warp(fwd[-1], back[k - 1]))
        ok_f.append((warp(ok_f[-1].astype(np.float32), back[k - 1]) > 0.5) & consistent(back[k - 1], ahead[k - 1]))
    for k in range(t - 2, -1, -1):  # frame k from frame k+1
        bwd.append(warp(bwd[-1], ahead[k]))
        ok_b.append((warp(ok_b[-1].astype(np.float32), ahead[k]) > 0.5) & consistent(ahead[k], back[k]))
    bwd, ok_b = bwd[::-1], ok_b[::-1]
    out = img.copy()
    for k in range(1, t - 1):
        wf = ok_f[k] * (t - 1 - k) / (t - 1)
        wb = ok_b[k] * k / (t - 1)
        total = wf + wb
        mix = (wf[..., None] * fwd[k] + wb[..., None] * bwd[k]) / np.maximum(total, 1e-6)[..., None]
        out[k] = np.where(total[..., None] > 0, mix, img[k])
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# -- drag -----------------------------------------------------------------------------------
def parse_track(spec, num_frames: int | None, height: int, width: int, scale: tuple[float, float] = (1.0, 1.0)) -> dict[int, tuple[float, float]]:
    """A track ``[[frame, x, y], ...]`` (a JSON list, or ``"f:x,y;f:x,y"``) in the
    source's pixels -> {frame: (x, y)} at the model's size for every frame between the
    first and last given one (linear in between). Points outside the frame are refused."""
    import json

    if isinstance(spec, str):
        text = spec.strip()
        try:
            points = json.loads(text) if text.startswith("[") else [[float(v) for v in p.replace(":", ",").split(",")] for p in text.split(";") if p.strip()]
        except (ValueError, json.JSONDecodeError):
            raise ConfigError(f"--track {spec!r}: expected 'frame:x,y;frame:x,y' or a JSON list [[frame, x, y], ...]") from None
    else:
        points = spec
    if len(points) < 2 or any(len(p) != 3 for p in points):
        raise ConfigError("a drag track needs at least two points, each (frame, x, y)")
    points = sorted((int(f), float(x) * scale[0], float(y) * scale[1]) for f, x, y in points)
    for f, x, y in points:
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise ConfigError(f"drag track point ({x / scale[0]:g}, {y / scale[1]:g}) at frame {f} is outside the frame")
        if f < 0 or (num_frames is not None and f >= num_frames):
            raise ConfigError(f"drag track frame {f} is outside the video (0..{(num_frames or 1) - 1})")
    frames = [p[0] for p in points]
    if len(set(frames)) != len(frames):
        raise ConfigError("a drag track gives one point per frame")
    out = {}
    for (f0, x0, y0), (f1, x1, y1) in zip(points, points[1:]):
        for f in range(f0, f1 + 1):
            a = (f - f0) / (f1 - f0)
            out[f] = (x0 + a * (x1 - x0), y0 + a * (y1 - y0))
    return out


def _disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2) <= r * r


def drag_latents(pipe: VideoEditPipeline, x0: torch.Tensor, frames: list[int], source: dict, target: dict, radius: float) -> torch.Tensor:
    """Move a disc of latents around the source path to the target path, per latent frame
    (``frames``: the pixel frame each latent frame stands for)."""
    s = pipe.vae.spatial_factor
    _, c, t, h, w = x0.shape
    z = x0.clone()
    for j, f in enumerate(frames):
        if f not in source or f not in target:
            continue
        (sx, sy), (tx, ty) = source[f], target[f]
        dx, dy = (tx - sx) / s, (ty - sy) / s
        old = torch.from_numpy(_disc(h, w, (sx + 0.5) / s, (sy + 0.5) / s, radius / s)).to(z)
        new = torch.from_numpy(_disc(h, w, (tx + 0.5) / s, (ty + 0.5) / s, radius / s)).to(z)
        ring = torch.from_numpy(_disc(h, w, (sx + 0.5) / s, (sy + 0.5) / s, 2 * radius / s)).to(z) * (1 - old)
        frame = x0[0, :, j]
        fill = (frame * ring).sum((1, 2), keepdim=True) / ring.sum().clamp(min=1)
        theta = torch.tensor([[1.0, 0.0, -2 * dx / w], [0.0, 1.0, -2 * dy / h]], dtype=z.dtype)[None]
        grid = F.affine_grid(theta, (1, c, h, w), align_corners=False)
        moved = F.grid_sample(frame[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        z[0, :, j] = new * moved + (1 - new) * (old * fill + (1 - old) * frame)
    return z


def follow(source: np.ndarray, start: tuple[float, float], first: int = 0) -> dict[int, tuple[float, float]]:
    """The path of a point through ``source`` frames ``first``.. (optical flow, chained)."""
    path = {first: start}
    x, y = start
    for k in range(first, len(source) - 1):
        flow = optical_flow(source[k], source[k + 1])
        xi, yi = int(np.clip(round(x), 0, flow.shape[1] - 1)), int(np.clip(round(y), 0, flow.shape[0] - 1))
        x, y = x + float(flow[yi, xi, 0]), y + float(flow[yi, xi, 1])
        path[k + 1] = (x, y)
    return path


# -- the windowed driver --------------------------------------------------------------------
@dataclass
class EditReport:
    """What ``edit_video`` did: windows edited / passed through, inversion PSNRs, and the
    masks used (per frame, when kept)."""

    windows: int = 0
    edited_windows: int = 0
    inversion_psnr: list[float] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    keep_masks: bool = False


def range_weights(first: int, count: int, frame_range: tuple[int, int] | None, border: int) -> np.ndarray:
    """Per frame, 1 inside ``[start, stop)``, ramping to 0 over ``border`` frames outside."""
    idx = np.arange(first, first + count)
    if frame_range is None:
        return np.ones(count, np.float32)
    a, b = frame_range
    dist = np.maximum(a - idx, idx - (b - 1)).clip(min=0)
    return np.clip(1.0 - dist / (border + 1), 0.0, 1.0).astype(np.float32)


def edit_video(
    pipe: VideoEditPipeline,
    frames: Iterable[np.ndarray],
    prompt: str,
    source_prompt: str | None = None,
    *,
    method: str = "sdedit",
    base: str = "sdedit",
    frame_range: tuple[int, int] | None = None,
    border: int = 2,
    mask: np.ndarray | str | None = None,
    track: dict[int, tuple[float, float]] | None = None,
    drag_radius: float | None = None,
    seed: int = 0,
    report: EditReport | None = None,
    on_window: Callable[[int, int], None] | None = None,
    **clip_kwargs,
) -> Iterator[np.ndarray]:
    """Edited frames, one at a time, for ``frames`` ((H, W, 3) uint8 at the model's size,
    any number). ``mask``: (T, H, W) for the whole video, (H, W) for every frame, a
    derived mode (``"diffedit"``, ``"attention"``) or None."""
    if method not in METHODS:
        raise ConfigError(f"unknown edit method {method!r}; choose one of {', '.join(METHODS)}")
    if base not in CLIP_METHODS:
        raise ConfigError(f"the flow method's base edit must be one of {', '.join(CLIP_METHODS)}, got {base!r}")
    if method == "drag" and not track:
        raise ConfigError("the drag method needs a track (--track 'frame:x,y;frame:x,y')")
    h, w = pipe.config.height, pipe.config.width
    for f, (x, y) in (track or {}).items():
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            raise ConfigError(f"drag track point ({x:g}, {y:g}) at frame {f} is outside the {w}x{h} frame")
    if frame_range is not None and frame_range[0] >= frame_range[1]:
        raise ConfigError(f"the edited time range is empty (frames {frame_range[0]}..{frame_range[1]})")
    report = report if report is not None else EditReport()
    n = pipe.config.num_frames
    radius = drag_radius or max(2.0, h / 6)
    it = iter(frames)
    window = [f for _, f in zip(range(n), it)]
    if not window:
        raise ConfigError("the video has no frames")
    start, prev_last, prev_edited = 0, None, False
    drag_state: dict = {}  # the dragged point's source position at the end of the last window
    g = torch.Generator().manual_seed(seed)
    while True:
        real = len(window)
        for f in window:
            if f.shape != (h, w, 3) or f.dtype != np.uint8:
                raise ConfigError(f"frames for this model must be uint8 ({h}, {w}, 3), got {f.dtype} {f.shape}")
        clip = np.stack(window + [window[-1]] * (n - real))
        weights = range_weights(start, n, frame_range, border)
        weights[real:] = 0
        report.windows += 1
        if weights.max() == 0:
            out = clip
            prev_edited = False
        else:
            report.edited_windows += 1
            kw = dict(clip_kwargs, first_frame=prev_last if (start > 0 and prev_edited) else None, generator=g)
            clip_mask = _window_mask(mask, start, n, real)
            if method == "drag":
                result = _drag_window(pipe, clip, start, real, prompt, source_prompt, track, drag_state, radius, clip_mask, kw)
            else:
                result = pipe.edit_clip(clip, prompt, source_prompt, method=base if method == "flow" else method, mask=clip_mask, **kw)
                if method == "flow":
                    frames = np.concatenate([propagate(clip[:real], result.frames[:real]), result.frames[real:]])
                    if result.mask is not None and clip_kwargs.get("paste_back", True):  # propagation must not leak outside the mask either
                        m = result.mask[..., None]
                        frames = np.round(m * frames + (1 - m) * clip).astype(np.uint8)
                    result.frames = frames
            if result.inversion_psnr is not None:
                report.inversion_psnr.append(result.inversion_psnr)
            if report.keep_masks and result.mask is not None:
                report.masks.append(result.mask[: real] if start == 0 else result.mask[1:real])
            wt = weights[:, None, None, None]
            out = np.round(wt * result.frames + (1 - wt) * clip).astype(np.uint8)
            if start > 0 and prev_edited:
                out[0] = prev_last
            prev_edited = True
        yield from out[(0 if start == 0 else 1) : real]
        if on_window is not None:
            on_window(start, real)
        prev_last = out[real - 1]
        more = [f for _, f in zip(range(n - 1), it)]
        if not more:
            return
        window = [window[real - 1], *more]
        start += real - 1


def _window_mask(mask, start: int, n: int, real: int):
    if mask is None or isinstance(mask, str):
        return mask
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim == 2:
        return m
    piece = m[start : start + real]
    if len(piece) < real:
        raise ConfigError(f"the mask has {len(m)} frames; the video has more")
    return np.concatenate([piece, np.repeat(piece[-1:], n - real, 0)])


def _drag_window(pipe, clip, start, real, prompt, source_prompt, track, state, radius, clip_mask, kw) -> ClipEdit:
    """One window of a drag edit: follow the dragged point in the source, move the latents
    along (track - source path), re-denoise with the rest held."""
    n = len(clip)
    local_track = {f - start: xy for f, xy in track.items() if start <= f < start + real}
    first = min(track)
    if start <= first < start + real and "pos" not in state:
        path = follow(clip[:real], track[first], first - start)
    elif state.get("pos", (None,))[0] == start:
        path = follow(clip[:real], state["pos"][1], 0)
    else:
        return ClipEdit(clip.copy())
    state["pos"] = (start + real - 1, path[real - 1])
    r = pipe.vae.temporal_factor
    latent_frames = [0] + [j * r for j in range(1, pipe.vae.latent_shape(n, *clip.shape[1:3])[0])]
    x0 = pipe.encode_video(clip)
    moved = drag_latents(pipe, x0, latent_frames, path, local_track, radius)
    h, w = clip.shape[1:3]
    region = np.zeros((n, h, w), np.float32)
    for k in range(n):
        src = path.get(min(k, real - 1))
        dst = local_track.get(min(k, real - 1))
        if src is not None:
            region[k] = _disc(h, w, src[0] + 0.5, src[1] + 0.5, radius + 1)
        if dst is not None:
            region[k] = np.maximum(region[k], _disc(h, w, dst[0] + 0.5, dst[1] + 0.5, radius + 1))
    if clip_mask is not None and not isinstance(clip_mask, str):
        region = np.maximum(region, np.broadcast_to(np.asarray(clip_mask, np.float32), region.shape))
    kw = dict(kw)
    kw.setdefault("strength", DEFAULT_STRENGTH["drag"])
    return pipe.edit_clip(clip, prompt, source_prompt, method="sdedit", mask=region, start_latents=moved, **kw)
