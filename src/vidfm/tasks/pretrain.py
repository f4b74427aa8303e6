"""Pre-train an encoder with one objective (mvm, simclr, moco, triplet, ae, vae, contrastive) on
unlabeled videos or captioned videos, with the one trainer.

Any objective can also carry auxiliary attribute heads (``attributes``), a weighting of its
loss terms (``loss_weighting`` fixed or uncertainty; the terms are the objective — for
video-text its two directions — and each attribute) and an easy-to-hard curriculum
(``curriculum`` epochs of ramp).

The best weights land in ``RUN/best`` as a plain encoder folder (``load_encoder`` and
``vidfm train classify --encoder RUN`` read it), with ``pretrain.json`` saying how it was
made and ``objective.safetensors`` holding the objective's own head (decoder, projection);
a video-text run also holds its projections and temperature (``VideoTextModel``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from vidfm.data.curriculum import (
    CurriculumDataset,
    attach_attributes,
    difficulty_scores,
)
from vidfm.data.datasets import (
    DataSource,
    VideoDataset,
    readable_batches,
    split_off_validation,
)
from vidfm.data.text_augment import caption_augmenter
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
from vidfm.objectives.autoencoding import AutoencodingVideoModel
from vidfm.objectives.auxiliary import AttributeHeads, LossWeighting
from vidfm.training import TrainConfig, Trainer

OBJECTIVES = ("mvm", "simclr", "moco", "triplet", "ae", "vae", "contrastive")
TWO_VIEWS = ("simclr", "moco", "triplet")


# -- data ----------------------------------------------------------------------------------
def pretrain_datasets(data, objective: str, *, num_frames=8, size=64, seed=0, on_error="skip", val=None, attributes=None,
                      curriculum: int | None = None, curriculum_start: float = 0.3, caption_augment=None):  # fmt: skip
    """(train, val, attribute vocabulary) for an objective. Worlds use their own val split;
    other data keep 10 % aside (or ``val``, a folder/CSV/JSONL of the same kind). With
    ``attributes`` every record gets ``attr_*`` ids; with ``curriculum`` the training set
    serves easy videos first, widening to all over that many epochs. ``caption_augment``
    names caption augmentations for the video-text objective (see ``caption_augmenter``)."""
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
    vocab = attach_attributes(source, train_r, val_r, list(attributes), DataSource(val) if val and not world else None) if attributes else {}

    if curriculum is not None and curriculum < 1:
        raise ConfigError(f"--curriculum is a number of epochs (>= 1), got {curriculum}")
    if caption_augment and objective != "contrastive":
        raise ConfigError("caption augmentation needs the video-text objective (--objective contrastive)")
    text_tf = caption_augmenter(caption_augment) if caption_augment else None

    def make(records, train, seed_offset=0):
        return VideoDataset(records, train=train, transform=tf_train if train else tf_eval, text_transform=text_tf, seed=seed + seed_offset, **common)

    if objective in TWO_VIEWS:
        train, val_ds = TwoViews(make(train_r, True), make(train_r, True, 7919)), (TwoViews(make(val_r, False), make(val_r, True, 104729)) if val_r else None)
    else:
        train, val_ds = make(train_r, True), (make(val_r, False) if val_r else None)
    if curriculum:
        train = CurriculumDataset(train, difficulty_scores(source, train_r), curriculum, curriculum_start, seed)
    return train, val_ds, vocab


# -- models --------------------------------------------------------------------------------
def build_objective(objective: str, encoder, num_frames: int = 8, **options):
    if objective == "mvm":
        return MaskedVideoModel(encoder, mask_ratio=options.get("mask_ratio", 0.9), decoder_depth=options.get("decoder_depth", 2))
    if objective in TWO_VIEWS:
        kw = {k: options[k] for k in ("proj_dim", "temperature", "queue_size", "momentum", "margin", "mining") if options.get(k) is not None}
        return ContrastiveVideoModel(encoder, objective, **kw)
    if objective in ("ae", "vae"):
        kw = {k: options[k] for k in ("latent_dim", "target_size", "kl_weight", "adversarial_weight", "adversarial_start") if options.get(k) is not None}
        return AutoencodingVideoModel(encoder, num_frames, variational=objective == "vae", **kw)
    if objective == "contrastive":
        from vidfm.models.text import TextEncoder

        text = TextEncoder(options.get("text_model") or "minilm")
        kw = {k: options[k] for k in ("embed_dim", "temperature", "text_mode", "hard_negative_beta") if options.get(k) is not None}
        return VideoTextModel(encoder, text, **kw)
    raise ConfigError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")


def save_pretrained_objective(model, path, meta: dict) -> None:
    """The encoder as a plain encoder folder + the objective's head (and any attribute heads
    and loss weights) + how it was made. A video-text model keeps its own format."""
    base = base_objective(model)
    if isinstance(base, VideoTextModel):
        base.save_pretrained(path, notes={"pretrain.json": meta})
        return
    from safetensors.torch import save_file

    def is_encoder(key: str) -> bool:
        parts = key.split(".")
        return parts[parts[0] == "objective"] in ("encoder", "key_encoder")

    def write(d: Path):
        base.encoder.save_pretrained(d)
        head = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if not is_encoder(k)}
        save_file(head, d / "objective.safetensors")
        (d / "pretrain.json").write_text(json.dumps(meta, indent=2))

    atomic_save_dir(Path(path), write)


# -- evaluation during training ------------------------------------------------------------
def _validation_loss(model, loader, accelerator) -> dict:
    """Mean loss on held-out videos with fixed masks/views (lower is better), comparable
    across epochs: MVM with fixed masks; autoencoders' reconstruction (+KL); SimCLR, MoCo and
    triplet all as NT-Xent between the two views (MoCo's queue fills up during training, so
    its own loss would rise as it learns)."""
    inner = base_objective(accelerator.unwrap_model(model))
    g = torch.Generator().manual_seed(0)
    total, n, features = 0.0, 0, []
    for batch in readable_batches(loader):
        if isinstance(inner, MaskedVideoModel):
            v = batch["video"]
            mask = tube_mask(v.shape[0], inner.encoder.config.grid(*[v.shape[i] for i in (1, 3, 4)]), inner.mask_ratio, g, v.device)
            loss = inner(v, mask)
        elif isinstance(inner, AutoencodingVideoModel):  # eval mode: the posterior mean, no adversarial term
            loss = inner(batch["video"])[0]  # reconstruction (+KL)
        else:  # NT-Xent within the batch for both methods: MoCo's own loss depends on its queue
            z = inner.embed(batch["video"])
            loss = nt_xent(z, inner.embed(batch["video2"]), inner.temperature)
            features.append(z.float().cpu())
        total += float(loss) * len(batch["video"])
        n += len(batch["video"])
    return {"loss": total / max(n, 1), **(spread_metrics(torch.cat(features), "embedding") if features else {})}


def _retrieval_eval(model, loader, accelerator) -> dict:
    from vidfm.metrics.retrieval import retrieval_metrics

    inner = base_objective(accelerator.unwrap_model(model))
    videos, texts = [], []
    for batch in readable_batches(loader):
        videos.append(inner.encode_video(batch["video"]).cpu())
        texts.append(inner.encode_text(batch["caption"]).cpu())
    videos = torch.cat(videos)
    return {**retrieval_metrics(torch.cat(texts) @ videos.t()), **spread_metrics(videos, "embedding")}


# -- entry point ---------------------------------------------------------------------------
def pretrain(data, objective: str = "mvm", encoder: str = "videomae-tiny", *, train_config: TrainConfig, num_frames: int = 8,
             size: int = 64, val=None, on_error: str = "skip", resume: bool = True, attributes: list[str] | None = None,
             loss_weighting: str = "fixed", loss_weights: dict[str, float] | None = None, curriculum: int | None = None,
             curriculum_start: float = 0.3, caption_augment: list[str] | None = None, **options) -> dict:  # fmt: skip
    """Pre-train and return the trainer's summary; see the module docstring for outputs."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    train, val_ds, vocab = pretrain_datasets(data, objective, num_frames=num_frames, size=size, seed=train_config.seed, on_error=on_error,
                                             val=val, attributes=attributes, curriculum=curriculum, curriculum_start=curriculum_start,
                                             caption_augment=caption_augment)  # fmt: skip
    torch.manual_seed(train_config.seed)
    enc = resolve_encoder(encoder, num_frames=num_frames, image_size=size)
    model = build_objective(objective, enc, num_frames, **options)
    if loss_weighting != "fixed" or loss_weights or vocab:
        weighting = LossWeighting([*objective_terms(objective), *vocab], loss_weighting, {**DEFAULT_WEIGHTS.get(objective, {}), **(loss_weights or {})})
        model = PretrainingModel(objective, model, AttributeHeads(enc.output_dim, vocab) if vocab else None, weighting)
    if objective == "contrastive":
        train_config.metric, train_config.metric_mode, evaluate = "rsum", "max", _retrieval_eval
    else:
        train_config.metric, train_config.metric_mode, evaluate = "loss", "min", _validation_loss
    meta = {"objective": objective, "encoder": encoder, "data": str(data), "num_frames": num_frames, "size": size,
            "options": {k: v for k, v in options.items() if v is not None}}  # fmt: skip
    extras = {"attributes": vocab, "loss_weighting": loss_weighting if isinstance(model, PretrainingModel) else None, "loss_weights": loss_weights,
              "curriculum": {"ramp_epochs": curriculum, "start": curriculum_start} if curriculum else None, "caption_augment": caption_augment}  # fmt: skip
    meta.update({k: v for k, v in extras.items() if v})  # only what is used: runs made before these options still resume
    train_config.extra = {"task": "pretrain", **meta}
    trainer = Trainer(model, train_config, train, pretrain_loss_fn(objective), val_dataset=val_ds, evaluate_fn=evaluate,
                      save_fn=lambda m, path: save_pretrained_objective(m, path, meta))  # fmt: skip
    summary = trainer.fit(resume=resume)
    out = Path(train_config.output_dir)
    if objective == "mvm" and val_ds is not None:
        summary["reconstruction_png"] = str(save_reconstruction(base_objective(trainer.model), val_ds, out / "reconstruction.png"))
    if objective in ("ae", "vae") and val_ds is not None:
        summary["reconstruction_png"] = str(save_autoencoder_sheet(base_objective(trainer.model), val_ds, out / "reconstruction.png"))
    from vidfm.adapt import trainable_parameters

    summary.update(objective=objective, params=trainable_parameters(model), train_videos=len(train), val_videos=len(val_ds) if val_ds else 0)
    return summary


def save_reconstruction(model: MaskedVideoModel, dataset, path: Path, clips: int = 2) -> Path:
    """Original / visible / reconstructed frames of a few held-out clips, one PNG."""
    from vidfm.io.writer import save_contact_sheet
    from vidfm.objectives.mvm import reconstruction_frames

    model.eval()
    rows = []
    for i, video in enumerate(_sample_clips(model, dataset, clips)):
        mask = tube_mask(1, model.encoder.config.grid(*[video.shape[k] for k in (1, 3, 4)]), model.mask_ratio, torch.Generator().manual_seed(i), video.device)
        rows.append(reconstruction_frames(model, video, mask).cpu())
    t = rows[0].shape[0] // 3
    return save_contact_sheet(path, torch.cat(rows), columns=t, scale=2, title="rows: original / visible to the encoder / reconstruction (hidden patches: predicted shape, true patch mean+std)")


def save_autoencoder_sheet(model: AutoencodingVideoModel, dataset, path: Path, clips: int = 2) -> Path:
    """Target / reconstruction frames of a few held-out clips, one PNG."""
    from vidfm.io.writer import save_contact_sheet
    from vidfm.objectives.autoencoding import autoencoder_frames

    rows = [autoencoder_frames(model, video) for video in _sample_clips(model, dataset, clips)]
    return save_contact_sheet(path, torch.cat(rows), columns=rows[0].shape[0] // 2, scale=4, title="rows: target / reconstruction from the pooled vector")


# -- losses --------------------------------------------------------------------------------
DEFAULT_WEIGHTS = {"contrastive": {"video_to_text": 0.5, "text_to_video": 0.5}}  # the usual symmetric mean


def objective_terms(objective: str) -> list[str]:
    """The names of an objective's own loss terms (what ``LossWeighting`` weighs)."""
    return ["video_to_text", "text_to_video"] if objective == "contrastive" else [objective]


def _sample_clips(model, dataset, clips: int) -> list[torch.Tensor]:
    """The first ``clips`` readable held-out clips, as (1, T, C, H, W) on the model's device."""
    from itertools import islice

    device = next(model.parameters()).device
    readable = (item for item in (dataset[i] for i in range(len(dataset))) if item is not None)
    return [item["video"][None].to(device) for item in islice(readable, clips)]


def objective_losses(objective: str, model, batch: dict, generator) -> tuple[dict, torch.Tensor | float, dict]:
    """(the objective's weighable terms, a part added unweighted (the GAN's), logs)."""
    inner = getattr(model, "module", model)  # DDP wraps the model in multi-process runs
    if objective == "mvm":
        v = batch["video"]
        mask = tube_mask(v.shape[0], inner.encoder.config.grid(*[v.shape[i] for i in (1, 3, 4)]), inner.mask_ratio, generator, v.device)
        return {"mvm": model(v, mask)}, 0.0, {}
    if objective in TWO_VIEWS:
        return {objective: model(batch["video"], batch["video2"])}, 0.0, {}
    if objective in ("ae", "vae"):
        reconstruction, adversarial, parts = model(batch["video"], generator)
        return {objective: reconstruction}, adversarial, {k: float(v.detach()) for k, v in parts.items()}
    v2t, t2v = model(batch["video"], batch["caption"], per_direction=True, same_as=batch.get("caption_original"))
    return {"video_to_text": v2t, "text_to_video": t2v}, 0.0, {"temperature": float(1 / inner.logit_scale.detach().exp())}


def _video_encoder(model):
    return model.video_encoder if isinstance(model, VideoTextModel) else model.encoder


class PretrainingModel(nn.Module):
    """An objective with attribute heads and/or a loss weighting. One ``forward(batch)``
    computes every term, so a data-parallel wrapper (DDP) sees each parameter used inside
    its forward and reduces its gradient. The heads read the pooled vector the objective
    already computed, caught by a forward hook on the encoder: its first call in the step
    (the first view; for MVM the visible tokens only)."""

    def __init__(self, name: str, objective: nn.Module, heads: AttributeHeads | None, weighting: LossWeighting):
        super().__init__()
        self.name, self.objective, self.attribute_heads, self.loss_weighting = name, objective, heads, weighting

    def forward(self, batch: dict, generator: torch.Generator | None = None):
        pooled = []
        hook = None
        if self.attribute_heads is not None:
            hook = _video_encoder(self.objective).register_forward_hook(lambda m, i, out: pooled.append(out.pooled) if not pooled else None)
        try:
            losses, unweighted, logs = objective_losses(self.name, self.objective, batch, generator)
        finally:
            if hook is not None:
                hook.remove()
        if self.attribute_heads is not None:
            head_losses, head_logs = self.attribute_heads(pooled[0], batch)
            losses.update(head_losses)
            logs.update(head_logs)
        total, weight_logs = self.loss_weighting(losses)
        if len(losses) > 1:
            logs.update({f"loss_{k}": float(v.detach()) for k, v in losses.items()}, **weight_logs)
        return total + unweighted, logs


def base_objective(model):
    """The objective itself, inside a ``PretrainingModel`` or not."""
    return model.objective if isinstance(model, PretrainingModel) else model


def pretrain_loss_fn(objective: str):
    """``(model, batch, generator) -> (loss, logs)`` for the trainer: a ``PretrainingModel``
    computes its own; a bare objective's terms are summed (video-text: their mean)."""

    def loss_fn(model, batch, generator=None):
        if isinstance(getattr(model, "module", model), PretrainingModel):
            return model(batch, generator)
        losses, unweighted, logs = objective_losses(objective, model, batch, generator)
        return sum(DEFAULT_WEIGHTS.get(objective, {}).get(k, 1.0) * v for k, v in losses.items()) + unweighted, logs

    return loss_fn
