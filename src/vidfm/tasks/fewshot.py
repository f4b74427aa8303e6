"""Few-shot evaluation on frozen features: N-way K-shot episodes, as the few-shot video
literature reports them (CMN, OTAM, TRX: mean accuracy over 600+ episodes, 95 % interval).

An episode draws N classes, K labelled *support* clips and ``queries`` *query* clips per
class, all distinct. Two classifiers are fitted on the support features alone and scored
on the queries of the same episode, so they see exactly the same labels:

* **prototypes** (Snell et al., 2017): each class is the mean of its L2-normalised support
  features; a query takes the nearest (squared Euclidean) prototype;
* **linear probe**: multinomial logistic regression (L-BFGS, L2) on the support features:
  the usual baseline at the same label budget.

Features come once per clip from any vidfm encoder (a classifier's, a pre-training run's,
a transformers VideoMAE/TimeSformer or an image tower), its pooled vector.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from vidfm.errors import ConfigError, DatasetError


def parse_spec(spec: str) -> tuple[int, int]:
    """``"5way-5shot"`` -> (5, 5)."""
    m = re.fullmatch(r"\s*(\d+)\s*-?\s*way\s*-?\s*(\d+)\s*-?\s*shot\s*", spec, re.IGNORECASE)
    if not m or int(m[1]) < 2 or int(m[2]) < 1:
        raise ConfigError(f"--few-shot {spec!r}: expected N-way K-shot like '5way-1shot' or '5way-5shot' (N >= 2, K >= 1)")
    return int(m[1]), int(m[2])


def sample_episodes(labels, n_way: int, k_shot: int, queries: int, episodes: int, seed: int = 0) -> list[dict]:
    """Episodes ``{"classes", "support", "query"}`` over item indices; ``support`` / ``query``
    are lists of (index, episode label 0..N-1), class by class. Only classes with at least
    ``k_shot + queries`` items take part."""
    labels = np.asarray(labels)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    eligible = sorted(c for c, idx in by_class.items() if len(idx) >= k_shot + queries)
    if len(eligible) < n_way:
        raise DatasetError(f"{n_way}-way {k_shot}-shot with {queries} queries needs {n_way} classes of at least {k_shot + queries} "
                           f"videos; the data has {len(eligible)} such classes (use fewer --queries or a smaller N)")  # fmt: skip
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        classes = rng.choice(eligible, n_way, replace=False)
        support, query = [], []
        for j, c in enumerate(classes):
            picked = rng.choice(by_class[c], k_shot + queries, replace=False)
            support += [(int(i), j) for i in picked[:k_shot]]
            query += [(int(i), j) for i in picked[k_shot:]]
        out.append({"classes": [c.item() if hasattr(c, "item") else c for c in classes], "support": support, "query": query})
    return out


def prototype_predict(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, n_way: int) -> torch.Tensor:
    s, q = F.normalize(support, dim=1), F.normalize(query, dim=1)
    protos = torch.stack([s[support_y == j].mean(0) for j in range(n_way)])
    return torch.cdist(q, protos).argmin(1)


def probe_predict(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, n_way: int, l2: float = 1e-2) -> torch.Tensor:
    mean, std = support.mean(0), support.std(0, unbiased=False) + 1e-6  # standardised on the support set only
    s, q = (support - mean) / std, (query - mean) / std
    w = torch.zeros(s.shape[1], n_way, requires_grad=True)
    b = torch.zeros(n_way, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=25, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(s @ w + b, support_y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (q @ w + b).argmax(1)


def mean_ci95(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"accuracy": float(v.mean()), "ci95": float(1.96 * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")}


def few_shot_eval(features, labels, spec: str = "5way-5shot", episodes: int = 600, queries: int = 15, seed: int = 0) -> dict:
    """Mean episode accuracy and 95 % interval of prototypes and of the linear probe on the
    same episodes. ``features (n, d)``, ``labels`` (n,) any hashable class ids."""
    n_way, k_shot = parse_spec(spec)
    feats = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    eps = sample_episodes(labels, n_way, k_shot, queries, episodes, seed)
    proto, probe = [], []
    for ep in eps:
        si, sy = zip(*ep["support"])
        qi, qy = zip(*ep["query"])
        s, q = feats[list(si)], feats[list(qi)]
        sy, qy = torch.tensor(sy), torch.tensor(qy)
        proto.append(float((prototype_predict(s, sy, q, n_way) == qy).float().mean()))
        probe.append(float((probe_predict(s, sy, q, n_way) == qy).float().mean()))
    return {"n_way": n_way, "k_shot": k_shot, "queries": queries, "episodes": episodes, "chance": 1.0 / n_way,
            "prototypes": mean_ci95(proto), "linear_probe": mean_ci95(probe)}  # fmt: skip


@torch.no_grad()
def encode_clips(encoder, dataset, batch_size: int = 16, progress=None) -> tuple[np.ndarray, list]:
    """Pooled features and labels of every readable clip of ``dataset`` (a ``VideoDataset``
    with labels)."""
    from torch.utils.data import DataLoader

    from vidfm.data.datasets import collate_readable

    encoder.eval()
    feats, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_readable)
    for batch in progress(loader) if progress else loader:
        if batch is None:
            continue
        feats.append(encoder(batch["video"]).pooled.float())
        labels += batch["label"].tolist()
    if not feats:
        raise DatasetError("no clip could be decoded")
    return torch.cat(feats).numpy(), labels
