"""Video object segmentation measures as DAVIS defines them (Perazzi et al. 2016; the
DAVIS 2017 evaluation code): J, the region similarity (mask IoU), and F, the boundary
F-measure (precision and recall of the predicted contour against the true one, a
contour pixel matching within ``ceil(0.008 x image diagonal)`` pixels). A frame where both
masks are empty scores 1 on both. J&F is their mean; per video, each is the mean over its
frames."""

from __future__ import annotations

import math

import cv2
import numpy as np

BOUND_TH = 0.008


def region_similarity(pred: np.ndarray, truth: np.ndarray) -> float:
    """J of one frame: |pred & truth| / |pred | truth| (1 when both are empty)."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel contour of a binary mask: pixels whose right, lower or lower-right
    neighbour differs (DAVIS's ``seg2bmap`` at the mask's own resolution)."""
    seg = mask.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_f(pred: np.ndarray, truth: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """F of one frame: the harmonic mean of contour precision and recall, matching within
    a disk of ``ceil(bound_th * diagonal)`` pixels."""
    pb, tb = boundary_map(pred), boundary_map(truth)
    radius = max(1, math.ceil(bound_th * math.hypot(*pred.shape[:2])))
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = (x * x + y * y <= radius * radius).astype(np.uint8)  # skimage's disk(r), as DAVIS uses
    n_pred, n_truth = pb.sum(), tb.sum()
    if n_pred == 0 and n_truth == 0:
        return 1.0
    if n_pred == 0 or n_truth == 0:
        return 0.0
    truth_near = cv2.dilate(tb.astype(np.uint8), disk).astype(bool)
    pred_near = cv2.dilate(pb.astype(np.uint8), disk).astype(bool)
    precision = (pb & truth_near).sum() / n_pred
    recall = (tb & pred_near).sum() / n_truth
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def video_jf(pred: np.ndarray, truth: np.ndarray) -> dict:
    """``{J, F, JF}`` of one object through a video: ``pred`` and ``truth`` (T, H, W)
    binary, each the mean over frames."""
    if pred.shape != truth.shape:
        raise ValueError(f"predicted masks {pred.shape} and true masks {truth.shape} differ in shape")
    j = float(np.mean([region_similarity(p, t) for p, t in zip(pred, truth)]))
    f = float(np.mean([boundary_f(p, t) for p, t in zip(pred, truth)]))
    return {"J": j, "F": f, "JF": (j + f) / 2}


def mean_jf(rows: list[dict]) -> dict:
    """Mean J, F and J&F over per-video results."""
    if not rows:
        return {"J": None, "F": None, "JF": None, "count": 0}
    return {k: float(np.mean([r[k] for r in rows])) for k in ("J", "F", "JF")} | {"count": len(rows)}
