"""Sound for the synthetic world: each shot's main object makes a sound tied to what it does,
so audio-visual sync is known exactly.

Per action (times follow the video frame by frame, sounds are panned by the object's
horizontal position with a constant-power law, so a left/right move travels across the
stereo field):

- ``bounce``: a click (a 25 ms decaying noise burst) at each contact with the ground:
  take-off, the landing halfway and the last landing;
- ``grow`` / ``shrink``: a rising / falling buzzy tone (odd harmonics);
- ``move_*``: a steady hum whose pitch follows the height (higher when higher up);
- ``rotate``: a warbling tone (6 Hz vibrato); ``change_colour``: a two-note chime that
  changes note halfway;
- ``appear`` / ``disappear``: a tone fading in / out with the object's opacity, with an
  onset / offset click;
- ``stay_still``: silence, as are the other objects.

``vidfm.data.synthetic.video_sound`` lays the shots' sounds out over a whole video. Every
sound event goes into the video's annotations (``sound_events``): kind, start and
end in seconds and frames, and for clicks the exact contact time.
"""

from __future__ import annotations

import math

import numpy as np

SOUND_RATE = 16000
CLICK_SECONDS = 0.025
TONE_LEVEL = 0.25
CLICK_LEVEL = 0.8


def contact_points(obj) -> list[float]:
    """Frames (fractional, within the shot) at which a bouncing object touches its ground
    line: where ``|sin(2 pi p)| = 0`` on its action interval."""
    return [obj.start + p * (obj.end - obj.start) for p in (0.0, 0.5, 1.0)]


def _click(rng: np.random.Generator, rate: int) -> np.ndarray:
    n = int(CLICK_SECONDS * rate)
    return (rng.standard_normal(n) * np.exp(-np.arange(n) / (0.004 * rate)) * CLICK_LEVEL).astype(np.float32)


def _pan(x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    theta = np.clip(x / size, 0.0, 1.0) * (math.pi / 2)
    return np.cos(theta), np.sin(theta)


def _tone(phase: np.ndarray, kind: str) -> np.ndarray:
    if kind == "buzz":  # odd harmonics: square-ish
        return np.sin(phase) + np.sin(3 * phase) / 3 + np.sin(5 * phase) / 5
    return np.sin(phase) + 0.3 * np.sin(2 * phase)


def shot_sound(obj, centres: np.ndarray, size: int, fps: int, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """``(2, frames / fps * rate)`` stereo samples for one shot's main object (an
    ``ObjectSpec``; ``centres (frames, 2)`` its x, y per frame), and its events (times in
    seconds and frames relative to the shot)."""
    frames = len(centres)
    n = int(round(frames / fps * rate))
    out = np.zeros((2, n), np.float32)
    t_frame = np.arange(n) / rate * fps  # the (fractional) frame each sample falls in
    xs = np.interp(t_frame, np.arange(frames), centres[:, 0])
    ys = np.interp(t_frame, np.arange(frames), centres[:, 1])
    events: list[dict] = []
    a, b = obj.start, obj.end + 1  # the action covers frames start..end inclusive
    active = (t_frame >= a) & (t_frame < b)
    p = np.clip((t_frame - a) / max(b - a, 1), 0.0, 1.0)
    left, right = _pan(xs, size)
    action = obj.action
    if action == "stay_still":
        return out, events
    if action == "bounce":
        for f in contact_points(obj):
            s = int(round(f / fps * rate))
            click = _click(rng, rate)[: max(0, n - s)]
            pan_l, pan_r = _pan(np.array([obj.x0]), size)
            out[0, s : s + len(click)] += click * pan_l[0]
            out[1, s : s + len(click)] += click * pan_r[0]
            events.append({"kind": "click", "time": round(f / fps, 4), "frame": round(f, 3)})
        return out, events
    if action in ("grow", "shrink"):
        freq = 220 * np.where(action == "grow", 2 ** (2 * p), 2 ** (2 * (1 - p)))
        kind = "buzz"
    elif action.startswith("move_"):
        freq = 250 + 500 * (1 - ys / size)
        kind = "hum"
    elif action == "rotate":
        freq = 500 * (1 + 0.06 * np.sin(2 * math.pi * 6 * np.arange(n) / rate))
        kind = "hum"
    elif action == "change_colour":
        freq = np.where(p < 0.5, 523.25, 659.25)
        kind = "hum"
    else:  # appear / disappear: amplitude follows the opacity
        freq = np.full(n, 330.0)
        kind = "hum"
    amp = np.where(active, 1.0, 0.0)
    if action == "appear":
        amp = np.where(t_frame >= a, p, 0.0)
    elif action == "disappear":
        amp = np.where(t_frame < b, 1.0 - p, 0.0)
    ramp = int(0.005 * rate)  # 5 ms edges: no spectral splash beyond the onset itself
    amp = np.convolve(amp, np.ones(ramp) / ramp, mode="same")
    phase = 2 * math.pi * np.cumsum(freq) / rate
    wave = (_tone(phase, kind) * amp * TONE_LEVEL).astype(np.float32)
    out[0] += wave * left
    out[1] += wave * right
    events.append({"kind": f"tone_{action}", "start": round(a / fps, 4), "end": round(b / fps, 4), "start_frame": a, "end_frame": b})
    if action in ("appear", "disappear"):
        f = a if action == "appear" else b - 1
        s = int(round(f / fps * rate))
        click = _click(rng, rate)[: max(0, n - s)] * 0.5
        out[:, s : s + len(click)] += click
        events.append({"kind": "onset" if action == "appear" else "offset", "time": round(f / fps, 4), "frame": float(f)})
    return out, events
