"""Training for video generation: the video VAE, then a latent denoiser on its latents.

Data: a synthetic world (each clip spans the main object's action, captioned), a captions
JSONL (whole videos), or for the VAE any folder of videos. Clips are ``num_frames`` frames
resized to ``size`` and scaled to [-1, 1].

The denoiser trains on cached latents: every clip is encoded once by the frozen VAE (its
posterior mean, scaled) and every caption once by the frozen text tower; the cache lives in
``OUT/latents.pt``, keyed by the VAE's fingerprint and the clip layout, so a resumed run
skips it. LoRA (peft) fine-tunes an existing pipeline's denoiser on new clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vidfm.adapt.lora import add_lora, save_lora
from vidfm.data.datasets import (
    DataSource,
    SkipsUnreadable,
    readable_batches,
    split_off_validation,
)
from vidfm.errors import ConfigError, DatasetError, VideoDecodeError
from vidfm.files import atomic_file, atomic_save_dir, file_signature, model_folder
from vidfm.io import VideoReader
from vidfm.metrics.generation import psnr_ssim
from vidfm.pipelines.video_generation import LORA_BASE, VideoGenerationPipeline
from vidfm.training import TrainConfig, Trainer

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out"]


# -- data --------------------------------------------------------------------------------------
def generation_records(data, split: str = "train") -> list[dict]:
    """Records ``{path, captions, start, end}`` (frames; ``None`` = whole video). In a
    world each clip spans the main object's action (multi-shot videos are left out: their
    captions describe one shot only); elsewhere whole videos, with captions if any."""
    source = DataSource(data)
    if source.is_world:
        captions = {r["video_id"]: r["captions"] for r in source.captions(split)}
        out = []
        for m in source.world().metadata():
            if m["video_id"] not in captions or len(m["shots"]) != 1:
                continue
            main = m["shots"][0]["objects"][0]
            out.append({"path": m["path"], "captions": captions[m["video_id"]], "start": main["start"], "end": main["end"], "video_id": m["video_id"]})
        return out
    return [{"captions": [], **r, "start": None, "end": None} for r in source.videos(split)]


def audio_generation_records(data, split: str, num_frames: int, fps: float, windows: int = 2, seed: int = 0) -> list[dict]:
    """Records for an audio-driven denoiser: ``windows`` stretches of ``num_frames``
    consecutive frames per video (the sound must line up frame by frame, so no resampling),
    placed around the main object's action in a world, from the start elsewhere; each with
    its ``audio_start`` in seconds."""
    source = DataSource(data)
    if not source.is_world:
        return [{"captions": [], **r, "start": 0, "end": num_frames - 1, "audio_start": 0.0} for r in source.videos(split)]
    out = []
    captions = {r["video_id"]: r["captions"] for r in source.captions(split)}
    for m in source.world().metadata():
        if m["video_id"] not in captions or len(m["shots"]) != 1 or m["num_frames"] < num_frames:
            continue
        main = m["shots"][0]["objects"][0]
        lo = min(max(0, main["start"] - num_frames // 2), m["num_frames"] - num_frames)
        hi = min(max(lo, main["end"] - num_frames // 2), m["num_frames"] - num_frames)
        rng = np.random.default_rng([seed, int(m["video_id"])])
        for s in sorted({int(v) for v in rng.integers(lo, hi + 1, size=windows)}):
            out.append({"path": m["path"], "captions": captions[m["video_id"]], "start": s, "end": s + num_frames - 1,
                        "audio_start": s / m.get("fps", fps), "video_id": m["video_id"]})  # fmt: skip
    return out


def clip_indices(n: int, num_frames: int, start: int | None, end: int | None) -> np.ndarray:
    lo, hi = (0, n - 1) if start is None else (max(0, min(start, n - 1)), max(0, min(end, n - 1)))
    return np.linspace(lo, hi, num_frames).round().astype(int)


class ClipDataset(SkipsUnreadable):
    """Items ``{video (3, T, H, W) in [-1, 1], index}``; unreadable videos are skipped (warned
    once, counted) like everywhere else in vidfm."""

    def __init__(self, records: list[dict], num_frames: int, size: int, train: bool = True):
        if not records:
            raise DatasetError("the dataset has no videos")
        self.records, self.num_frames, self.size, self.train = records, num_frames, size, train
        self.skipped: set[str] = set()

    def load(self, i: int) -> dict:
        rec = self.records[i]
        with VideoReader(rec["path"], size=(self.size, self.size)) as r:
            frames = r.get_frames(clip_indices(len(r), self.num_frames, rec.get("start"), rec.get("end")))
        return {"video": torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(127.5).sub(1.0), "index": i}


def _train_val(data, val_fraction: float, seed: int, records=generation_records) -> tuple[list[dict], list[dict]]:
    train = records(data, "train")
    if DataSource(data).is_world:
        return train, records(data, "val")
    return split_off_validation(train, val_fraction, seed)


# -- VAE ---------------------------------------------------------------------------------------
def train_vae(
    data, out, *, preset: str = "vae-tiny", init: str | None = None, num_frames: int = 9, size: int = 32, kl_weight: float = 1e-4,
    latent_channels: int | None = None, config: TrainConfig | None = None, resume: bool = True,
) -> dict:
    """Train a causal video VAE (L1 reconstruction + KL); ``best/`` is a diffusers-style
    folder with ``scaling_factor`` set to 1 / std of its latents. Validation reports PSNR,
    SSIM and ``motion_kept``: how much of the input's frame-to-frame change survives
    reconstruction (small moving objects are the first thing a weak VAE blurs away)."""
    from vidfm.models.generative import build_vae, load_vae

    config = config or TrainConfig(output_dir=str(out))
    config.output_dir, config.metric, config.metric_mode = str(out), "psnr", "max"
    model = load_vae(model_folder(init)).train() if init else build_vae(preset, **({"latent_channels": latent_channels} if latent_channels else {}))
    model.check_size(num_frames, size, size)
    train_recs, val_recs = _train_val(data, 0.1, config.seed)
    train, val = ClipDataset(train_recs, num_frames, size), ClipDataset(val_recs or train_recs[:8], num_frames, size, train=False)
    config.extra.update(task="vae", data=str(data), num_frames=num_frames, size=size, kl_weight=kl_weight)

    def loss_fn(m, batch, g):
        video = batch["video"]
        recon, posterior = m(video, generator=g)
        rec = F.l1_loss(recon, video)
        kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()  # per latent element
        return rec + kl_weight * kl, {"l1": float(rec.detach()), "kl": float(kl.detach())}

    def evaluate_fn(m, loader, _acc):
        scores, latents = [], []
        for batch in readable_batches(loader):
            posterior = m.encode(batch["video"])
            z = posterior.mode()
            recon = m.decode(z)
            scores.append((*psnr_ssim(batch["video"], recon), float(recon.diff(dim=2).abs().mean() / batch["video"].diff(dim=2).abs().mean().clamp(min=1e-6))))
            latents.append(z)
        psnr, ssim, motion = np.mean(scores, axis=0)
        m.register_to_config(scaling_factor=float(1.0 / torch.cat(latents).std().clamp(min=1e-6)))
        # motion kept: mean |frame difference| of the reconstruction over that of the input (1 = all of it)
        return {"psnr": float(psnr), "ssim": float(ssim), "motion_kept": float(motion)}

    def save_fn(m, path):
        atomic_save_dir(Path(path), lambda d: (m.save_pretrained(d), (d / "vae.json").write_text(json.dumps(config.extra, indent=2))))

    summary = Trainer(model, config, train, loss_fn, val, evaluate_fn, save_fn).fit(resume)
    summary["skipped"] = sorted(train.skipped | val.skipped)
    return summary


# -- latent cache ------------------------------------------------------------------------------
def vae_fingerprint(vae_dir: Path) -> str:
    from vidfm.files import fingerprint_folder

    return fingerprint_folder(vae_dir)


def fingerprint_module(module) -> str:
    """A short hash of a module's weights (a VAE inside a pipeline has no folder of its own)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_records(vae, text_encoder, records: list[dict], num_frames: int, size: int, batch_size: int = 16, progress=None, fps: float = 8) -> dict:
    """Latents of every clip and its last frame (as an image), token features of every
    caption, and for records with an ``audio_start`` the clip's latent-aligned audio
    features: what the denoiser trains on."""
    from vidfm.data.audio import AUDIO_RATE, latent_audio_features
    from vidfm.io.audio import read_audio

    ds = ClipDataset(records, num_frames, size)
    latents, lasts, kept, sounds = [], [], [], []
    batches = range(0, len(records), batch_size)
    for s in progress(batches, "encoding clips", len(batches)) if progress else batches:
        items = []
        for i in range(s, min(s + batch_size, len(records))):
            try:
                item = ds.load(i)  # no substitute for a failed clip: the cache keeps record order
                if "audio_start" in records[i]:
                    sound = read_audio(records[i]["path"], rate=AUDIO_RATE)
                    if sound is None:
                        raise VideoDecodeError(records[i]["path"], "has no audio track")
                    item["audio"] = latent_audio_features(sound, num_frames, fps, vae.temporal_factor, records[i]["audio_start"])
                items.append(item)
            except VideoDecodeError as e:
                import warnings

                warnings.warn(f"skipping unreadable video: {e}", stacklevel=2)
        if not items:
            continue
        video = torch.stack([it["video"] for it in items])
        latents.append(vae.encode_latents(video))
        lasts.append(vae.encode_latents(video[:, :, -1:]))
        kept += [it["index"] for it in items]
        sounds += [it["audio"] for it in items if "audio" in it]
    if not kept:
        raise DatasetError("no clip could be decoded")
    captions = sorted({c for i in kept for c in records[i]["captions"]})
    if not captions:
        raise DatasetError("the denoiser needs captions: give a synthetic world or a captions .jsonl ({\"path\", \"captions\"} per line)")
    tokens, masks = [], []
    for s in range(0, len(captions), 64):
        t, m, _ = text_encoder(captions[s : s + 64])
        tokens.append(t)
        masks.append(m)
    L = max(t.shape[1] for t in tokens)
    text = torch.cat([F.pad(t, (0, 0, 0, L - t.shape[1])) for t in tokens])
    mask = torch.cat([F.pad(m, (0, L - m.shape[1])) for m in masks])
    lookup = {c: k for k, c in enumerate(captions)}
    return {
        "latents": torch.cat(latents), "last": torch.cat(lasts), "text": text, "text_mask": mask, "captions": captions,
        "caption_ids": [[lookup[c] for c in records[i]["captions"]] for i in kept], "paths": [records[i]["path"] for i in kept],
        **({"audio": torch.stack(sounds)} if sounds else {}),
    }  # fmt: skip


def cached_encoding(out: Path, key: dict, make) -> dict:
    """The latent cache ``OUT/latents.pt`` if it was made with ``key`` (VAE fingerprint,
    text tower, clip layout and every video's size and mtime), else a new one. A damaged
    cache is only a cache: it is rebuilt, with a warning."""
    path = out / "latents.pt"
    if path.exists():
        try:
            blob = torch.load(path, weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unreadable pickle
            import warnings

            warnings.warn(f"{path}: unreadable latent cache ({type(e).__name__}); encoding the clips again", stacklevel=2)
            blob = {}
        if isinstance(blob, dict) and blob.get("key") == key:
            return blob
    blob = {**make(), "key": key}
    with atomic_file(path) as tmp:
        torch.save(blob, tmp)
    return blob


class LatentDataset(Dataset):
    """One item per clip; a caption drawn per epoch (reproducibly) from that clip's captions."""

    def __init__(self, blob: dict, indices: list[int], train: bool, seed: int = 0):
        self.blob, self.indices, self.train, self.seed, self.epoch = blob, indices, train, seed, 0

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        k = self.indices[i]
        ids = self.blob["caption_ids"][k]
        c = ids[int(np.random.default_rng((self.seed, self.epoch, k)).integers(len(ids)))] if self.train else ids[0]
        item = {"latents": self.blob["latents"][k], "last": self.blob["last"][k], "text": self.blob["text"][c], "text_mask": self.blob["text_mask"][c], "index": k}
        if "audio" in self.blob:
            item["audio"] = self.blob["audio"][k]
        return item


# -- LoRA --------------------------------------------------------------------------------------
def add_denoiser_lora(denoiser, rank: int, alpha: float | None = None) -> None:
    """LoRA (peft, via ``vidfm.adapt.lora``) on every attention projection; everything
    else frozen."""
    targets = sorted({name for name, _ in denoiser.named_modules() if name.rsplit(".", 1)[-1] in LORA_TARGETS})
    add_lora(denoiser, rank, alpha, targets)


# -- denoiser ----------------------------------------------------------------------------------
def train_denoiser(
    data,
    out,
    *,
    vae: str | None = None,
    denoiser: str = "dit-tiny",
    prediction: str = "flow",
    attention: str | None = None,
    text_encoder: str = "minilm",
    num_frames: int = 9,
    size: int | None = None,
    fps: int = 8,
    temporal_weight: float = 0.0,
    snr_gamma: float | None = None,
    patch_size: int | None = None,
    text_dropout: float = 0.1,
    init: str | None = None,
    lora_rank: int | None = None,
    lora_alpha: float | None = None,
    audio: str | None = None,
    config: TrainConfig | None = None,
    progress=None,
    resume: bool = True,
) -> dict:
    """Train a latent video denoiser (``denoiser`` preset) on ``vae``'s latents, or with
    ``init`` + ``lora_rank`` fine-tune an existing pipeline's denoiser with LoRA.
    ``audio`` (``cross`` or ``add``) conditions it on each clip's sound as well (clips of
    consecutive frames with their audio; with ``init`` the text-only denoiser gains audio
    layers that start at zero). ``OUT/best`` is a pipeline folder ``vidfm generate`` loads."""
    from vidfm.data.audio import DENOISER_AUDIO_DIM
    from vidfm.models.dit import with_audio
    from vidfm.models.generative import build_denoiser, load_vae
    from vidfm.models.text import TextEncoder
    from vidfm.objectives.diffusion import DiffusionObjective

    out = Path(out)
    config = config or TrainConfig(output_dir=str(out))
    config.output_dir, config.metric, config.metric_mode = str(out), "loss", "min"
    base = None
    if init is not None:
        base = VideoGenerationPipeline.from_pretrained(init)
        if getattr(base, "lora", None):
            raise ConfigError(f"{init}: is itself a LoRA run; start from its base pipeline")
        vae_model, model = base.vae, base.denoiser.train()
        prediction, text_encoder, num_frames, size, fps = (base.config[k] for k in ("prediction", "text_encoder_id", "num_frames", "height", "fps"))
        vae_fp = fingerprint_module(vae_model)
    else:
        if vae is None:
            raise ConfigError("--vae is required: a folder from 'vidfm train vae' (or --init a pipeline)")
        vae_dir = model_folder(Path(vae))
        vae_model, model, vae_fp = load_vae(vae_dir), None, vae_fingerprint(vae_dir)
        vae_meta = json.loads((vae_dir / "vae.json").read_text()) if (vae_dir / "vae.json").exists() else {}
        size = size or vae_meta.get("size", 32)
    if lora_rank and init is None:
        raise ConfigError("LoRA fine-tunes an existing pipeline: give --init PIPELINE")
    if audio and lora_rank:
        raise ConfigError("--audio trains new audio layers; it does not combine with --lora-rank")
    audio_kwargs = {"audio_dim": DENOISER_AUDIO_DIM, "audio_tokens": 5 * vae_model.temporal_factor, "audio_fusion": audio} if audio else {}
    if audio and model is not None and not model.config.get("audio_dim"):
        model = with_audio(model, DENOISER_AUDIO_DIM, audio_kwargs["audio_tokens"], audio).train()
    vae_model.check_size(num_frames, size, size)
    objective = DiffusionObjective(prediction=prediction, temporal_weight=temporal_weight, text_dropout=text_dropout, snr_gamma=snr_gamma)
    text = TextEncoder(text_encoder).eval()
    if model is None:
        if patch_size and denoiser.startswith("unet"):
            raise ConfigError(f"--patch-size applies to DiT / U-ViT denoisers, not {denoiser}")
        overrides = {**({"attention": attention} if attention else {}), **({"patch_size": patch_size} if patch_size else {})}
        model = build_denoiser(denoiser, latent_channels=vae_model.config.latent_channels, text_dim=text.output_dim, **overrides, **audio_kwargs)
    if lora_rank:
        add_denoiser_lora(model, lora_rank, lora_alpha)
    if audio:
        if DataSource(data).is_world:  # the sound lines up frame by frame: the pipeline runs at the world's rate
            fps = DataSource(data).world().metadata()[0].get("fps", fps)
        train_recs, val_recs = _train_val(data, 0.1, config.seed, lambda d, split: audio_generation_records(d, split, num_frames, fps, seed=config.seed))
    else:
        train_recs, val_recs = _train_val(data, 0.1, config.seed)
    records = train_recs + val_recs
    key = {"vae": vae_fp, "text": text_encoder, "num_frames": num_frames, "size": size, "audio": bool(audio), **({"fps": fps} if audio else {}),
           "videos": file_signature([r["path"] for r in records]), "clips": [(r.get("start"), r.get("end")) for r in records]}
    blob = cached_encoding(out, key, lambda: encode_records(vae_model, text, records, num_frames, size, progress=progress, fps=fps))
    n_train = sum(1 for p in blob["paths"] if p in {r["path"] for r in train_recs})
    train = LatentDataset(blob, list(range(n_train)), True, config.seed)
    val = LatentDataset(blob, list(range(n_train, len(blob["paths"]))) or list(range(min(8, n_train))), False)
    config.extra.update(task="denoiser", data=str(data), denoiser=denoiser, prediction=prediction, temporal_weight=temporal_weight, lora_rank=lora_rank,
                        snr_gamma=snr_gamma, patch_size=patch_size, audio=audio)

    def loss_fn(m, batch, g):
        return objective(m, batch, g)

    def evaluate_fn(m, loader, _acc):
        g = torch.Generator().manual_seed(1234)  # the same noise and timesteps every evaluation
        losses = [float(objective(m, batch, g)[0]) for batch in loader]
        return {"loss": float(np.mean(losses))}

    def save_fn(m, path):
        if lora_rank:
            def write(d: Path):
                (d / LORA_BASE).write_text(json.dumps({"base": str(Path(init).resolve())}, indent=2))
                save_lora(m, d / "lora")

            atomic_save_dir(Path(path), write)
            return
        scheduler = objective.scheduler
        pipe = VideoGenerationPipeline(vae_model, m, scheduler, text_encoder_id=text_encoder, max_text_length=text.max_length, num_frames=num_frames,
                                       height=size, width=size, fps=fps, prediction=prediction, default_scheduler="euler" if prediction == "flow" else "ddim")  # fmt: skip
        atomic_save_dir(Path(path), lambda d: pipe.save_pretrained(d))

    return Trainer(model, config, train, loss_fn, val, evaluate_fn, save_fn).fit(resume)
