"""Video classification: train, evaluate and predict with any encoder and adaptation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfm.adapt import apply_adaptation, encoder_is_frozen, trainable_parameters
from vidfm.data.datasets import (
    DataSource,
    VideoDataset,
    collate_readable,
    readable_batches,
    split_off_validation,
)
from vidfm.data.transforms import cutmix, eval_transform, mixup, train_transform
from vidfm.errors import ConfigError, DatasetError
from vidfm.metrics.classification import classification_metrics, plot_confusion
from vidfm.metrics.collapse import spread_metrics
from vidfm.models import ENCODER_CLASSES, VideoEncoder, resolve_encoder
from vidfm.training import TrainConfig, Trainer

META = "classifier.json"
HEAD = "head.safetensors"


class VideoClassifier(nn.Module):
    """An encoder, a dropout + linear head on its pooled vector, and the class names."""

    def __init__(self, encoder: VideoEncoder, classes: list[str], dropout: float = 0.0):
        super().__init__()
        if len(classes) < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, got {classes}")
        self.encoder = encoder
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.output_dim, len(classes)))
        self.classes = list(classes)
        self.dropout = dropout
        self.adaptation: dict | None = None
        self.compression: dict | None = None  # set by vidfm.compress (pruned shapes, token merging)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(video).pooled)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and encoder_is_frozen(self):
            self.encoder.eval()  # linear probe: frozen BatchNorm statistics and dropout
        return self

    @property
    def num_frames(self) -> int:
        return self.encoder.config.num_frames

    @property
    def image_size(self) -> int:
        return self.encoder.config.image_size

    def save_pretrained(self, path) -> Path:
        """The encoder as an ordinary encoder folder (``config.json``, ``model.safetensors``
        and ``adaptation.json`` if adapted: ``load_encoder`` opens it for transfer or
        search), plus ``head.safetensors`` and ``classifier.json`` (classes, dropout,
        adaptation)."""
        from safetensors.torch import save_file

        from vidfm.files import atomic_save_dir
        from vidfm.models import save_encoder

        def write(d: Path):
            save_encoder(getattr(self.encoder, "merged_encoder", self.encoder), d)
            save_file({k: v.detach().contiguous().clone() for k, v in self.head.state_dict().items()}, d / HEAD)
            meta = {"classes": self.classes, "dropout": self.dropout, "adaptation": self.adaptation}
            if self.compression:
                meta["compression"] = self.compression
            (d / META).write_text(json.dumps(meta, indent=2))

        atomic_save_dir(Path(path), write)
        return Path(path)

    @classmethod
    def from_pretrained(cls, path) -> "VideoClassifier":
        from safetensors.torch import load_file

        from vidfm.files import model_folder
        from vidfm.models import load_encoder

        path = model_folder(path, META)
        if not (path / META).exists():
            raise ConfigError(f"{path}: not a saved classifier (no {META}); train one with 'vidfm train classify'")
        try:
            meta = json.loads((path / META).read_text())
        except json.JSONDecodeError:
            raise ConfigError(f"{path / META}: not valid JSON") from None
        if meta.get("compression"):
            from vidfm.compress.load import load_compressed_classifier

            return load_compressed_classifier(cls, path, meta, HEAD)
        if not (path / HEAD).exists():
            return cls._from_single_file(path, meta)
        model = cls(load_encoder(path, merge_lora=False), meta["classes"], meta.get("dropout", 0.0))
        model.adaptation = meta.get("adaptation")
        try:
            model.head.load_state_dict(load_file(path / HEAD))
        except RuntimeError as e:
            raise ConfigError(f"{path / HEAD}: does not fit {len(meta['classes'])} classes ({str(e).splitlines()[0][:120]})") from None
        return model.eval()

    @classmethod
    def _from_single_file(cls, path: Path, meta: dict) -> "VideoClassifier":
        """Classifiers saved before the encoder had a folder of its own: one
        ``model.safetensors`` holding ``encoder.*`` and ``head.*``."""
        from safetensors.torch import load_file

        from vidfm.models.attention import upgrade_attention_keys

        model_type = json.loads((path / "config.json").read_text()).get("model_type")
        if model_type not in ENCODER_CLASSES:
            raise ConfigError(f"{path}: holds a {model_type!r} model, not a vidfm video encoder")
        encoder_cls = ENCODER_CLASSES[model_type]
        model = cls(encoder_cls(encoder_cls.config_class.from_pretrained(str(path))), meta["classes"], meta.get("dropout", 0.0))
        if meta.get("adaptation"):
            apply_adaptation(model, **meta["adaptation"])
        try:
            model.load_state_dict(upgrade_attention_keys(load_file(path / "model.safetensors")))
        except (RuntimeError, OSError) as e:
            raise ConfigError(f"{path}: weights do not match the saved configuration ({str(e).splitlines()[0][:120]})") from None
        return model.eval()


# -- data ----------------------------------------------------------------------------------
def classification_datasets(
    data, val=None, *, num_frames=8, size=64, sampler="segments", augment=True, val_fraction=0.15, seed=0, on_error="skip"
):
    """``(train, val, test_or_None, classes)`` from a synthetic world folder, a CSV
    (``path,label``) or a folder-per-class tree; ``val`` overrides the validation data."""
    source = DataSource(data)
    common = dict(num_frames=num_frames, decode_size=(size, size), on_error=on_error, seed=seed, sampler=sampler)
    # horizontal flips swap "left" and "right": never flip a world whose labels have directions
    tf_train = train_transform(size, scale=(0.7, 1.0), flip=not source.is_world, occlusion=False) if augment else None
    records, classes = source.classification("train")
    test = None
    if val is not None:
        train_records, val_records = records, DataSource(val).classification("val", classes=classes)[0]
    elif source.is_world:
        train_records, val_records = records, source.classification("val")[0]
        test = VideoDataset(source.classification("test")[0], transform=eval_transform(size), **common)
    else:
        train_records, val_records = split_off_validation(records, val_fraction, seed)
    if not train_records or not val_records:
        raise DatasetError(f"{data}: need at least one training and one validation video")
    train = VideoDataset(train_records, train=True, transform=tf_train, **common)
    return train, VideoDataset(val_records, transform=eval_transform(size), **common), test, classes


# -- objective and evaluation --------------------------------------------------------------
def make_loss_fn(num_classes: int, label_smoothing: float = 0.0, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, mix_prob: float = 1.0):
    """Cross-entropy (label smoothing) with optional MixUp/CutMix drawn from the trainer's
    generator ``g`` (checkpointed, so a resumed run mixes the same pairs)."""

    def loss_fn(model, batch, g: torch.Generator):
        video, labels = batch["video"], batch["label"]
        use_mix = (mixup_alpha > 0 or cutmix_alpha > 0) and float(torch.rand((), generator=g)) < mix_prob
        if use_mix:
            use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or float(torch.rand((), generator=g)) < 0.5)
            fn, alpha = (cutmix, cutmix_alpha) if use_cutmix else (mixup, mixup_alpha)
            video, soft, _ = fn(video, labels, num_classes, alpha, g)
            soft = soft.to(video.device)
            if label_smoothing:
                soft = soft * (1 - label_smoothing) + label_smoothing / num_classes
            logits = model(video)
            loss = torch.sum(-soft * F.log_softmax(logits.float(), -1), -1).mean()
            return loss, {}
        logits = model(video)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
        return loss, {"train_acc": float((logits.argmax(-1) == labels).float().mean())}

    return loss_fn


def evaluate_fn_for(num_classes: int):
    def evaluate_fn(model, loader, accelerator):
        logits, labels = [], []
        for batch in readable_batches(loader):
            out = model(batch["video"])
            out, lab = accelerator.gather_for_metrics((out.float(), batch["label"]))
            logits.append(out.cpu())
            labels.append(lab.cpu())
        logits, labels = torch.cat(logits), torch.cat(labels)
        metrics = classification_metrics(logits, labels, num_classes)
        metrics["loss"] = float(F.cross_entropy(logits, labels))
        return {**metrics, **spread_metrics(logits, "logit")}

    return evaluate_fn


def train_classifier(
    data,
    encoder: str = "r2plus1d-tiny",
    *,
    train_config: TrainConfig,
    val=None,
    adaptation: str = "full",
    adaptation_options: dict | None = None,
    num_frames: int = 8,
    size: int = 64,
    dropout: float = 0.0,
    drop_path: float = 0.0,
    label_smoothing: float = 0.0,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    on_error: str = "skip",
    limit_train: int | None = None,
    resume: bool = True,
) -> dict:
    """Train a classifier end to end; the best weights land in ``output_dir/best``."""
    train, val_ds, test, classes = classification_datasets(data, val, num_frames=num_frames, size=size, seed=train_config.seed, on_error=on_error)
    if limit_train:
        train = _subset(train, limit_train, classes, train_config.seed)
    overrides = {"num_frames": num_frames, "image_size": size}
    if drop_path:
        overrides["drop_path_rate"] = drop_path
    torch.manual_seed(train_config.seed)  # a fresh encoder's initialisation follows the run's seed
    enc = resolve_encoder(encoder, **overrides)
    model = VideoClassifier(enc, classes, dropout)
    apply_adaptation(model, adaptation, **(adaptation_options or {}))
    params = trainable_parameters(model)
    train_config.extra = {
        "task": "classify", "data": str(data), "encoder": encoder, "adaptation": adaptation,
        "adaptation_options": adaptation_options or {}, "num_frames": num_frames, "size": size, "classes": classes,
    }  # fmt: skip
    trainer = Trainer(
        model,
        train_config,
        train,
        make_loss_fn(len(classes), label_smoothing, mixup_alpha, cutmix_alpha),
        val_dataset=val_ds,
        evaluate_fn=evaluate_fn_for(len(classes)),
        save_fn=lambda m, path: m.save_pretrained(path),
    )
    summary = trainer.fit(resume=resume)
    summary.update(params=params, classes=classes, train_videos=len(train), val_videos=len(val_ds), skipped_videos=sorted(train.skipped | val_ds.skipped))
    return summary


def _subset(dataset: VideoDataset, per_class: int, classes, seed: int) -> VideoDataset:
    """At most ``per_class`` training videos per class (few-label experiments)."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(classes)):
        idx = [i for i, r in enumerate(dataset.records) if r["label"] == c]
        keep += list(rng.permutation(idx)[:per_class])
    kw = {k: getattr(dataset, k) for k in ("num_frames", "sampler", "stride", "transform", "temporal", "decode_size", "train", "on_error", "seed")}
    return VideoDataset([dataset.records[i] for i in sorted(keep)], **kw)


def evaluate_classifier(model: VideoClassifier, dataset: VideoDataset, batch_size: int = 16, progress=None) -> dict:
    from torch.utils.data import DataLoader

    model.eval()
    logits, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_readable)
    started = time.perf_counter()
    with torch.no_grad():
        for batch in readable_batches(progress(loader) if progress else loader):
            logits.append(model(batch["video"]))
            labels.append(batch["label"])
    if not logits:
        raise DatasetError(f"none of the {len(dataset)} videos could be decoded")
    logits = torch.cat(logits)
    metrics = {**classification_metrics(logits, torch.cat(labels), len(model.classes)), **spread_metrics(logits, "logit")}
    metrics["skipped"] = sorted(dataset.skipped)
    metrics["seconds"] = time.perf_counter() - started
    metrics["per_class_accuracy"] = dict(zip(model.classes, metrics["per_class_accuracy"]))
    return metrics


def predict(model: VideoClassifier, video_path, top: int = 5, sampler: str = "segments") -> list[tuple[str, float]]:
    """Top-``top`` (label, probability) for one video file."""
    clip = predict_inputs(model, video_path, sampler)[None]
    with torch.no_grad():
        probs = model.eval()(clip).softmax(-1)[0]
    return [(r["label"], r["probability"]) for r in top_labels(model, probs, top)]


def predict_inputs(model: VideoClassifier, video_path, sampler: str = "segments") -> torch.Tensor:
    """The clip (T, C, H, W) the classifier sees for one video file."""
    dataset = VideoDataset([{"path": str(video_path)}], num_frames=model.num_frames, sampler=sampler,
                           decode_size=(model.image_size, model.image_size), on_error="raise")  # fmt: skip
    return dataset[0]["video"]


def top_labels(model: VideoClassifier, probs: torch.Tensor, top: int) -> list[dict]:
    """``[{label, probability}]`` of the ``top`` classes of one video's (K,) probabilities."""
    values, idx = probs.topk(min(top, len(model.classes)))
    return [{"label": model.classes[i], "probability": float(v)} for v, i in zip(values, idx)]


def plot_confusion_for(metrics: dict, classes, path) -> None:
    plot_confusion(metrics["confusion"], classes, path, title=f"top-1 {metrics['accuracy']:.3f}")


__all__ = ["VideoClassifier", "classification_datasets", "evaluate_classifier", "predict", "train_classifier"]
