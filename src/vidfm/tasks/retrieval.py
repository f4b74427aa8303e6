"""Text-video retrieval evaluation and zero-shot classification with a saved model."""

from __future__ import annotations

import time

import numpy as np
import torch

from vidfm.errors import ConfigError, DatasetError, VideoDecodeError
from vidfm.metrics.collapse import spread_metrics
from vidfm.metrics.retrieval import retrieval_metrics
from vidfm.retrieval.embedder import Embedder

TEMPLATES = ("a video of {}", "a video of something that is {}", "{}")


def embed_videos(embedder: Embedder, paths, batch_size: int = 32, progress=None, skipped: dict | None = None) -> np.ndarray:
    """(N, E) unit vectors, one per readable whole video (frames spread over the video).
    A video that cannot be decoded is left out and recorded in ``skipped`` (path -> why);
    without ``skipped`` it raises."""
    out, batch = [], []
    for p in progress(paths) if progress else paths:
        try:
            batch.append(embedder.read(p)[1][0])
        except VideoDecodeError as e:
            if skipped is None:
                raise
            skipped[str(p)] = e.problem
            continue
        if len(batch) == batch_size:
            out.append(embedder.encode_clips(torch.stack(batch)))
            batch = []
    if batch:
        out.append(embedder.encode_clips(torch.stack(batch)))
    if not out:
        raise DatasetError(f"none of the {len(paths)} videos could be decoded")
    return np.concatenate(out)


def evaluate_retrieval(embedder: Embedder, records: list[dict], progress=None) -> dict:
    """R@1/5/10, median and mean rank both ways; each video's query is its first caption
    (the MSR-VTT 1k-A protocol: one sentence per video). Unreadable videos are dropped
    (and listed in ``skipped``), never replaced."""
    if not embedder.has_text:
        raise ConfigError(f"{embedder.folder}: retrieval needs a video-text model (vidfm pretrain --objective contrastive)")
    started = time.perf_counter()
    skipped: dict = {}
    v = embed_videos(embedder, [r["path"] for r in records], progress=progress, skipped=skipped)
    records = [r for r in records if r["path"] not in skipped]
    t = np.concatenate([embedder.encode_text([r["captions"][0] for r in records[i : i + 256]]) for i in range(0, len(records), 256)])
    metrics = {**retrieval_metrics(t @ v.T), **spread_metrics(v, "embedding")}
    metrics.update(videos=len(records), seconds=time.perf_counter() - started, skipped=sorted(skipped))
    return metrics


def label_prompts(labels, templates=TEMPLATES) -> list[list[str]]:
    return [[tpl.format(label.replace("_", " ")) for tpl in templates] for label in labels]


def zero_shot_classifier(embedder: Embedder, labels, templates=TEMPLATES) -> np.ndarray:
    """(num_labels, E): each label's prompts embedded and averaged (prompt ensembling)."""
    if not labels:
        raise ConfigError("zero-shot classification needs at least one label")
    rows = []
    for prompts in label_prompts(labels, templates):
        e = embedder.encode_text(prompts).mean(0)
        rows.append(e / np.linalg.norm(e))
    return np.stack(rows)


def zero_shot(embedder: Embedder, paths, labels, templates=TEMPLATES, progress=None, skipped: dict | None = None) -> np.ndarray:
    """(N, num_labels) cosine scores of each (readable) video against each label's prompts."""
    return embed_videos(embedder, paths, progress=progress, skipped=skipped) @ zero_shot_classifier(embedder, labels, templates).T


def zero_shot_accuracy(embedder: Embedder, records: list[dict], labels, templates=TEMPLATES, progress=None) -> dict:
    skipped: dict = {}
    scores = zero_shot(embedder, [r["path"] for r in records], labels, templates, progress, skipped)
    gold = np.array([r["label"] for r in records if r["path"] not in skipped])
    top5 = np.argsort(-scores, 1)[:, :5]
    return {"accuracy": float((scores.argmax(1) == gold).mean()), "top5": float((top5 == gold[:, None]).any(1).mean()),
            "chance": 1 / len(labels), "videos": len(records)}  # fmt: skip
