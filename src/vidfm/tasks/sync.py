"""Audio-visual sync: train a SyncNet-style model and measure a video's audio offset.

The measure is SyncNet's (Chung & Zisserman; the Sync-C / Sync-D that Wav2Lip, SadTalker
and Hallo report): embed every frame's 5-frame video window and the audio windows around
it, average the distance between video frame ``i`` and audio frame ``i + d`` over the clip
for each shift ``d`` in ``-max_offset .. max_offset``; the shift with the smallest mean
distance is the offset, that distance is **Sync-D** and the median minus it **Sync-C**
(confidence: how much the best shift stands out). ``offset`` > 0 means the sound comes
late (audio frame ``i + d`` belongs with video frame ``i``).

Training (``train_sync``): for a frame of a clip, the audio window at the true time must
beat the same clip's audio shifted by every other offset in the sweep range and the other
clips' audio in the batch (cross-entropy over those candidates, CLIP-style temperature).
In a world with sound, frames are drawn mostly near its sound events, where timing is
visible; other folders of videos with sound are sampled uniformly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vidfm.data.audio import frame_features
from vidfm.data.datasets import DataSource
from vidfm.errors import ConfigError, DatasetError, VideoDecodeError
from vidfm.files import atomic_save_dir, cached, file_signature, model_folder
from vidfm.io.audio import Audio, read_audio
from vidfm.io.reader import VideoReader
from vidfm.models.audio_visual import SyncNet
from vidfm.training import TrainConfig, Trainer

MAX_OFFSET = 15  # frames each way, as SyncNet sweeps


def clip_audio_features(audio: Audio, num_frames: int, fps: float, pad: int, cfg) -> torch.Tensor:
    """``(num_frames + 2 * pad, 5, D)``: the aligned audio of the clip with ``pad`` frames of
    silence each side (what the sweep compares against at its extreme shifts)."""
    return frame_features(audio, num_frames + 2 * pad, fps, start=-pad / fps, n_mels=cfg.n_mels, steps_per_frame=cfg.steps_per_frame,
                          window=cfg.frames // 2, channels=cfg.channels)  # fmt: skip


def load_av_clip(path, size: int, pad: int, cfg) -> dict:
    """Frames ``(T, size, size, 3)`` uint8, the padded aligned audio, fps; errors name the file."""
    with VideoReader(path, size=(size, size)) as r:
        frames, fps = r.get_frames(np.arange(len(r))), r.fps
    audio = read_audio(path, rate=cfg.sample_rate)
    if audio is None:
        raise VideoDecodeError(path, "has no audio track; sync needs sound")
    return {"frames": torch.from_numpy(frames), "audio": clip_audio_features(audio, len(frames), fps, pad, cfg).half(), "fps": fps}


def video_windows(frames: torch.Tensor, centres, half: int) -> torch.Tensor:
    """``(N, 3, 2 * half + 1, S, S)`` float windows around each centre frame (edges repeat)."""
    idx = (torch.as_tensor(centres)[:, None] + torch.arange(-half, half + 1)[None]).clamp(0, len(frames) - 1)
    return frames[idx].permute(0, 4, 1, 2, 3).float().div(255.0)


@torch.no_grad()
def sync_curve(model: SyncNet, frames: torch.Tensor, audio_padded: torch.Tensor, max_offset: int, batch: int = 256) -> np.ndarray:
    """Mean distance between video frame ``i`` and audio frame ``i + d`` for ``d`` in
    ``-max_offset .. max_offset``. ``audio_padded`` has ``pad >= max_offset`` silent frames
    each side (``clip_audio_features``)."""
    t = len(frames)
    pad = (len(audio_padded) - t) // 2
    if pad < max_offset:
        raise ConfigError(f"the audio is padded by {pad} frames, the sweep needs {max_offset}")
    half = model.config.frames // 2
    device = next(model.parameters(), torch.empty(0)).device
    v = torch.cat([model.embed_video(video_windows(frames, range(s, min(s + batch, t)), half).to(device)) for s in range(0, t, batch)])
    a = torch.cat([model.embed_audio(audio_padded[s : s + batch].float().to(device)) for s in range(0, len(audio_padded), batch)])
    curve = []
    for d in range(-max_offset, max_offset + 1):
        curve.append(float((v - a[pad + d : pad + d + t]).norm(dim=1).mean()))
    return np.array(curve)


def sync_scores(curve: np.ndarray) -> dict:
    """Offset (frames), Sync-D (the smallest mean distance) and Sync-C (median - min)."""
    k = int(np.argmin(curve))
    max_offset = (len(curve) - 1) // 2
    return {"offset": k - max_offset, "sync_d": float(curve[k]), "sync_c": float(np.median(curve) - curve[k])}


def measure_sync(model: SyncNet, frames: np.ndarray, audio: Audio, fps: float, max_offset: int = MAX_OFFSET) -> dict:
    """Sync of ``frames`` (T, H, W, 3) uint8 with ``audio``: offset in frames and seconds,
    Sync-C, Sync-D and the whole distance curve."""
    import PIL.Image

    size = model.config.size
    if abs(fps - model.config.fps) > 0.5:
        import warnings

        warnings.warn(f"the video runs at {fps:g} fps and the sync model was trained at {model.config.fps:g} fps: "
                      "its 5-frame windows span another stretch of time, so the scores are less reliable", stacklevel=2)  # fmt: skip
    if frames.shape[1:3] != (size, size):
        frames = np.stack([np.asarray(PIL.Image.fromarray(f).resize((size, size), PIL.Image.BILINEAR)) for f in frames])
    feats = clip_audio_features(audio, len(frames), fps, max_offset, model.config)
    curve = sync_curve(model, torch.from_numpy(np.ascontiguousarray(frames)), feats, max_offset)
    scores = sync_scores(curve)
    return {**scores, "offset_seconds": round(scores["offset"] / fps, 4), "fps": fps, "curve": [round(float(c), 5) for c in curve]}


def sync_video(model: SyncNet, video, audio_path=None, max_offset: int = MAX_OFFSET) -> dict:
    """``measure_sync`` for a file (its own track, or ``audio_path``); ``model`` from
    ``load_sync_model``."""
    from vidfm.io.audio import load_audio

    with VideoReader(video) as r:
        frames, fps = r.get_frames(np.arange(len(r))), r.fps
    audio = load_audio(audio_path or video, rate=model.config.sample_rate)
    return {"video": str(video), "audio": str(audio_path or video), **measure_sync(model, frames, audio, fps, max_offset)}


def load_sync_model(path) -> SyncNet:
    path = model_folder(Path(path))
    if not (path / "config.json").exists():
        raise ConfigError(f"{path}: not a sync model folder (no config.json); train one with 'vidfm train sync'")
    return SyncNet.from_pretrained(path).eval()


# -- data --------------------------------------------------------------------------------------
def _event_frames(meta: dict) -> list[float]:
    out = []
    for e in meta.get("sound_events", []):
        out += [e[k] for k in ("frame", "start_frame", "end_frame") if k in e]
    return out


def sync_records(data, split: str) -> list[dict]:
    """``{path, events}``: every video of ``data``; a world's videos with their sound events
    (silent ones, 'stays still', left out: nothing there to sync)."""
    source = DataSource(data)
    if source.is_world:
        metas = {m["path"]: m for m in source.world().metadata()}
        recs = [{"path": r["path"], "events": _event_frames(metas.get(r["path"], {}))} for r in source.videos(split)]
        if metas and not any("sound_events" in m for m in metas.values()):
            raise DatasetError(f"{data}: this world has no sound; render one with 'vidfm synth OUT --audio'")
        return [r for r in recs if r["events"]]
    return [{"path": r["path"], "events": []} for r in source.videos(split)]


def load_clips(records: list[dict], size: int, pad: int, cfg, progress=None) -> list[dict]:
    clips = []
    for rec in progress(records, "reading clips", len(records)) if progress else records:
        try:
            clips.append({**load_av_clip(rec["path"], size, pad, cfg), **rec})
        except VideoDecodeError as e:
            import warnings

            warnings.warn(f"skipping: {e}", stacklevel=2)
    if not clips:
        raise DatasetError("no video with readable sound")
    return clips


class SyncWindows(Dataset):
    """Training items: a video window of one clip, and that clip's audio at the true time
    (first) and at other shifts within the sweep range: always the near ones (+-1..3, the
    hardest), plus ``far`` drawn from the rest."""

    def __init__(self, clips: list[dict], pad: int, half: int, per_clip: int = 8, far: int = 10, seed: int = 0):
        self.clips, self.pad, self.half, self.per_clip, self.far, self.seed, self.epoch = clips, pad, half, per_clip, far, seed, 0

    def __len__(self) -> int:
        return len(self.clips) * self.per_clip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i % len(self.clips)]
        rng = np.random.default_rng((self.seed, self.epoch, i))
        t = len(clip["frames"])
        if clip["events"] and rng.random() < 0.8:  # near a sound event, where timing shows
            f = int(round(rng.choice(clip["events"]) + rng.integers(-2, 3)))
        else:
            f = int(rng.integers(t))
        f = min(max(f, 0), t - 1)
        near = [0, -1, 1, -2, 2, -3, 3]
        rest = [d for d in range(-MAX_OFFSET, MAX_OFFSET + 1) if d not in near]
        shifts = near + [int(d) for d in rng.choice(rest, size=min(self.far, len(rest)), replace=False)]
        video = video_windows(clip["frames"], [f], self.half)[0]
        audio = clip["audio"][[f + self.pad + d for d in shifts]].float()  # the padded audio of frame f + d
        return {"video": video, "audio": audio}


def sync_loss(model: SyncNet, batch: dict) -> tuple[torch.Tensor, dict]:
    """Cross-entropy: the true-time audio (candidate 0) against the same clip's shifted audio
    and the other clips' true-time audio."""
    v = model.embed_video(batch["video"])  # (B, E)
    b, n = batch["audio"].shape[:2]
    a = model.embed_audio(batch["audio"].flatten(0, 1)).view(b, n, -1)  # (B, candidates, E)
    scale = model.logit_scale.exp().clamp(max=100)
    same_clip = torch.einsum("be,bne->bn", v, a)
    others = (scale * (v @ a[:, 0].T)).masked_fill(torch.eye(b, dtype=torch.bool, device=v.device), float("-inf"))
    logits = torch.cat([scale * same_clip, others], dim=1)
    loss = F.cross_entropy(logits, torch.zeros(b, dtype=torch.long, device=v.device))
    return loss, {"shift_acc": float((same_clip.argmax(1) == 0).float().mean())}


@torch.no_grad()
def offset_accuracy(model: SyncNet, clips: list[dict], offsets=(-10, -5, -2, 0, 2, 5, 10), max_offset: int = MAX_OFFSET, tolerance: int = 1) -> dict:
    """Inject each known offset into each clip (the audio features shifted by whole frames)
    and sweep: the share found within ``tolerance`` frames, and the mean error."""
    errors, cs, ds = [], [], []
    for clip in clips:
        pad = (len(clip["audio"]) - len(clip["frames"])) // 2
        for k in offsets:
            shifted = torch.roll(clip["audio"], k, dims=0)  # the sound comes k frames late
            inner = max_offset + abs(k)
            if pad < inner:
                raise ConfigError(f"clips are padded by {pad} frames; injecting {k} with a +-{max_offset} sweep needs {inner}")
            s = sync_scores(sync_curve(model, clip["frames"], shifted[pad - max_offset : len(shifted) - pad + max_offset], max_offset))
            errors.append(abs(s["offset"] - k))
            cs.append(s["sync_c"])
            ds.append(s["sync_d"])
    errors = np.array(errors)
    return {"offset_acc": float((errors <= tolerance).mean()), "offset_error": float(errors.mean()), "sync_c": float(np.mean(cs)),
            "sync_d": float(np.mean(ds)), "trials": int(len(errors))}  # fmt: skip


def train_sync(data, out, *, size: int = 32, config: TrainConfig | None = None, progress=None, resume: bool = True, **model_kwargs) -> dict:
    """Train a ``SyncNet`` on videos with sound (best: a world rendered with ``--audio``).
    Validation injects known offsets into held-out clips and reports how many are found to
    within a frame (``offset_acc``, the model-selection metric), Sync-C and Sync-D."""
    out = Path(out)
    config = config or TrainConfig(output_dir=str(out))
    config.output_dir, config.metric, config.metric_mode = str(out), "offset_acc", "max"
    train_recs, val_recs = sync_records(data, "train"), sync_records(data, "val")
    if not train_recs:
        raise DatasetError(f"{data}: no training videos with sound")
    model = SyncNet(size=size, **model_kwargs)
    pad = 2 * MAX_OFFSET  # room for the sweep plus an injected offset of up to MAX_OFFSET
    key = {"videos": file_signature([r["path"] for r in train_recs + val_recs]), "size": size, "pad": pad, "model": dict(model.config)}
    blob = cached(out / "clips.pt", key, lambda: {"train": load_clips(train_recs, size, pad, model.config, progress),
                                                   "val": load_clips(val_recs or train_recs[:8], size, pad, model.config, progress)})  # fmt: skip
    fps = blob["train"][0]["fps"]
    model.register_to_config(fps=float(fps))
    train = SyncWindows(blob["train"], pad, model.config.frames // 2, seed=config.seed)
    val_clips = blob["val"][:48]
    config.extra.update(task="sync", data=str(data), size=size)

    def save_fn(m, path):
        atomic_save_dir(Path(path), lambda d: (m.save_pretrained(d), (d / "sync.json").write_text(json.dumps(config.extra, indent=2))))

    def evaluate_fn(m, _loader, _acc):
        m.eval()
        return offset_accuracy(m, val_clips)

    summary = Trainer(model, config, train, lambda m, batch, g: sync_loss(m, batch), train, evaluate_fn, save_fn).fit(resume)
    summary["clips"] = {"train": len(blob["train"]), "val": len(blob["val"])}
    return summary
