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


def prototype_logits(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, n_way: int) -> torch.Tensor:
    """Minus each query's squared distance to each class's mean support feature."""
    protos = torch.stack([support[support_y == j].mean(0) for j in range(n_way)])
    return -torch.cdist(query, protos).pow(2)


def prototype_predict(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, n_way: int) -> torch.Tensor:
    return prototype_logits(F.normalize(support, dim=1), support_y, F.normalize(query, dim=1), n_way).argmax(1)


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


# -- episodic fine-tuning (meta-learning) and consistency regularisation --------------------
class EpisodeData(torch.utils.data.Dataset):
    """N-way K-shot episodes as dataset items (the Trainer runs one episode per step): clips
    decoded once, ``(N, T, C, H, W)`` in [0, 1], augmented on the fly with ``transform``.
    With ``unlabeled`` clips, each episode also carries ``unlabeled_per_episode`` of them in
    a weak and a strong view, for consistency regularisation. Episode ``i`` of epoch ``e``
    is the same in every run with the same seed."""

    def __init__(self, clips: torch.Tensor, labels, n_way: int, k_shot: int, queries: int, episodes: int, *, seed: int = 0,
                 transform=None, unlabeled: torch.Tensor | None = None, unlabeled_per_episode: int = 0, strong=None):  # fmt: skip
        self.clips, self.labels = clips, np.asarray(labels)
        self.n_way, self.k_shot, self.queries, self.episodes, self.seed = n_way, k_shot, queries, episodes, seed
        self.transform, self.strong = transform, strong
        self.unlabeled, self.unlabeled_per_episode = unlabeled, unlabeled_per_episode if unlabeled is not None else 0
        self.epoch = 0
        sample_episodes(self.labels, n_way, k_shot, queries, 1, seed)  # fails now, with a clear message, if the data cannot

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.episodes

    def __getitem__(self, i: int) -> dict:
        seed = (self.seed * 1_000_003 + self.epoch * 10_007 + i) % 2**32
        ep = sample_episodes(self.labels, self.n_way, self.k_shot, self.queries, 1, seed)[0]
        g = torch.Generator().manual_seed(seed)

        def view(clip, transform):
            return transform(clip, g) if transform is not None else clip

        out = {key: torch.stack([view(self.clips[j], self.transform) for j, _ in ep[key]]) for key in ("support", "query")}
        out |= {f"{key}_y": torch.tensor([y for _, y in ep[key]]) for key in ("support", "query")}
        if self.unlabeled_per_episode:
            picks = torch.randperm(len(self.unlabeled), generator=g)[: self.unlabeled_per_episode]
            out["weak"] = torch.stack([view(self.unlabeled[j], self.transform) for j in picks])
            out["strong"] = torch.stack([view(self.unlabeled[j], self.strong) for j in picks])
        return out


class EpisodicLearner(torch.nn.Module):
    """An encoder trained as a prototypical network: each episode's queries are classified
    by their squared distance to the support prototypes (unit features, / temperature).
    ``consistency`` > 0 adds the KL divergence between the prototype assignments of a weak
    and a strong view of unlabeled clips (the weak one as the fixed target)."""

    def __init__(self, encoder, consistency: float = 0.0, temperature: float = 0.1):
        super().__init__()
        self.encoder, self.consistency, self.temperature = encoder, consistency, temperature

    def logits(self, support_feats, support_y, feats, n_way: int) -> torch.Tensor:
        return prototype_logits(support_feats, support_y, feats, n_way) / self.temperature

    def forward(self, episode: dict) -> tuple[torch.Tensor, dict]:
        parts = [episode["support"], episode["query"]] + ([episode["weak"], episode["strong"]] if "weak" in episode else [])
        feats = F.normalize(self.encoder(torch.cat(parts)).pooled.float(), dim=-1)  # one pass: one set of BatchNorm statistics
        sizes = [len(p) for p in parts]
        chunks = feats.split(sizes)
        sy, n_way = episode["support_y"], int(episode["support_y"].max()) + 1
        query_logits = self.logits(chunks[0], sy, chunks[1], n_way)
        loss = F.cross_entropy(query_logits, episode["query_y"])
        logs = {"episode_accuracy": float((query_logits.argmax(1) == episode["query_y"]).float().mean())}
        if "weak" in episode and self.consistency > 0:
            target = self.logits(chunks[0], sy, chunks[2], n_way).softmax(1).detach()
            consistency = F.kl_div(self.logits(chunks[0], sy, chunks[3], n_way).log_softmax(1), target, reduction="batchmean")
            loss = loss + self.consistency * consistency
            logs["consistency"] = float(consistency.detach())
        return loss, logs


def _episode_loss(model, batch, generator=None):
    return model(batch)


def _episode_eval(model, loader, accelerator=None) -> dict:
    inner = accelerator.unwrap_model(model) if accelerator is not None else model
    accs = []
    for episode in loader:
        _, logs = inner({k: v for k, v in episode.items() if k not in ("weak", "strong")})
        accs.append(logs["episode_accuracy"])
    return {"accuracy": float(np.mean(accs))}


def load_clips(records: list[dict], num_frames: int, size: int, progress=None) -> tuple[torch.Tensor, list]:
    """Every readable clip of ``records`` (8 frames spread over the video) in memory."""
    from vidfm.data.datasets import VideoDataset, collate_readable
    from vidfm.data.transforms import eval_transform

    ds = VideoDataset(records, num_frames=num_frames, decode_size=(size, size), sampler="segments", transform=eval_transform(size))
    loader = torch.utils.data.DataLoader(ds, batch_size=16, collate_fn=collate_readable)
    clips, labels = [], []
    for batch in progress(loader) if progress else loader:
        if batch is not None:
            clips.append(batch["video"])
            labels += batch["label"].tolist() if "label" in batch else [None] * len(batch["video"])
    if not clips:
        raise DatasetError("no clip could be decoded")
    return torch.cat(clips), labels


def episodic_finetune(encoder, data, *, train_config, spec: str = "5way-5shot", classes=None, queries: int = 5, episodes: int = 100,
                      consistency: float = 0.0, unlabeled_per_episode: int = 16, resume: bool = True, progress=None) -> dict:  # fmt: skip
    """Fine-tune ``encoder`` (a vidfm encoder) episode by episode on the labelled training
    videos of ``data`` (only ``classes``, by name, when given: the base classes, leaving the
    others novel), validating on fixed episodes of its val videos of the same classes.
    With ``consistency`` > 0, all training videos (any class, labels unused) are the
    unlabeled pool. RUN/best is a plain encoder folder."""
    from vidfm.data.datasets import DataSource
    from vidfm.data.transforms import train_transform
    from vidfm.models import save_encoder
    from vidfm.training import Trainer

    n_way, k_shot = parse_spec(spec)
    source = DataSource(data)
    train_r, names = source.classification("train")
    val_r, _ = source.classification("val")
    keep = set(range(len(names))) if not classes else known_classes(classes, names)
    frames, size = encoder.config.num_frames, encoder.config.image_size
    if consistency > 0:  # every training video is also unlabeled: decode each once
        unlabeled, all_labels = load_clips(train_r, frames, size, progress)
        clips, labels = unlabeled[torch.tensor([y in keep for y in all_labels])], [y for y in all_labels if y in keep]
    else:
        (clips, labels), unlabeled = load_clips([r for r in train_r if r["label"] in keep], frames, size, progress), None
    val_clips, val_labels = load_clips([r for r in val_r if r["label"] in keep], frames, size, progress) if val_r else (None, [0])
    world = source.is_world  # never flip a world: its labels name directions
    weak = train_transform(size, scale=(0.6, 1.0), flip=not world, occlusion=False)
    strong = train_transform(size, scale=(0.35, 1.0), flip=not world, occlusion=True)
    train = EpisodeData(clips, labels, n_way, k_shot, queries, episodes, seed=train_config.seed, transform=weak,
                        unlabeled=unlabeled, unlabeled_per_episode=unlabeled_per_episode, strong=strong)  # fmt: skip
    val_queries = max(1, min(queries, min(np.bincount(val_labels)[sorted(set(val_labels))]) - k_shot))
    try:
        val = EpisodeData(val_clips, val_labels, n_way, k_shot, val_queries, 30, seed=train_config.seed + 1)
    except DatasetError as e:  # a small val split: train anyway, keep the last weights
        import warnings

        warnings.warn(f"no validation episodes ({e}); OUT/best holds the last weights", stacklevel=2)
        val = None
    train_config.batch_size, train_config.metric, train_config.metric_mode = 1, "accuracy", "max"
    train_config.extra = {"task": "fewshot", "spec": spec, "classes": sorted(names[c] for c in keep), "queries": queries, "episodes": episodes,
                          "consistency": consistency, "unlabeled_per_episode": unlabeled_per_episode}  # fmt: skip
    model = EpisodicLearner(encoder, consistency)
    trainer = Trainer(model, train_config, train, _episode_loss, val_dataset=val, evaluate_fn=_episode_eval,
                      save_fn=lambda m, path: save_encoder(m.encoder, path), collate_fn=lambda items: items[0])  # fmt: skip
    summary = trainer.fit(resume=resume)
    summary["classes"] = train_config.extra["classes"]
    return summary


def known_classes(classes, names) -> set[int]:
    """The indices of ``classes`` (names) in ``names``; an unknown name is an error."""
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ConfigError(f"unknown classes {unknown}; the data has {names}")
    return {names.index(c) for c in classes}
