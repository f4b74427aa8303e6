"""Classification metrics from logits and labels."""

from __future__ import annotations

import numpy as np
import torch


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """top-1, top-5 (top-k for k <= classes), mean per-class accuracy, per-class accuracy
    and the confusion matrix (rows: true class, columns: predicted)."""
    labels = labels.long().cpu()
    logits = logits.float().cpu()
    k = min(5, num_classes)
    topk = logits.topk(k, dim=1).indices
    pred = topk[:, 0]
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels.numpy(), pred.numpy()), 1)
    support = confusion.sum(1)
    per_class = np.divide(np.diag(confusion), support, out=np.full(num_classes, np.nan), where=support > 0)
    return {
        "accuracy": float((pred == labels).float().mean()) if len(labels) else 0.0,
        f"top{k}": float((topk == labels[:, None]).any(1).float().mean()) if len(labels) else 0.0,
        "mean_class_accuracy": float(np.nanmean(per_class)) if np.isfinite(per_class).any() else 0.0,
        "per_class_accuracy": per_class.tolist(),
        "confusion": confusion.tolist(),
        "count": int(len(labels)),
    }


def plot_confusion(confusion, classes, path, title: str = "confusion matrix") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(confusion, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
