"""Training data and the training loop for the shot student (``vidfm.shots.student``).

The teacher is TransNetV2 with its real weights. Real footage with cuts is scarce here, so
besides the teacher's labels on real frames, :func:`splice_stream` builds long synthetic
edits from the shots of the *training* footage: random pieces of shots, jittered (colour,
flip, reversal, speed, shift), joined by cuts, dissolves, fades through black and wipes of
many lengths, with the exact transition frames as hard labels. The teacher labels the same
stream, and the student learns both (``vidfm.compress.distill.distillation_loss``).
"""

from __future__ import annotations

import numpy as np
import torch

from vidfm.compress.distill import distillation_loss
from vidfm.shots.student import ShotStudent

TRANSITIONS = {"cut": 0.55, "dissolve": 0.2, "fade": 0.15, "wipe": 0.1}


def _jitter(piece: np.ndarray, rng: np.random.Generator, reverse: bool = True) -> np.ndarray:
    x = piece.astype(np.float32)
    if rng.random() < 0.5:
        x = x[:, :, ::-1]
    if reverse and rng.random() < 0.3:
        x = x[::-1]
    if rng.random() < 0.3:  # zoom: crop 70-90 % and scale back (nearest)
        h, w = x.shape[1:3]
        z = rng.uniform(0.7, 0.9)
        ch, cw = max(2, int(h * z)), max(2, int(w * z))
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        rows, cols = y0 + np.arange(h) * ch // h, x0 + np.arange(w) * cw // w
        x = x[:, rows][:, :, cols]
    gain = rng.uniform(0.7, 1.3, size=3) if rng.random() < 0.5 else np.full(3, rng.uniform(0.6, 1.4))
    x = x * gain + rng.uniform(-25, 25)
    if rng.random() < 0.3:
        dy, dx = rng.integers(-3, 4), rng.integers(-5, 6)
        x = np.roll(x, (dy, dx), axis=(1, 2))
    return np.clip(x, 0, 255).astype(np.uint8)


def _blend(a: np.ndarray, b: np.ndarray, kind: str, rng) -> np.ndarray:
    """``len(a) == len(b)`` transition frames from the tail of ``a`` to the head of ``b``."""
    n = len(a)
    w = ((np.arange(n) + 1) / (n + 1)).astype(np.float32)
    if kind == "dissolve":
        return (a * (1 - w[:, None, None, None]) + b * w[:, None, None, None]).astype(np.uint8)
    if kind == "fade":  # out to black, then in
        half = n // 2
        out = np.empty_like(a)
        out[:half] = (a[:half] * (1 - (np.arange(half) + 1) / (half + 1))[:, None, None, None]).astype(np.uint8)
        up = (np.arange(n - half) + 1) / (n - half + 1)
        out[half:] = (b[half:] * up[:, None, None, None]).astype(np.uint8)
        return out
    cols = np.round(w * a.shape[2]).astype(int)  # wipe, left to right or back
    out = a.copy()
    for i, c in enumerate(cols):
        if rng.random() < 0.5:
            out[i, :, :c] = b[i, :, :c]
        else:
            out[i, :, a.shape[2] - c :] = b[i, :, a.shape[2] - c :]
    return out


def splice_stream(frames: np.ndarray, shots: list[tuple[int, int]], length: int, seed: int = 0, similar: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A ``length``-frame edit of pieces of ``shots`` (inclusive ranges into ``frames``).
    With probability ``similar`` the next piece comes from one of the 4 shots whose colours
    are closest to the current one's (the hard case: cuts within one palette).
    Returns (frames, labels): labels are 1 on the last frame before a cut and on every frame
    of a gradual transition (TransNetV2's "single" convention for cuts)."""
    rng = np.random.default_rng(seed)
    usable = [(s, e) for s, e in shots if e - s + 1 >= 6]
    if not usable:
        raise ValueError("no shot is long enough to splice (need >= 6 frames)")
    colours = np.stack([frames[(s + e) // 2].reshape(-1, 3).mean(0) for s, e in usable])
    nearest = np.argsort(((colours[:, None] - colours[None]) ** 2).sum(-1), 1)[:, 1:5]
    out, labels, total, k = [], [], 0, int(rng.integers(len(usable)))
    while total < length:
        k = int(rng.choice(nearest[k])) if out and rng.random() < similar else int(rng.integers(len(usable)))
        s, e = usable[k]
        speed = 2 if rng.random() < 0.2 and e - s + 1 >= 12 else 1
        span = (e - s + 1) // speed
        take = int(rng.integers(min(6, span), min(span, 150) + 1))
        start = s + int(rng.integers(0, (e - s + 1) - take * speed + 1))
        piece = _jitter(frames[start : start + take * speed : speed], rng)
        if out:
            kind = rng.choice(list(TRANSITIONS), p=list(TRANSITIONS.values()))
            if kind == "cut" or len(piece) < 8 or len(out[-1]) < 8:
                labels[-1][-1] = 1
            else:
                n = int(rng.integers(3, min(30, len(piece) // 2, len(out[-1]) // 2) + 1))
                mixed = _blend(out[-1][-n:], piece[:n], kind, rng)
                out[-1], labels[-1] = out[-1][:-n], labels[-1][:-n]
                out.append(mixed)
                labels.append(np.ones(n, np.float32))
                total -= n
                piece = piece[n:]
        out.append(piece)
        labels.append(np.zeros(len(piece), np.float32))
        total += len(piece)
    return np.concatenate(out)[:length], np.concatenate(labels)[:length]


def train_student(streams: list[dict], steps: int = 3000, window: int = 256, batch: int = 8, lr: float = 3e-3, temperature: float = 1.0,
                  alpha: float = 0.7, focus: float = 10.0, seed: int = 0, model: ShotStudent | None = None, progress=None) -> ShotStudent:  # fmt: skip
    """Distil on random windows of ``streams``: dicts with ``frames`` (N, 27, 48, 3) uint8,
    ``teacher`` (N,) probabilities and optionally ``labels`` (N,) hard 0/1 targets, a
    sampling ``weight`` and ``augment`` (jitter each window's colours and flip it). Transition frames are rare, so windows are drawn to contain one
    half of the time, and frames near a transition weigh ``focus`` times more."""
    rng = np.random.default_rng(seed)
    model = model or ShotStudent()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    weights = np.array([s.get("weight", len(s["frames"])) for s in streams], np.float64)
    positives = [np.flatnonzero((s["teacher"] > 0.5) | (s.get("labels", s["teacher"]) > 0.5)) for s in streams]
    torch.manual_seed(seed)
    it = range(steps)
    for _ in progress(it, "distilling", steps, "step") if progress else it:
        loss = 0.0
        for _b in range(batch):
            k = rng.choice(len(streams), p=weights / weights.sum())
            s, n = streams[k], len(streams[k]["frames"])
            w = min(window, n)
            if rng.random() < 0.5 and len(positives[k]):
                centre = positives[k][rng.integers(len(positives[k]))]
                lo = int(np.clip(centre - rng.integers(0, w), 0, n - w))
            else:
                lo = int(rng.integers(0, n - w + 1))
            frames = s["frames"][lo : lo + w]
            if s.get("augment"):  # one jitter for the whole window: no fake transitions
                frames = _jitter(frames, rng, reverse=False)
            frames = torch.from_numpy(np.ascontiguousarray(frames))
            logits = model(frames)
            teacher = torch.from_numpy(s["teacher"][lo : lo + w]).clamp(1e-4, 1 - 1e-4)
            labels = torch.from_numpy(s["labels"][lo : lo + w]) if "labels" in s else None
            # transitions are ~1 frame in 50: weight the frames near one (either judge) up
            near = (teacher > 0.1) | (labels > 0.5) if labels is not None else teacher > 0.1
            weight = 1 + (focus - 1) * near.float()
            terms = distillation_loss(logits, torch.logit(teacher), labels, temperature=temperature, alpha=alpha, binary=True, weight=weight)
            loss = loss + terms["loss"] / batch
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return model.eval()
