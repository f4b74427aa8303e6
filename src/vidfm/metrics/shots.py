"""Shot-boundary precision / recall / F1 with TransNetV2's protocol.

Shots are inclusive frame ranges; the transition between two shots is the interval from
the last frame of one to the first frame of the next (a cut spans two frames, a fade more).
Each end of every shot is moved ``tolerance / 2`` frames towards its inside, widening the
transitions, and a predicted transition is a hit when it overlaps a true one (each matched
at most once, in order). With the default ``tolerance=2`` a cut found one frame early or
late still counts.
"""

from __future__ import annotations

import numpy as np


def transitions_from_shots(shots, tolerance: int = 2) -> np.ndarray:
    s = np.asarray(shots, dtype=np.float64).reshape(-1, 2)
    shift = tolerance / 2
    s = s + np.array([[-0.5 + shift, 0.5 - shift]])
    return np.stack([s[:-1, 1], s[1:, 0]], 1) if len(s) > 1 else np.zeros((0, 2))


def shot_boundary_scores(true_shots, pred_shots, tolerance: int = 2) -> dict:
    """``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` for one video."""
    gt, pred = transitions_from_shots(true_shots, tolerance), transitions_from_shots(pred_shots, tolerance)
    i = j = tp = fp = fn = 0
    while i < len(gt) or j < len(pred):
        if j == len(pred) or (i < len(gt) and pred[j, 0] > gt[i, 1]):
            fn += 1
            i += 1
        elif i == len(gt) or pred[j, 1] < gt[i, 0]:
            fp += 1
            j += 1
        else:
            tp += 1
            i += 1
            j += 1
    return _prf(tp, fp, fn)


def _prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f1}


def aggregate(scores: list[dict]) -> dict:
    """Micro-averaged scores over many videos (sums of tp/fp/fn)."""
    return _prf(sum(s["tp"] for s in scores), sum(s["fp"] for s in scores), sum(s["fn"] for s in scores))
