"""The synthetic world: procedural videos with exact ground truth.

Every later capability (classification, retrieval, grounding, shot detection, generation)
trains and is measured on it, so it is small enough for a CPU (64x64, 8 fps, 2-6 s by
default) yet has real structure: 1-3 objects of 4 shapes x 6 colours x 3 sizes, the main
object performing one of 12 actions over a time interval, solid/gradient/textured
backgrounds, optional camera pan/tilt/zoom, and optional multi-shot videos joined by cuts or
fades. Video ``i`` depends only on ``(seed, i)``, so worlds are reproducible and can be
generated in any order.

Held-out compositional split: some colour-action pairs (``HELD_OUT_PAIRS``) never occur on
the main object of a train/val/test video; videos built from exactly those pairs form the
``compositional`` split, to test generalisation to unseen combinations.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from vidfm.errors import ConfigError
from vidfm.files import atomic_save_dir, atomic_write_text

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 45, 45),
    "green": (45, 185, 70),
    "blue": (55, 100, 240),
    "yellow": (240, 215, 40),
    "purple": (165, 70, 215),
    "orange": (250, 140, 30),
}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = {"small": 0.085, "medium": 0.115, "large": 0.15}  # half-extent / frame side
ACTIONS = (
    "move_left", "move_right", "move_up", "move_down", "grow", "shrink",
    "rotate", "change_colour", "bounce", "appear", "disappear", "stay_still",
)  # fmt: skip
BACKGROUNDS = ("solid", "gradient", "textured")
HELD_OUT_PAIRS = (
    ("red", "move_left"), ("blue", "grow"), ("green", "rotate"),
    ("yellow", "bounce"), ("purple", "shrink"), ("orange", "move_up"),
)  # fmt: skip
SPLITS = ("train", "val", "test", "compositional")

VERB_PHRASES: dict[str, tuple[str, ...]] = {
    "move_left": ("moves to the left", "slides left", "travels leftward", "drifts to the left"),
    "move_right": ("moves to the right", "slides right", "travels rightward", "drifts to the right"),
    "move_up": ("moves up", "rises", "travels upward", "slides upward"),
    "move_down": ("moves down", "sinks", "travels downward", "slides downward"),
    "grow": ("grows", "gets bigger", "expands", "increases in size"),
    "shrink": ("shrinks", "gets smaller", "contracts", "decreases in size"),
    "rotate": ("rotates", "spins", "turns around", "revolves"),
    "change_colour": ("turns {new}", "changes colour to {new}", "becomes {new}", "switches to {new}"),
    "bounce": ("bounces", "hops up and down", "jumps repeatedly", "bounces up and down"),
    "appear": ("appears", "fades in", "shows up", "materialises"),
    "disappear": ("disappears", "fades out", "vanishes", "fades away"),
    "stay_still": ("stays still", "does not move", "remains in place", "stays motionless"),
}
CAMERA_MOTIONS = ("static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out")
DIRECTIONS = {"move_left": "left", "move_right": "right", "move_up": "up", "move_down": "down"}
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}


@dataclass
class WorldConfig:
    """How a synthetic world is generated; saved as ``world.json`` beside the data."""

    videos: int = 120
    seed: int = 0
    size: int = 64
    fps: int = 8
    min_seconds: float = 2.0
    max_seconds: float = 6.0
    max_objects: int = 3
    multishot_fraction: float = 0.1
    compositional_fraction: float = 0.1
    camera_motion_fraction: float = 0.0
    frame_code: bool = False
    crf: int = 20
    audio: bool = False  # a stereo sound track tied to the events (vidfm.data.world_sound)

    def validate(self) -> None:
        if self.videos < 1:
            raise ConfigError(f"--videos must be >= 1, got {self.videos}")
        if self.size < 32 or self.size % 2:
            raise ConfigError(f"--size must be an even number >= 32, got {self.size}")
        if self.fps < 1:
            raise ConfigError(f"--fps must be >= 1, got {self.fps}")
        if not 0.5 <= self.min_seconds <= self.max_seconds:
            raise ConfigError(f"need 0.5 <= min_seconds <= max_seconds, got {self.min_seconds}, {self.max_seconds}")
        if not 1 <= self.max_objects <= 3:
            raise ConfigError(f"--max-objects must be 1..3, got {self.max_objects}")
        for name in ("multishot_fraction", "compositional_fraction", "camera_motion_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.multishot_fraction + self.compositional_fraction > 1.0:
            raise ConfigError("multishot_fraction + compositional_fraction must not exceed 1")


# ---------------------------------------------------------------------------------------
# Scene description (pure data) and rendering
# ---------------------------------------------------------------------------------------
@dataclass
class ObjectSpec:
    shape: str
    colour: str
    size: str
    action: str
    start: int  # first frame of the action (within its shot)
    end: int  # last frame of the action, inclusive
    x0: float  # start centre, pixels
    y0: float
    x1: float  # end centre (differs only for move_*)
    y1: float
    new_colour: str | None = None  # change_colour target
    spin: float = 0.0  # rotate: total degrees

    def phrase(self, rng: np.random.Generator | None = None, k: int | None = None) -> str:
        options = VERB_PHRASES[self.action]
        i = k if k is not None else (int(rng.integers(len(options))) if rng is not None else 0)
        return options[i % len(options)].format(new=self.new_colour)


@dataclass
class ShotSpec:
    frames: int
    background: str
    bg_colours: list[list[int]]
    objects: list[ObjectSpec]
    camera: str = "static"  # one of CAMERA_MOTIONS
    texture_seed: int = 0

    @property
    def main(self) -> ObjectSpec:
        return self.objects[0]


@dataclass
class VideoSpec:
    video_id: str
    split: str
    fps: int
    size: int
    shots: list[ShotSpec]
    transitions: list[dict] = field(default_factory=list)  # {"type": "cut", "frame"} / {"type": "fade", "start", "end"}

    @property
    def num_frames(self) -> int:
        overlap = sum(t["end"] - t["start"] + 1 for t in self.transitions if t["type"] == "fade")
        return sum(s.frames for s in self.shots) - overlap

    def shot_offsets(self) -> list[int]:
        """Frame where each shot's own frame 0 lands in the joined video."""
        offsets, pos = [], 0
        for k, shot in enumerate(self.shots):
            offsets.append(pos)
            pos += shot.frames
            if k < len(self.transitions) and self.transitions[k]["type"] == "fade":
                t = self.transitions[k]
                pos -= t["end"] - t["start"] + 1
        return offsets


def _object_state(obj: ObjectSpec, f: int, size_px: int, fps: int):
    """Centre, half-extent, angle, colour and opacity of ``obj`` at shot frame ``f``."""
    span = max(obj.end - obj.start, 1)
    p = float(np.clip((f - obj.start) / span, 0.0, 1.0))
    x = obj.x0 + (obj.x1 - obj.x0) * p
    y = obj.y0 + (obj.y1 - obj.y0) * p
    r = SIZES[obj.size] * size_px
    angle, alpha = 0.0, 1.0
    colour = np.array(COLOURS[obj.colour], dtype=np.float32)
    if obj.action == "grow":
        r *= 1.0 + 0.8 * p
    elif obj.action == "shrink":
        r *= 1.0 - 0.55 * p
    elif obj.action == "rotate":
        angle = obj.spin * p
    elif obj.action == "change_colour":
        colour = colour * (1 - p) + np.array(COLOURS[obj.new_colour], dtype=np.float32) * p
    elif obj.action == "bounce":
        y -= 0.22 * size_px * abs(math.sin(2 * math.pi * p))
    elif obj.action == "appear":
        alpha = p
    elif obj.action == "disappear":
        alpha = 1.0 - p
    return x, y, r, angle, colour, alpha


def _polygon(shape: str, x: float, y: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]
    elif shape == "triangle":
        pts = [(math.cos(a), math.sin(a)) for a in np.radians([-90, 30, 150])]
        pts = [(px * 1.1, py * 1.1 + 0.15) for px, py in pts]
    elif shape == "cross":
        a, b = 0.33, 1.0
        pts = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
    else:
        raise ValueError(shape)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return [(x + r * (px * c - py * s), y + r * (px * s + py * c)) for px, py in pts]


def _background(shot: ShotSpec, h: int, w: int) -> np.ndarray:
    a = np.array(shot.bg_colours[0], dtype=np.float32)
    if shot.background == "solid":
        return np.broadcast_to(a, (h, w, 3)).copy()
    b = np.array(shot.bg_colours[1], dtype=np.float32)
    if shot.background == "gradient":
        t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        return np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).copy()
    g = np.random.default_rng(shot.texture_seed)
    cell = max(2, h // 16)
    noise = g.random(((h + cell - 1) // cell, (w + cell - 1) // cell, 1), dtype=np.float32)
    noise = np.kron(noise, np.ones((cell, cell, 1), dtype=np.float32))[:h, :w]
    return a * (1 - noise) + b * noise


def render_shot(shot: ShotSpec, size: int, fps: int, first_id: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Render one shot as ``(T, size, size, 3)`` uint8 frames and ``(T, size, size)`` uint8
    instance labels: object ``k`` of the shot is ``first_id + k`` where it covers at least
    half a pixel (and is at least half opaque), 0 is background; an object on top wins.
    Camera motion is a moving crop of a larger canvas, so objects keep their world motion
    under pan/zoom."""
    margin = size // 8 if shot.camera != "static" else 0
    canvas = size + 2 * margin
    ss = 2  # supersampling for anti-aliased edges
    bg = _background(shot, canvas, canvas)
    frames = np.empty((shot.frames, size, size, 3), dtype=np.uint8)
    labels = np.zeros((shot.frames, size, size), dtype=np.uint8)
    for f in range(shot.frames):
        img = bg.copy()
        label = np.zeros((canvas, canvas), dtype=np.uint8)
        for k in reversed(range(len(shot.objects))):  # main object drawn last, on top
            obj = shot.objects[k]
            x, y, r, angle, colour, alpha = _object_state(obj, f, size, fps)
            if alpha <= 0.0 or r < 0.5:
                continue
            mask = Image.new("L", (canvas * ss, canvas * ss), 0)
            draw = ImageDraw.Draw(mask)
            cx, cy, rr = (x + margin) * ss, (y + margin) * ss, r * ss
            if obj.shape == "circle":
                draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=255)
            else:
                draw.polygon(_polygon(obj.shape, cx, cy, rr, angle), fill=255)
            m = np.asarray(mask.resize((canvas, canvas), Image.BILINEAR), dtype=np.float32)[..., None] / 255.0
            m *= alpha
            img = img * (1 - m) + colour * m
            label[m[..., 0] >= 0.5] = first_id + k
        p = f / max(shot.frames - 1, 1)
        frames[f] = _camera_crop(img, shot.camera, p, size, margin)
        labels[f] = _camera_crop(label, shot.camera, p, size, margin, nearest=True)
    return frames, labels


def camera_box(camera: str, p: float, size: int, margin: int) -> tuple[float, float, float, float]:
    """The world's camera path: at progress ``p`` in [0, 1] of a shot, the box (x0, y0, x1,
    y1) of a ``size + 2 * margin`` canvas that the camera sees (pans and tilts travel 0.9 of
    both margins; zooms narrow or widen the view by a quarter)."""
    cx = cy = margin + size / 2
    half = size / 2
    if camera == "pan_left":
        cx += margin * (1 - 2 * p) * 0.9
    elif camera == "pan_right":
        cx -= margin * (1 - 2 * p) * 0.9
    elif camera == "tilt_up":
        cy += margin * (1 - 2 * p) * 0.9
    elif camera == "tilt_down":
        cy -= margin * (1 - 2 * p) * 0.9
    elif camera == "zoom_in":
        half *= 1.0 - 0.25 * p
    elif camera == "zoom_out":
        half *= 0.75 + 0.25 * p
    return (cx - half, cy - half, cx + half, cy + half)


def _camera_crop(img: np.ndarray, camera: str, p: float, size: int, margin: int, nearest: bool = False) -> np.ndarray:
    if camera == "static" or margin == 0:
        return img if nearest else np.clip(img + 0.5, 0, 255).astype(np.uint8)
    pil = Image.fromarray(img if nearest else np.clip(img + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(pil.resize((size, size), Image.NEAREST if nearest else Image.BILINEAR, box=camera_box(camera, p, size, margin)))


def object_ids(spec: VideoSpec) -> list[list[int]]:
    """Per shot, the instance id of each of its objects in the label maps (1, 2, ... over
    the whole video, shot by shot)."""
    ids, n = [], 0
    for shot in spec.shots:
        ids.append(list(range(n + 1, n + 1 + len(shot.objects))))
        n += len(shot.objects)
    return ids


def render_video(spec: VideoSpec, frame_code: bool = False, with_labels: bool = False):
    """Render a whole video (shots joined by cuts / cross-fades) as ``(T, H, W, 3)`` uint8;
    with ``with_labels`` also ``(T, H, W)`` instance labels (``object_ids``; during a fade
    each frame takes the labels of the shot that weighs more)."""
    ids = object_ids(spec)
    out, labels = render_shot(spec.shots[0], spec.size, spec.fps, ids[0][0] if ids[0] else 1)
    out = out.astype(np.float32)
    for k, shot in enumerate(spec.shots[1:]):
        nxt, nxt_labels = render_shot(shot, spec.size, spec.fps, ids[k + 1][0] if ids[k + 1] else 1)
        nxt = nxt.astype(np.float32)
        t = spec.transitions[k]
        if t["type"] == "fade":
            n = t["end"] - t["start"] + 1
            w = (np.arange(1, n + 1, dtype=np.float32) / (n + 1))[:, None, None, None]
            blend = out[-n:] * (1 - w) + nxt[:n] * w
            blend_labels = np.where(w[:, :, :, 0] < 0.5, labels[-n:], nxt_labels[:n])
            out = np.concatenate([out[:-n], blend, nxt[n:]])
            labels = np.concatenate([labels[:-n], blend_labels, nxt_labels[n:]])
        else:
            out = np.concatenate([out, nxt])
            labels = np.concatenate([labels, nxt_labels])
    video = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if frame_code:
        for i in range(len(video)):
            burn_frame_code(video[i], i)
    return (video, labels) if with_labels else video


def video_sound(spec: VideoSpec, seed: int, rate: int | None = None):
    """The video's stereo track (``vidfm.io.audio.Audio``; each shot's main object's sound,
    ``vidfm.data.world_sound``, placed at the shot's offset) and its sound events, with
    times in seconds and frames of the joined video."""
    from vidfm.data.world_sound import SOUND_RATE, shot_sound
    from vidfm.io.audio import Audio

    rate = rate or SOUND_RATE
    rng = np.random.default_rng([seed, int(spec.video_id), 2])
    out = np.zeros((2, int(round(spec.num_frames / spec.fps * rate))), np.float32)
    events = []
    for shot, offset in zip(spec.shots, spec.shot_offsets()):
        centres = np.array([_object_state(shot.main, f, spec.size, spec.fps)[:2] for f in range(shot.frames)])
        samples, shot_events = shot_sound(shot.main, centres, spec.size, spec.fps, rate, rng)
        s = int(round(offset / spec.fps * rate))
        part = samples[:, : max(0, out.shape[1] - s)]
        out[:, s : s + part.shape[1]] += part
        for e in shot_events:
            e = {k: (round(v + offset / spec.fps, 4) if k in ("time", "start", "end") else v + offset if k.endswith("frame") else v) for k, v in e.items()}
            events.append(e)
    return Audio(np.clip(out, -1.0, 1.0), rate), events


# ---------------------------------------------------------------------------------------
# Frame codes: an index burned into pixels, to verify seeking exactly
# ---------------------------------------------------------------------------------------
FRAME_CODE_BITS = 16


def _code_cells(h: int, w: int):
    bw = w // FRAME_CODE_BITS
    bh = max(4, h // 16)
    return bw, bh


def burn_frame_code(frame: np.ndarray, index: int) -> None:
    """Write ``index`` as 16 black/white blocks along the top edge of ``frame`` (in place)."""
    bw, bh = _code_cells(*frame.shape[:2])
    for b in range(FRAME_CODE_BITS):
        frame[:bh, b * bw : (b + 1) * bw] = 255 if (index >> b) & 1 else 0


def read_frame_code(frame: np.ndarray) -> int:
    """Read back the index written by ``burn_frame_code`` (robust to compression noise)."""
    bw, bh = _code_cells(*frame.shape[:2])
    value = 0
    for b in range(FRAME_CODE_BITS):
        cell = frame[1 : bh - 1, b * bw + 1 : (b + 1) * bw - 1]
        if cell.mean() > 127:
            value |= 1 << b
    return value


# ---------------------------------------------------------------------------------------
# Sampling scene specs
# ---------------------------------------------------------------------------------------
def _sample_shot(
    rng: np.random.Generator, cfg: WorldConfig, frames: int, action: str, colour: str, camera: bool
) -> ShotSpec:
    size = cfg.size
    shape = str(rng.choice([s for s in SHAPES if not (action == "rotate" and s == "circle")]))
    obj_size = str(rng.choice(list(SIZES)))
    r = SIZES[obj_size] * size
    # The action spans 40-90% of the shot, anywhere inside it.
    length = max(2, int(round(frames * rng.uniform(0.4, 0.9))))
    start = int(rng.integers(0, frames - length + 1))
    end = start + length - 1
    lo, hi = r + 2, size - r - 2
    dist = size * rng.uniform(0.3, 0.42)
    x0, y0 = rng.uniform(lo, hi), rng.uniform(lo, hi)
    if action == "grow":
        lo, hi = r * 1.8 + 2, size - r * 1.8 - 2
        x0, y0 = rng.uniform(lo, hi), rng.uniform(lo, hi)
    if action == "bounce":
        y0 = rng.uniform(max(lo, 0.22 * size + r + 2), hi)
    x1, y1 = x0, y0
    if action in DIRECTIONS:
        axis_lo, axis_hi = lo + dist, hi
        start_pos = rng.uniform(axis_lo, max(axis_lo, axis_hi))
        if action == "move_left":
            x0, x1 = start_pos, start_pos - dist
        elif action == "move_right":
            x0, x1 = size - start_pos, size - start_pos + dist
        elif action == "move_up":
            y0, y1 = start_pos, start_pos - dist
        else:
            y0, y1 = size - start_pos, size - start_pos + dist
    others = [c for c in COLOURS if c != colour]
    new_colour = str(rng.choice(others)) if action == "change_colour" else None
    # ~45 or ~405 degrees: an end pose that differs from the start for every shape
    # (squares and crosses repeat every 90 degrees, triangles every 120).
    spin = float(rng.choice([-1, 1]) * (rng.choice([45, 405]) + rng.uniform(-8, 8))) if action == "rotate" else 0.0
    main = ObjectSpec(shape, colour, obj_size, action, start, end, x0, y0, x1, y1, new_colour, spin)
    objects = [main]
    used = {colour} | ({new_colour} if new_colour else set())
    n_obj = int(rng.integers(1, cfg.max_objects + 1))
    path = [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) for t in np.linspace(0, 1, 6)]
    reach = r * (1.8 if action == "grow" else 1.0) + (0.22 * size if action == "bounce" else 0)
    for _ in range(n_obj - 1):
        choices = [c for c in COLOURS if c not in used]
        d_size = str(rng.choice(list(SIZES)))
        dr = SIZES[d_size] * size
        for _try in range(30):
            dx, dy = rng.uniform(dr + 2, size - dr - 2, size=2)
            if all(math.hypot(dx - px, dy - py) > reach + dr + 3 for px, py in path) and all(
                math.hypot(dx - o.x0, dy - o.y0) > SIZES[o.size] * size + dr + 3 for o in objects[1:]
            ):
                c = str(rng.choice(choices))
                used.add(c)
                objects.append(
                    ObjectSpec(str(rng.choice(SHAPES)), c, d_size, "stay_still", 0, frames - 1, dx, dy, dx, dy)
                )
                break
    background = str(rng.choice(BACKGROUNDS))
    bg = [_dull_colour(rng), _dull_colour(rng)]
    cam = str(rng.choice(CAMERA_MOTIONS[1:])) if camera else "static"
    return ShotSpec(frames, background, bg, objects, cam, int(rng.integers(2**31)))


def _dull_colour(rng: np.random.Generator) -> list[int]:
    """Backgrounds are dark and desaturated so every object colour stands out."""
    grey = rng.uniform(15, 80)
    tint = rng.uniform(-12, 12, size=3)
    return [int(v) for v in np.clip(grey + tint, 0, 255)]


def _plan(cfg: WorldConfig) -> list[tuple[str, str, str, bool]]:
    """Per video: (kind, split, action, colour) with balanced actions and stratified splits."""
    rng = np.random.default_rng([cfg.seed, 7919])
    n = cfg.videos
    n_multi = int(round(n * cfg.multishot_fraction))
    n_comp = int(round(n * cfg.compositional_fraction))
    n_single = n - n_multi - n_comp
    held = set(HELD_OUT_PAIRS)
    plans = []
    actions = [ACTIONS[i % len(ACTIONS)] for i in range(n_single)]
    rng.shuffle(actions)
    for a in actions:
        colour = str(rng.choice([c for c in COLOURS if (c, a) not in held]))
        plans.append(("single", a, colour))
    for i in range(n_comp):
        c, a = HELD_OUT_PAIRS[i % len(HELD_OUT_PAIRS)]
        plans.append(("compositional", a, c))
    for _ in range(n_multi):
        plans.append(("multi", "", ""))
    order = rng.permutation(len(plans))
    plans = [plans[i] for i in order]
    # 70/15/15 train/val/test, stratified: within each action (and among multi-shot videos),
    # so every class is present in every split once it has 3 or more videos.
    groups: dict[str, list[int]] = {}
    for j, (kind, a, _c) in enumerate(plans):
        if kind != "compositional":
            groups.setdefault(a if kind == "single" else "multi", []).append(j)
    split_of = {}
    for members in groups.values():
        m = len(members)
        n_eval = max(int(round(m * 0.15)), 1 if m >= 3 else 0)
        n_train = m - 2 * n_eval if m >= 3 else m - (m == 2)
        for k, j in enumerate(members):
            split_of[j] = "train" if k < n_train else ("val" if k < n_train + n_eval else "test")
    return [(kind, split_of.get(j, "compositional"), a, c) for j, (kind, a, c) in enumerate(plans)]


def sample_video_spec(cfg: WorldConfig, i: int, plan: tuple[str, str, str, str]) -> VideoSpec:
    kind, split, action, colour = plan
    rng = np.random.default_rng([cfg.seed, i])
    camera = bool(rng.random() < cfg.camera_motion_fraction)
    held = set(HELD_OUT_PAIRS)
    if kind != "multi":
        frames = int(round(rng.uniform(cfg.min_seconds, cfg.max_seconds) * cfg.fps))
        shot = _sample_shot(rng, cfg, max(frames, 4), action, colour, camera)
        return VideoSpec(f"{i:06d}", split, cfg.fps, cfg.size, [shot])
    n_shots = int(rng.integers(2, 4))
    shots, transitions = [], []
    total = rng.uniform(max(cfg.min_seconds, 3.0), max(cfg.max_seconds, 6.0)) * cfg.fps
    for k in range(n_shots):
        a = str(rng.choice(ACTIONS))
        c = str(rng.choice([c for c in COLOURS if (c, a) not in held]))
        frames = max(8, int(round(total / n_shots * rng.uniform(0.8, 1.2))))
        shots.append(_sample_shot(rng, cfg, frames, a, c, camera))
    pos = 0
    for k in range(n_shots - 1):
        pos += shots[k].frames
        if rng.random() < 0.5:
            transitions.append({"type": "cut", "frame": pos})
        else:
            n = int(rng.integers(3, 6))
            transitions.append({"type": "fade", "start": pos - n, "end": pos - 1})
            pos -= n
    return VideoSpec(f"{i:06d}", split, cfg.fps, cfg.size, shots, transitions)


# ---------------------------------------------------------------------------------------
# Annotations derived from a spec
# ---------------------------------------------------------------------------------------
def _a(word: str) -> str:
    """Indefinite article + word ("an orange", "a red")."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _name(action: str) -> str:
    return action.replace("_", " ")


def event_sentence(obj: ObjectSpec, k: int = 0) -> str:
    return f"the {obj.colour} {obj.shape} {obj.phrase(k=k)}"


def camera_phrase(camera: str) -> str:
    """``pan_left`` -> ``pans left`` (how captions and prompts name a camera motion)."""
    return camera.replace("_", "s ", 1)


def captions_for(spec: VideoSpec, rng: np.random.Generator, n: int = 5) -> list[str]:
    """Several paraphrases per video (MSR-VTT style), varied in template and verb."""
    if len(spec.shots) > 1:
        caps = []
        for j in range(n):
            parts = [f"{_a(s.main.colour)} {s.main.shape} {s.main.phrase(k=j + q)}" for q, s in enumerate(spec.shots)]
            joiner = [", then ", " and then ", "; next, "][j % 3]
            caps.append(f"{['', 'several shots: ', 'a cut between scenes: '][j % 3]}{joiner.join(parts)}")
        return caps
    shot = spec.shots[0]
    o = shot.main
    bg = {"solid": "plain", "gradient": "gradient", "textured": "textured"}[shot.background]
    rest = shot.objects[1:]
    templates = [
        f"a {o.size} {o.colour} {o.shape} {{vp}}",
        f"the {o.colour} {o.shape} {{vp}}",
        f"{_a(o.colour)} {o.shape} {{vp}} on a {bg} background",
        f"there is {_a(o.colour)} {o.shape} that {{vp}}",
        f"a {o.shape}, {o.colour} and {o.size}, {{vp}}",
    ]
    if rest:
        d = rest[0]
        templates[3] = f"{_a(o.colour)} {o.shape} {{vp}} while {_a(d.colour)} {d.shape} stays still"
        templates[4] = f"next to {_a(d.colour)} {d.shape}, {_a(o.colour)} {o.shape} {{vp}}"
    caps = []
    for j in range(n):
        cap = templates[j % len(templates)].format(vp=o.phrase(k=j + int(rng.integers(4))))
        if shot.camera != "static":  # every caption: a generator learns the camera from them
            cap += f" as the camera {camera_phrase(shot.camera)}"
        caps.append(cap)
    return caps


def qa_for(spec: VideoSpec) -> list[dict]:
    """Closed-form questions whose answers follow from the spec (single-shot videos)."""
    shot = spec.shots[0]
    o = shot.main
    qa = [
        {"type": "colour", "question": f"what colour is the object that {o.phrase(k=0)}?", "answer": o.colour},
        {"type": "shape", "question": f"what shape is the {o.colour} object?", "answer": o.shape},
        {"type": "action", "question": f"what does the {o.colour} {o.shape} do?", "answer": _name(o.action)},
        {"type": "size", "question": f"what size is the {o.colour} {o.shape} at the start?", "answer": o.size},
        {"type": "count", "question": "how many objects are in the video?", "answer": COUNT_WORDS[len(shot.objects)]},
    ]
    if o.action in DIRECTIONS:
        qa.append(
            {
                "type": "direction",
                "question": f"in which direction does the {o.colour} {o.shape} move?",
                "answer": DIRECTIONS[o.action],
            }
        )
    return qa


def grounding_for(spec: VideoSpec) -> list[tuple[float, float, str]]:
    """(start s, end s, sentence) for each shot's main event (not for 'stay still')."""
    out = []
    for shot, offset in zip(spec.shots, spec.shot_offsets()):
        o = shot.main
        if o.action == "stay_still":
            continue
        start = (offset + o.start) / spec.fps
        end = (offset + o.end + 1) / spec.fps
        out.append((round(start, 3), round(end, 3), event_sentence(o)))
    return out


def shot_ranges(spec: VideoSpec) -> list[list[int]]:
    """Shots as inclusive frame ranges; a fade's frames belong to neither neighbour."""
    ranges, start = [], 0
    for t in spec.transitions:
        if t["type"] == "cut":
            ranges.append([start, t["frame"] - 1])
            start = t["frame"]
        else:
            ranges.append([start, t["start"] - 1])
            start = t["end"] + 1
    ranges.append([start, spec.num_frames - 1])
    return ranges


# ---------------------------------------------------------------------------------------
# Writing a world
# ---------------------------------------------------------------------------------------
def generate_world(out: str | os.PathLike, cfg: WorldConfig, progress: Callable | None = None, overwrite: bool = False) -> dict:
    """Render and write a whole world to ``out``; returns a summary (also in ``world.json``).

    Layout: ``videos/*.mp4``, ``metadata.jsonl`` (full ground truth), ``labels.txt``,
    ``classification/<split>.csv`` (``path,label``), ``captions/<split>.jsonl``,
    ``qa/<split>.jsonl`` + ``qa/answers.txt``, ``grounding/<split>.txt`` (Charades-STA:
    ``id start end##sentence``), ``shots.jsonl`` and an ``overview.png`` contact sheet.
    With ``cfg.audio`` every MP4 carries a stereo AAC track and each metadata line its
    ``sound_events`` (``video_sound``).

    The world is rendered into ``out.tmp`` and swapped in when complete, so an existing
    folder is never left with old videos beside new annotations (or half a world after a
    crash). A non-empty ``out`` is only replaced with ``overwrite=True``.
    """
    cfg.validate()
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())) and not overwrite:
        what = "is a file" if not root.is_dir() else "already exists and is not empty"
        raise ConfigError(f"{root}: {what}; choose another folder or pass --overwrite to replace it")
    if root.exists() and not root.is_dir():
        root.unlink()
    summary = {}
    atomic_save_dir(root, lambda d: summary.update(_write_world(d, root, cfg, progress)))
    return summary


MASK_PALETTE = [0, 0, 0] + [c for rgb in ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                                          (70, 240, 240), (240, 50, 230), (210, 245, 60)) for c in rgb]  # fmt: skip


def write_mask(path: Path, label: np.ndarray) -> None:
    """One DAVIS-style palette PNG: pixel value = instance id (0 = background)."""
    img = Image.frombytes("P", (label.shape[1], label.shape[0]), np.ascontiguousarray(label, dtype=np.uint8).tobytes())
    img.putpalette(MASK_PALETTE)
    img.save(path, optimize=True)


def write_masks(folder: Path, labels: np.ndarray) -> None:
    """DAVIS-style instance masks: ``folder/00000.png`` ... one palette PNG per frame, pixel
    value = the object's ``mask_id`` (0 = background)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f, label in enumerate(labels):
        write_mask(folder / f"{f:05d}.png", label)


def read_masks(folder) -> np.ndarray:
    """``(T, H, W)`` uint8 instance labels written by ``write_masks``."""
    files = sorted(Path(folder).glob("*.png"))
    if not files:
        raise ConfigError(f"{folder}: no mask PNGs")
    return np.stack([np.asarray(Image.open(p)) for p in files])


def _write_world(d: Path, root: Path, cfg: WorldConfig, progress: Callable | None) -> dict:
    """Everything ``generate_world`` writes, into folder ``d`` (published later as ``root``)."""
    from vidfm.io.writer import save_contact_sheet, write_video

    (d / "videos").mkdir(parents=True, exist_ok=True)
    plans = _plan(cfg)
    metas: list[dict] = []
    cls_rows: dict[str, list[str]] = {s: [] for s in SPLITS}
    cap_rows: dict[str, list[str]] = {s: [] for s in SPLITS}
    qa_rows: dict[str, list[str]] = {s: [] for s in SPLITS}
    gnd_rows: dict[str, list[str]] = {s: [] for s in SPLITS}
    shot_lines: list[str] = []
    answers: set[str] = set()
    thumbs, thumb_labels = [], []
    iterator = range(cfg.videos)
    if progress is not None:
        iterator = progress(iterator)
    for i in iterator:
        spec = sample_video_spec(cfg, i, plans[i])
        video, labels = render_video(spec, frame_code=cfg.frame_code, with_labels=True)
        rel = f"videos/{spec.video_id}.mp4"
        sound, sound_events = video_sound(spec, cfg.seed) if cfg.audio else (None, None)
        write_video(d / rel, video, fps=cfg.fps, crf=cfg.crf, gop=2 * cfg.fps, audio=sound)
        write_masks(d / "masks" / spec.video_id, labels)
        rng = np.random.default_rng([cfg.seed, i, 1])
        captions = captions_for(spec, rng)
        multi = len(spec.shots) > 1
        meta = {
            "video_id": spec.video_id,
            "path": rel,
            "split": spec.split,
            "num_frames": spec.num_frames,
            "fps": cfg.fps,
            "label": None if multi else spec.shots[0].main.action,
            "shots": [asdict(s) for s in spec.shots],
            "transitions": spec.transitions,
            "masks": f"masks/{spec.video_id}",
            **({"sound_events": sound_events} if cfg.audio else {}),
        }
        for shot, shot_ids in zip(meta["shots"], object_ids(spec)):
            for obj, mask_id in zip(shot["objects"], shot_ids):
                obj["mask_id"] = mask_id
        metas.append(meta)
        cap_rows[spec.split].append(json.dumps({"video_id": spec.video_id, "path": rel, "captions": captions}))
        for start, end, sentence in grounding_for(spec):
            gnd_rows[spec.split].append(f"{spec.video_id} {start:.3f} {end:.3f}##{sentence}")
        shot_lines.append(
            json.dumps(
                {
                    "video_id": spec.video_id,
                    "path": rel,
                    "num_frames": spec.num_frames,
                    "fps": cfg.fps,
                    "transitions": spec.transitions,
                    "shots": shot_ranges(spec),
                }
            )
        )
        if not multi:
            cls_rows[spec.split].append(f"{rel},{spec.shots[0].main.action}")
            for q in qa_for(spec):
                answers.add(q["answer"])
                qa_rows[spec.split].append(json.dumps({"video_id": spec.video_id, "path": rel, **q}))
        if len(thumbs) < 12:
            thumbs.append(video[len(video) // 2])
            thumb_labels.append(f"{spec.video_id} {captions[1][:28]}")
    atomic_write_text(d / "labels.txt", "\n".join(ACTIONS) + "\n")
    for split in SPLITS:
        atomic_write_text(d / "classification" / f"{split}.csv", "path,label\n" + "".join(r + "\n" for r in cls_rows[split]))
        atomic_write_text(d / "captions" / f"{split}.jsonl", "".join(r + "\n" for r in cap_rows[split]))
        atomic_write_text(d / "qa" / f"{split}.jsonl", "".join(r + "\n" for r in qa_rows[split]))
        atomic_write_text(d / "grounding" / f"{split}.txt", "".join(r + "\n" for r in gnd_rows[split]))
    atomic_write_text(d / "qa" / "answers.txt", "\n".join(sorted(answers)) + "\n")
    atomic_write_text(d / "shots.jsonl", "".join(s + "\n" for s in shot_lines))
    atomic_write_text(d / "metadata.jsonl", "".join(json.dumps(m) + "\n" for m in metas))
    save_contact_sheet(d / "overview.png", np.stack(thumbs), labels=thumb_labels, columns=4, scale=3)
    label_counts = Counter(m["label"] for m in metas if m["label"])
    summary = {
        "root": str(root),
        "config": asdict(cfg),
        "videos": cfg.videos,
        "splits": {s: sum(1 for m in metas if m["split"] == s) for s in SPLITS},
        "classification": {s: len(cls_rows[s]) for s in SPLITS},
        "captions": sum(len(v) for v in cap_rows.values()),
        "qa": {s: len(qa_rows[s]) for s in SPLITS},
        "grounding": {s: len(gnd_rows[s]) for s in SPLITS},
        "multishot_videos": sum(1 for p in plans if p[0] == "multi"),
        "labels": dict(sorted(label_counts.items())),
        "held_out_pairs": [list(p) for p in HELD_OUT_PAIRS],
        "overview": str(root / "overview.png"),
    }
    atomic_write_text(d / "world.json", json.dumps(summary, indent=2) + "\n")
    return summary
