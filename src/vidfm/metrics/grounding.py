"""Temporal grounding metrics: temporal IoU, R@1 at IoU thresholds, mean IoU."""

from __future__ import annotations

import numpy as np


def temporal_iou(a, b) -> np.ndarray:
    """IoU of (N, 2) [start, end] intervals ``a`` and ``b`` row by row (any time unit)."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    inter = np.clip(np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    union = np.maximum(a[:, 1], b[:, 1]) - np.minimum(a[:, 0], b[:, 0])
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def grounding_metrics(pred, gt, thresholds=(0.3, 0.5, 0.7)) -> dict:
    """``R@1,IoU=t`` for each threshold and ``mIoU`` over (N, 2) predictions and truths."""
    iou = temporal_iou(pred, gt)
    out = {f"R@1,IoU={t}": float((iou >= t).mean()) for t in thresholds}
    out["mIoU"] = float(iou.mean())
    return out
