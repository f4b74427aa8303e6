"""Audio-visual action classification: from the sound, from the frames, or both.

The point is robustness: when one modality is degraded (frames drowned in noise, or the
sound under loud noise), the fused head should still beat the degraded modality alone.
Training uses modality dropout (one embedding zeroed for the fused head) and the same
degradations as augmentation; evaluation reports every combination.

Degradations: frames -> 0.25 x frame + 0.75 x uniform noise; sound -> white noise mixed in
at ``NOISE_SNR_DB`` (computed on the waveform, before the log-mel).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vidfm.data.audio import align_to_frames, log_mel
from vidfm.data.datasets import DataSource
from vidfm.errors import DatasetError, VideoDecodeError
from vidfm.files import atomic_save_dir, cached, file_signature
from vidfm.io.audio import Audio, read_audio
from vidfm.io.reader import VideoReader
from vidfm.models.audio_visual import AVClassifier
from vidfm.training import TrainConfig, Trainer

NOISE_SNR_DB = -10.0
SAMPLE_RATE = 16000


def degrade_frames(video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return 0.25 * video + 0.75 * torch.rand(video.shape, generator=generator)


def noisy(audio: Audio, snr_db: float, seed: int) -> Audio:
    """``audio`` with white noise at ``snr_db`` relative to its own power (silence gets the
    noise level of a quiet track)."""
    power = max(float((audio.samples**2).mean()), 1e-4)
    noise = np.random.default_rng(seed).standard_normal(audio.samples.shape).astype(np.float32)
    return Audio(audio.samples + noise * np.sqrt(power / 10 ** (snr_db / 10)), audio.rate)


def clip_features(audio: Audio, num_frames: int, steps_per_frame: int, n_mels: int) -> torch.Tensor:
    """``(num_frames, C * steps * n_mels)``: the whole clip's log-mel, one step per sampled frame."""
    stereo = audio if audio.channels == 2 else Audio(np.repeat(audio.samples[:1], 2, 0), audio.rate)
    return align_to_frames(log_mel(stereo, n_mels=n_mels), num_frames, steps_per_frame, window=0)[:, 0]


def load_clip(path, num_frames: int, size: int, cfg, seed: int) -> dict:
    with VideoReader(path, size=(size, size)) as r:
        frames = r.get_frames(np.linspace(0, len(r) - 1, num_frames).round().astype(int))
    audio = read_audio(path, rate=SAMPLE_RATE)
    if audio is None:
        raise VideoDecodeError(path, "has no audio track")
    feats = clip_features(audio, num_frames, cfg.steps_per_frame, cfg.n_mels)
    return {"frames": torch.from_numpy(frames), "audio": feats.half(), "audio_noisy": clip_features(noisy(audio, NOISE_SNR_DB, seed), num_frames, cfg.steps_per_frame, cfg.n_mels).half()}


class AVClips(Dataset):
    def __init__(self, clips: list[dict], train: bool, seed: int = 0):
        self.clips, self.train, self.seed, self.epoch = clips, train, seed, 0

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        c = self.clips[i]
        video = c["frames"].permute(3, 0, 1, 2).float().div(255.0)
        item = {"video": video, "audio": c["audio"].float(), "audio_noisy": c["audio_noisy"].float(), "label": c["label"]}
        if self.train:
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) % 2**31)
            r = torch.rand(4, generator=g)
            item["degrade_video"], item["degrade_audio"] = bool(r[0] < 0.2), bool(r[1] < 0.2 and r[0] >= 0.2)
            item["drop_video"], item["drop_audio"] = bool(r[2] < 0.15), bool(r[3] < 0.15 and r[2] >= 0.15)
            if item["degrade_video"]:
                item["video"] = degrade_frames(video, g)
            if item["degrade_audio"]:
                item["audio"] = item["audio_noisy"]
        return item


def av_loss(model: AVClassifier, batch: dict) -> tuple[torch.Tensor, dict]:
    out = model(batch["video"], batch["audio"], batch["drop_video"], batch["drop_audio"])
    y = batch["label"]
    loss = F.cross_entropy(out["fused"], y) + 0.5 * F.cross_entropy(out["video"], y) + 0.5 * F.cross_entropy(out["audio"], y)
    return loss, {"acc": float((out["fused"].argmax(1) == y).float().mean())}


@torch.no_grad()
def evaluate_av(model: AVClassifier, clips: list[dict], batch_size: int = 64) -> dict:
    """Accuracy of each head on clean inputs, and with the frames or the sound degraded."""
    model.eval()
    g = torch.Generator().manual_seed(0)
    hits: dict[str, list] = {k: [] for k in ("audio", "video", "fused", "video_degraded", "fused_video_degraded", "audio_degraded", "fused_audio_degraded")}
    view = AVClips(clips, False)
    for s in range(0, len(clips), batch_size):
        part = [view[i] for i in range(s, min(s + batch_size, len(clips)))]
        device = next(model.parameters(), torch.empty(0)).device
        video = torch.stack([p["video"] for p in part]).to(device)
        audio, audio_noisy = torch.stack([p["audio"] for p in part]).to(device), torch.stack([p["audio_noisy"] for p in part]).to(device)
        y = torch.tensor([p["label"] for p in part], device=device)
        clean = model(video, audio)
        bad_video = model(degrade_frames(video.cpu(), g).to(device), audio)
        bad_audio = model(video, audio_noisy)
        for key, logits in (("audio", clean["audio"]), ("video", clean["video"]), ("fused", clean["fused"]), ("video_degraded", bad_video["video"]),
                            ("fused_video_degraded", bad_video["fused"]), ("audio_degraded", bad_audio["audio"]), ("fused_audio_degraded", bad_audio["fused"])):  # fmt: skip
            hits[key] += (logits.argmax(1) == y).tolist()
    acc = {f"acc_{k}": float(np.mean(v)) for k, v in hits.items()}
    acc["accuracy"] = acc.pop("acc_fused")
    return acc


def train_av_classifier(data, out, *, num_frames: int = 16, size: int = 32, config: TrainConfig | None = None, progress=None, resume: bool = True) -> dict:
    """Train an ``AVClassifier`` on labelled videos with sound; ``OUT/best`` holds the model
    and its label names (in its config)."""
    out = Path(out)
    config = config or TrainConfig(output_dir=str(out))
    config.output_dir, config.metric, config.metric_mode = str(out), "accuracy", "max"
    source = DataSource(data)
    train_recs, names = source.classification("train")
    val_recs, _ = source.classification("val", names)
    model = AVClassifier(num_classes=len(names), frames=num_frames, labels=tuple(names))
    key = {"videos": file_signature([r["path"] for r in train_recs + val_recs]), "frames": num_frames, "size": size,
           "labels": [r["label"] for r in train_recs + val_recs], "classes": list(names)}

    def read(split: str, recs: list[dict]) -> list[dict]:
        clips = []
        for k, r in enumerate(progress(recs, f"reading {split} clips", len(recs)) if progress else recs):
            try:
                clips.append({**load_clip(r["path"], num_frames, size, model.config, seed=k), "label": r["label"]})
            except VideoDecodeError as e:
                import warnings

                warnings.warn(f"skipping: {e}", stacklevel=2)
        if not clips:
            raise DatasetError(f"{data}: no readable {split} video with sound")
        return clips

    blob = cached(out / "clips.pt", key, lambda: {"train": read("train", train_recs), "val": read("val", val_recs)})
    config.extra.update(task="av-classify", data=str(data), num_frames=num_frames, size=size)

    def save_fn(m, path):
        atomic_save_dir(Path(path), lambda d: (m.save_pretrained(d), (d / "av.json").write_text(json.dumps(config.extra, indent=2))))

    train = AVClips(blob["train"], True, config.seed)
    summary = Trainer(model, config, train, lambda m, b, g: av_loss(m, b), train, lambda m, _l, _a: evaluate_av(m, blob["val"]), save_fn).fit(resume)
    summary["clips"] = {"train": len(blob["train"]), "val": len(blob["val"])}
    return summary
