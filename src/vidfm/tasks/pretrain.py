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
    vocab = attach_attributes(source, train_r, val_r, list(attributes)) if attributes else {}

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
    across epochs: MVM with fixed masks; autoencoders' reconstruction (+KL); SimCLR, MoCo and
    triplet all as NT-Xent between the two views (MoCo's queue fills up during training, so
    its own loss would rise as it learns)."""
    inner = accelerator.unwrap_model(model)
    g = torch.Generator().manual_seed(0)
    total, n, features = 0.0, 0, []
    for batch in readable_batches(loader):
        if isinstance(inner, MaskedVideoModel):
            v = batch["video"]
            mask = tube_mask(v.shape[0], inner.encoder.config.grid(*[v.shape[i] for i in (1, 3, 4)]), inner.mask_ratio, g, v.device)
            loss = inner(v, mask)
        elif isinstance(inner, AutoencodingVideoModel):  # eval mode: the posterior mean, no adversarial term
            loss = inner(batch["video"])[0]
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
    terms = [*objective_terms(objective), *vocab]
    if vocab:
        model.attribute_heads = AttributeHeads(enc.output_dim, vocab)
    if loss_weighting != "fixed" or loss_weights or vocab:
        model.loss_weighting = LossWeighting(terms, loss_weighting, {**DEFAULT_WEIGHTS.get(objective, {}), **(loss_weights or {})})
    if objective == "contrastive":
        train_config.metric, train_config.metric_mode, evaluate = "rsum", "max", _retrieval_eval
    else:
        train_config.metric, train_config.metric_mode, evaluate = "loss", "min", _validation_loss
    meta = {"objective": objective, "encoder": encoder, "data": str(data), "num_frames": num_frames, "size": size,
            "options": {k: v for k, v in options.items() if v is not None}, "attributes": vocab, "loss_weighting": loss_weighting,
            "loss_weights": loss_weights or {}, "curriculum": {"ramp_epochs": curriculum, "start": curriculum_start} if curriculum else None,
            "caption_augment": list(caption_augment or [])}  # fmt: skip
    train_config.extra = {"task": "pretrain", **meta}
    trainer = Trainer(model, train_config, train, pretrain_loss_fn(objective), val_dataset=val_ds, evaluate_fn=evaluate,
                      save_fn=lambda m, path: save_pretrained_objective(m, path, meta))  # fmt: skip
    summary = trainer.fit(resume=resume)
    out = Path(train_config.output_dir)
    if objective == "mvm" and val_ds is not None:
        summary["reconstruction_png"] = str(save_reconstruction(trainer.model, val_ds, out / "reconstruction.png"))
    if objective in ("ae", "vae") and val_ds is not None:
        summary["reconstruction_png"] = str(save_autoencoder_sheet(trainer.model, val_ds, out / "reconstruction.png"))
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


def save_autoencoder_sheet(model: AutoencodingVideoModel, dataset, path: Path, clips: int = 2) -> Path:
    """Target / reconstruction frames of a few held-out clips, one PNG."""
    from vidfm.io.writer import save_contact_sheet
    from vidfm.objectives.autoencoding import autoencoder_frames

    rows = [autoencoder_frames(model, dataset[i]["video"][None]) for i in range(min(clips, len(dataset)))]
    return save_contact_sheet(path, torch.cat(rows), columns=rows[0].shape[0] // 2, scale=4, title="rows: target / reconstruction from the pooled vector")


# -- losses --------------------------------------------------------------------------------
DEFAULT_WEIGHTS = {"contrastive": {"video_to_text": 0.5, "text_to_video": 0.5}}  # the usual symmetric mean


def objective_terms(objective: str) -> list[str]:
    """The names of an objective's own loss terms (what ``LossWeighting`` weighs)."""
    return ["video_to_text", "text_to_video"] if objective == "contrastive" else [objective]


def _objective_losses(objective: str, model, batch: dict, generator) -> tuple[dict, dict]:
    inner = getattr(model, "module", model)  # DDP wraps the model in multi-process runs
    if objective == "mvm":
        v = batch["video"]
        mask = tube_mask(v.shape[0], inner.encoder.config.grid(*[v.shape[i] for i in (1, 3, 4)]), inner.mask_ratio, generator, v.device)
        return {"mvm": model(v, mask)}, {}
    if objective in TWO_VIEWS:
        return {objective: model(batch["video"], batch["video2"])}, {}
    if objective in ("ae", "vae"):
        loss, parts = model(batch["video"], generator)
        return {objective: loss}, {k: float(v.detach()) for k, v in parts.items()}
    v2t, t2v = model(batch["video"], batch["caption"], per_direction=True)
    return {"video_to_text": v2t, "text_to_video": t2v}, {"temperature": float(1 / inner.logit_scale.detach().exp())}


def _video_encoder(model):
    return model.video_encoder if isinstance(model, VideoTextModel) else model.encoder


def pretrain_loss_fn(objective: str):
    """``(model, batch, generator) -> (loss, logs)``: the objective's terms, plus attribute
    heads on the pooled vector the objective already computed (caught by a forward hook on
    the encoder: its first call in the step, i.e. the first view), combined by the
    model's ``loss_weighting`` (the plain sum of the objective's own terms without one)."""

    def loss_fn(model, batch, generator=None):
        inner = getattr(model, "module", model)
        heads, weighting = getattr(inner, "attribute_heads", None), getattr(inner, "loss_weighting", None)
        pooled = []
        hook = _video_encoder(inner).register_forward_hook(lambda m, i, out: pooled.append(out.pooled) if not pooled else None) if heads else None
        try:
            losses, logs = _objective_losses(objective, model, batch, generator)
        finally:
            if hook is not None:
                hook.remove()
        if heads is not None:
            head_losses, head_logs = heads(pooled[0], batch)
            losses.update(head_losses)
            logs.update(head_logs)
        if weighting is None:
            total = sum(DEFAULT_WEIGHTS.get(objective, {}).get(k, 1.0) * v for k, v in losses.items())
            return total, logs
        total, weight_logs = weighting(losses)
        if len(losses) > 1:
            logs.update({f"loss_{k}": float(v.detach()) for k, v in losses.items()}, **weight_logs)
        return total, logs

    return loss_fn
