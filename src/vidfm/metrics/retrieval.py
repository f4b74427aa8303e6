"""Retrieval metrics: Recall@K, median and mean rank (1 = best), both directions."""

from __future__ import annotations

import numpy as np
import torch


def ranks(sim: torch.Tensor | np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
    """Rank (1-based) of each query's correct item; ``sim`` is (queries, items) and ``gt``
    the correct item per query (default: the diagonal). Ties count against the query."""
    sim = torch.as_tensor(np.asarray(sim, dtype=np.float32)) if not isinstance(sim, torch.Tensor) else sim.float()
    gt = torch.arange(sim.shape[0]) if gt is None else torch.as_tensor(gt)
    correct = sim[torch.arange(sim.shape[0]), gt]
    return ((sim >= correct[:, None]).sum(1)).numpy()


def recall_metrics(r: np.ndarray, ks=(1, 5, 10)) -> dict:
    out = {f"R@{k}": float(np.mean(r <= k)) for k in ks}
    out.update(MdR=float(np.median(r)), MnR=float(np.mean(r)))
    return out


def retrieval_metrics(sim: torch.Tensor | np.ndarray, ks=(1, 5, 10)) -> dict:
    """``sim[i, j]``: similarity of text i and video j, text i describing video i.
    Returns ``t2v_*`` and ``v2t_*`` recalls and ranks, plus ``rsum`` (sum of all recalls)."""
    sim = torch.as_tensor(np.asarray(sim)) if not isinstance(sim, torch.Tensor) else sim
    out = {}
    for name, s in (("t2v", sim), ("v2t", sim.t())):
        out.update({f"{name}_{k}": v for k, v in recall_metrics(ranks(s), ks).items()})
    out["rsum"] = float(sum(v for k, v in out.items() if "_R@" in k))
    return out
