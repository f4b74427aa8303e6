"""A small shot-boundary network distilled from TransNetV2 (vidfm's default detector).

TransNetV2 spends its time on 3D convolutions over 100-frame windows. Cuts and fades are
mostly visible in how a frame differs from its neighbours, so the student factorises:

1. a per-frame 2D CNN on the same 48x27 frames (three stride-2 convs, 0.7 MFLOPs a frame)
   gives a 4x6 feature map and an embedding; a colour histogram and a 6x12 thumbnail are
   computed beside it;
2. for every frame t, four similarities across the gap after t, between frames t-a and
   t+1+b (a, b < ``pair_span``): embedding cosine, feature-map cosine (layout), thumbnail
   L1 (cuts between shots of one palette) and histogram intersection;
3. a dilated 1D temporal CNN (receptive field ~31 frames) over [embedding, histogram,
   similarities] gives one logit per frame: "frame t is a transition frame", in
   TransNetV2's convention (a cut flags the last frame of the outgoing shot).

Frames are processed in chunks with overlapping context, so a video of any length streams
through in constant memory. The weights shipped in the package were trained by
``benchmarks/shots_distill.py`` (README: "Compression").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfm.errors import ConfigError

WEIGHTS = Path(__file__).parent / "weights" / "student"


@dataclass
class ShotStudentConfig:
    channels: tuple[int, int, int] = (16, 32, 32)
    embed_dim: int = 64
    hist_bins: int = 8
    pair_span: int = 3
    temporal_dim: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8)


def stream_probabilities(frames, window_fn, context: int, chunk: int = 4096) -> np.ndarray:
    """Run ``window_fn`` (uint8 (n, 27, 48, 3) -> (n,) probabilities) over ``frames`` in
    chunks, each with ``context`` frames of history and look-ahead, so memory stays bounded
    and the result equals one pass over the whole video."""
    out, buf, buf_start, start = [], [], 0, 0
    for f in frames:
        buf.append(f)
        if buf_start + len(buf) >= start + chunk + context:
            probs = window_fn(np.stack(buf))
            out.append(probs[start - buf_start : start - buf_start + chunk])
            start += chunk
            keep = max(0, start - context)
            buf, buf_start = buf[keep - buf_start :], keep
    if buf_start + len(buf) > start:
        out.append(window_fn(np.stack(buf))[start - buf_start :])
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


class ShotStudent(nn.Module):
    """uint8 frames (N, 27, 48, 3) of one video -> (N,) transition logits."""

    def __init__(self, config: ShotStudentConfig | None = None):
        super().__init__()
        self.config = c = config or ShotStudentConfig()
        a, b, d = c.channels
        self.frame_cnn = nn.Sequential(
            nn.Conv2d(3, a, 3, 2, 1), nn.ReLU(), nn.Conv2d(a, b, 3, 2, 1), nn.ReLU(), nn.Conv2d(b, d, 3, 2, 1), nn.ReLU(),
        )  # fmt: skip
        self.embed = nn.Linear(d * 4 * 6, c.embed_dim)
        pairs = c.pair_span * c.pair_span
        in_dim = c.embed_dim + 3 * c.hist_bins + 4 * pairs
        layers, dim = [], in_dim
        for dil in c.dilations:
            layers += [nn.Conv1d(dim, c.temporal_dim, 3, padding=dil, dilation=dil), nn.ReLU()]
            dim = c.temporal_dim
        self.temporal = nn.Sequential(*layers, nn.Conv1d(dim, 1, 1))
        self.register_buffer("scale", torch.tensor(1 / 255.0), persistent=False)

    @property
    def context(self) -> int:
        """Frames each side a prediction depends on."""
        return sum(self.config.dilations) + self.config.pair_span

    def histograms(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3 * bins) per-channel histograms, each summing to 1."""
        bins = self.config.hist_bins
        n = frames.shape[0]
        q = frames.long() * bins // 256 + torch.arange(3, device=frames.device) * bins
        onehot = torch.zeros(n, 3 * bins, device=frames.device).scatter_add_(1, q.reshape(n, -1), torch.ones(n, q[0].numel(), device=frames.device))
        return onehot / (q.shape[1] * q.shape[2])

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 4 or tuple(frames.shape[1:]) != (27, 48, 3):
            raise ConfigError(f"the shot student needs frames of shape (N, 27, 48, 3), got {tuple(frames.shape)}")
        x = frames.permute(0, 3, 1, 2).float() * self.scale
        fmap = self.frame_cnn(x).flatten(1)  # (N, C*4*6): keeps the layout
        emb = F.normalize(self.embed(fmap), dim=-1)  # (N, E)
        layout = F.normalize(fmap, dim=-1)
        thumb = F.adaptive_avg_pool2d(x, (6, 12)).flatten(1)  # (N, 216) colour thumbnail
        hist = self.histograms(frames)  # (N, 3B)
        span, n = self.config.pair_span, frames.shape[0]
        # similarity across the gap after t: frame t-a against frame t+1+b (edges repeat)
        idx = torch.arange(n, device=frames.device)
        sims = []
        for a in range(span):
            left = (idx - a).clamp(0, n - 1)
            for b in range(span):
                right = (idx + 1 + b).clamp(0, n - 1)
                sims.append((emb[left] * emb[right]).sum(-1))
                sims.append((layout[left] * layout[right]).sum(-1))
                sims.append((thumb[left] - thumb[right]).abs().mean(-1))
                sims.append(torch.minimum(hist[left], hist[right]).sum(-1) / 3)
        feats = torch.cat([emb, hist, torch.stack(sims, -1)], -1)  # (N, F)
        return self.temporal(feats.T[None])[0, 0]

    @torch.no_grad()
    def window_probabilities(self, frames: np.ndarray) -> np.ndarray:
        return torch.sigmoid(self(torch.from_numpy(np.ascontiguousarray(frames)))).numpy()

    def predict(self, frames, chunk: int = 4096) -> np.ndarray:
        """Per-frame transition probabilities of a video's frames (an array or any iterable
        of (27, 48, 3) uint8 frames, consumed as it streams)."""
        return stream_probabilities(frames, self.window_probabilities, self.context, chunk)

    def save_pretrained(self, folder) -> Path:
        from safetensors.torch import save_file

        from vidfm.files import atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))
        atomic_write_text(folder / "config.json", json.dumps({"model_type": "vidfm-shot-student", **asdict(self.config)}, indent=1))
        return folder

    @classmethod
    def from_pretrained(cls, folder=WEIGHTS) -> "ShotStudent":
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "config.json").exists() or not (folder / "model.safetensors").exists():
            raise ConfigError(f"{folder}: not a shot-student folder (needs config.json and model.safetensors)")
        cfg = json.loads((folder / "config.json").read_text())
        cfg.pop("model_type", None)
        model = cls(ShotStudentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}))
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return model.eval()


def onnx_predictor(model: ShotStudent, threads: int | None = None):
    """``predict(frames) -> probabilities`` for the shot student on ONNX Runtime (exported
    through a temporary folder), streamed like ``ShotStudent.predict``."""
    import tempfile

    from vidfm.compress.onnx import export_shot_student, session

    with tempfile.TemporaryDirectory(prefix="vidfm-shots-") as folder:  # the session holds the weights once built
        sess = session(export_shot_student(model, Path(folder) / "student.onnx"), threads)

    def window_fn(frames: np.ndarray) -> np.ndarray:
        (logits,) = sess.run(None, {"frames": np.ascontiguousarray(frames)})
        return 1 / (1 + np.exp(-logits))

    return lambda frames, chunk=4096: stream_probabilities(frames, window_fn, model.context, chunk)
