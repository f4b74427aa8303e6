"""Pre-train an encoder with one objective (mvm, simclr, moco, triplet, contrastive) on unlabeled
videos or captioned videos, with the one trainer.

The best weights land in ``RUN/best`` as a plain encoder folder (``load_encoder`` and
``vidfm train classify --encoder RUN`` read it), with ``pretrain.json`` saying how it was
made and ``objective.safetensors`` holding the objective's own head (decoder, projection);
a video-text run also holds its projections and temperature (``VideoTextModel``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vidfm.data.datasets import (
    DataSource,
    VideoDataset,
    readable_batches,
    split_off_validation,
)
from vidfm.data.transforms import eval_transform, train_transform
from vidfm.errors import ConfigError
from vidfm.files import atomic_save_dir
from vidfm.metrics.collapse import spread_metrics
from vidfm.models import resolve_encoder
from vidfm.objectives import (
    ContrastiveVideoModel,
    MaskedVideoModel,
    TwoViews,
    VideoTextModel,
    nt_xent,
    tube_mask,
)
from vidfm.objectives.contrastive import contrastive_loss_fn
from vidfm.objectives.mvm import mvm_loss_fn
from vidfm.objectives.video_text import video_text_loss_fn
from vidfm.training import TrainConfig, Trainer

OBJECTIVES = ("mvm", "simclr", "moco", "triplet", "contrastive")
TWO_VIEWS = ("simclr", "moco", "triplet")


# -- data ----------------------------------------------------------------------------------
def pretrain_datasets(data, objective: str, *, num_frames=8, size=64, seed=0, on_error="skip", val=None):
    """(train, val) datasets for an objective. Worlds use their own val split; other data
    keep 10 % aside (or ``val``, a folder/CSV/JSONL of the same kind)."""
    source = DataSource(data)
    world = source.is_world
    common = dict(num_frames=num_frames, decode_size=(size, size), on_error=on_error, sampler="segments")
    # never flip a world: its captions and labels name directions
    tf_train = train_transform(size, scale=(0.5, 1.0) if objective in TWO_VIEWS else (0.8, 1.0), flip=not world, occlusion=False)
    tf_eval = eval_transform(size)
    records = (lambda src, split: src.captions(split)) if objective == "contrastive" else (lambda src, split: src.videos(split))
    train_r = records(source, "train")
    val_r = records(source, "val") if world else (records(DataSource(val), "val") if val else None)
    if val_r is None:
        train_r, val_r = split_off_validation(train_r, 0.1, seed)

    def make(records, train, seed_offset=0):
        return VideoDataset(records, train=train, transform=tf_train if train else tf_eval, seed=seed + seed_offset, **common)

    if objective in TWO_VIEWS:
        return TwoViews(make(train_r, True), make(train_r, True, 7919)), (TwoViews(make(val_r, False), make(val_r, True, 104729)) if val_r else None)
    return make(train_r, True), (make(val_r, False) if val_r else None)


# -- models --------------------------------------------------------------------------------
def build_objective(objective: str, encoder, **options):
    if objective == "mvm":
        return MaskedVideoModel(encoder, mask_ratio=options.get("mask_ratio", 0.9), decoder_depth=options.get("decoder_depth", 2))
    if objective in TWO_VIEWS:
        kw = {k: options[k] for k in ("proj_dim", "temperature", "queue_size", "momentum", "margin", "mining") if options.get(k) is not None}
        return ContrastiveVideoModel(encoder, objective, **kw)
    if objective == "contrastive":
        from vidfm.models.text import TextEncoder

        text = TextEncoder(options.get("text_model") or "minilm")
        kw = {k: options[k] for k in ("embed_dim", "temperature", "text_mode", "hard_negative_beta") if options.get(k) is not None}
        return VideoTextModel(encoder, text, **kw)
    raise ConfigError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")


def save_pretrained_objective(model, path, meta: dict) -> None:
    """The encoder as a plain encoder folder + the objective's head + how it was made."""
    if isinstance(model, VideoTextModel):
        model.save_pretrained(path, notes={"pretrain.json": meta})
        return
    from safetensors.torch import save_file

    def write(d: Path):
        model.encoder.save_pretrained(d)
        head = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if not k.startswith(("encoder.", "key_encoder."))}
        save_file(head, d / "objective.safetensors")
        (d / "pretrain.json").write_text(json.dumps(meta, indent=2))

    atomic_save_dir(Path(path), write)


# -- evaluation during training ------------------------------------------------------------
def _validation_loss(model, loader, accelerator) -> dict:
    """Mean loss on held-out videos with fixed masks/views (lower is better), comparable
    across epochs: MVM with fixed masks; SimCLR and MoCo both as NT-Xent between the two
    views (MoCo's queue fills up during training, so its own loss would rise as it learns)."""
    inner = accelerator.unwrap_model(model)
    g = torch.Generator().manual_seed(0)
    total, n, features = 0.0, 0, []
    for batch in readable_batches(loader):
        if isinstance(inner, MaskedVideoModel):
            v = batch["video"]
            mask = tube_mask(v.shape[0], inner.encoder.config.grid(*[v.shape[i] for i in (1, 3, 4)]), inner.mask_ratio, g, v.device)
            loss = inner(v, mask)
        else:  # NT-Xent within the batch for both methods: MoCo's own loss depends on its queue
            z = inner.embed(batch["video"])
            loss = nt_xent(z, inner.embed(batch["video2"]), inner.temperature)
            features.append(z.float().cpu())
        total += float(loss) * len(batch["video"])
        n += len(batch["video"])
    return {"loss": total / max(n, 1), **(spread_metrics(torch.cat(features), "embedding") if features else {})}


def _retrieval_eval(model, loader, accelerator) -> dict:
    from vidfm.metrics.retrieval import retrieval_metrics

    inner = accelerator.unwrap_model(model)
    videos, texts = [], []
    for batch in readable_batches(loader):
        videos.append(inner.encode_video(batch["video"]).cpu())
        texts.append(inner.encode_text(batch["caption"]).cpu())
    videos = torch.cat(videos)
    return {**retrieval_metrics(torch.cat(texts) @ videos.t()), **spread_metrics(videos, "embedding")}


# -- entry point ---------------------------------------------------------------------------
def pretrain(data, objective: str = "mvm", encoder: str = "videomae-tiny", *, train_config: TrainConfig, num_frames: int = 8,
             size: int = 64, val=None, on_error: str = "skip", resume: bool = True, **options) -> dict:  # fmt: skip
    """Pre-train and return the trainer's summary; see the module docstring for outputs."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    train, val_ds = pretrain_datasets(data, objective, num_frames=num_frames, size=size, seed=train_config.seed, on_error=on_error, val=val)
    torch.manual_seed(train_config.seed)
    enc = resolve_encoder(encoder, num_frames=num_frames, image_size=size)
    model = build_objective(objective, enc, **options)
    if objective == "contrastive":
        train_config.metric, train_config.metric_mode, evaluate = "rsum", "max", _retrieval_eval
    else:
        train_config.metric, train_config.metric_mode, evaluate = "loss", "min", _validation_loss
    meta = {"objective": objective, "encoder": encoder, "data": str(data), "num_frames": num_frames, "size": size,
            "options": {k: v for k, v in options.items() if v is not None}}  # fmt: skip
    train_config.extra = {"task": "pretrain", **meta}
    trainer = Trainer(model, train_config, train, _loss_fn(objective), val_dataset=val_ds, evaluate_fn=evaluate,
                      save_fn=lambda m, path: save_pretrained_objective(m, path, meta))  # fmt: skip
    summary = trainer.fit(resume=resume)
    if objective == "mvm" and val_ds is not None:
        summary["reconstruction_png"] = str(save_reconstruction(trainer.model, val_ds, Path(train_config.output_dir) / "reconstruction.png"))
    from vidfm.adapt import trainable_parameters

    summary.update(objective=objective, params=trainable_parameters(model), train_videos=len(train), val_videos=len(val_ds) if val_ds else 0)
    return summary


def save_reconstruction(model: MaskedVideoModel, dataset, path: Path, clips: int = 2) -> Path:
    """Original / visible / reconstructed frames of a few held-out clips, one PNG."""
    from vidfm.io.writer import save_contact_sheet
    from vidfm.objectives.mvm import reconstruction_frames

    model.eval()
    rows = []
    for i in range(min(clips, len(dataset))):
        video = dataset[i]["video"][None]
        mask = tube_mask(1, model.encoder.config.grid(*[video.shape[k] for k in (1, 3, 4)]), model.mask_ratio, torch.Generator().manual_seed(i))
        rows.append(reconstruction_frames(model, video, mask))
    t = rows[0].shape[0] // 3
    return save_contact_sheet(path, torch.cat(rows), columns=t, scale=2, title="rows: original / visible to the encoder / reconstruction (hidden patches: predicted shape, true patch mean+std)")


def _loss_fn(objective: str):
    return {"mvm": mvm_loss_fn, "simclr": contrastive_loss_fn, "moco": contrastive_loss_fn, "triplet": contrastive_loss_fn, "contrastive": video_text_loss_fn}[objective]
