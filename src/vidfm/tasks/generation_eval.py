"""Does a generated clip show what was asked? Judges on the synthetic world.

``WorldJudge`` reads the world's own ground truth, so it can be near exact: the world's
objects are drawn in six palette colours on dull backgrounds, which makes colour
segmentation a lookup. From the pixels of the prompted colour it gets *colour* (is that
colour shown), *shape* (a small CNN on scale-normalised silhouettes, trained on real
frames of a world's train split), the object's *trajectory* (centroid per frame, compared
ObjMC-style with the real clip's displacement), the *camera motion* (global motion of
the background with the objects masked out), and *action* from a vidfm action classifier.
Each judge scored on real clips is the ceiling to read generated scores against.

``SemanticJudge`` is the older VBench-style pair (action classifier + video-text
retrieval); its retrieval part cannot tell shapes apart well, hence WorldJudge.

Prompts come from a world split (the main object's shape, colour and action, and the
first caption as the prompt). Two judges trained on the world look at each generated
clip:

- a vidfm action classifier: is the predicted action the prompted one?
- a video-text retrieval model: among captions that differ from the prompt in one
  attribute only (every shape, every colour, every action), does the prompted one score
  highest? That gives shape, colour and action accuracy, and all three at once; plus the
  mean video-prompt cosine similarity (CLIPSIM-style).

Judges are imperfect, so the same judges scored on the real clips (and on VAE
reconstructions of them) are the ceiling to read generated scores against; chance is
1/4 (shape), 1/6 (colour), 1/12 (action).
"""

from __future__ import annotations

import numpy as np
import torch

from vidfm.data.synthetic import ACTIONS, COLOURS, SHAPES, VERB_PHRASES, camera_phrase
from vidfm.errors import ConfigError

PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
COLOUR_NAMES = tuple(COLOURS)
COLOUR_RADIUS = 70.0  # RGB distance within which a pixel counts as a palette colour
SILHOUETTE = 16  # side of the scale-normalised silhouette the shape judge reads


def world_prompts(world, split: str = "test", limit: int | None = None) -> list[dict]:
    """Records with ``prompt``, ``shape``, ``colour``, ``action``, ``new_colour`` (and the
    real clip's path/start/end) for single-shot videos of ``split``."""
    from vidfm.data.datasets import SyntheticWorld

    meta = {m["video_id"]: m for m in SyntheticWorld(world).metadata()}
    from vidfm.tasks.generate import generation_records

    out = []
    for r in generation_records(world, split):
        obj = meta[r["video_id"]]["shots"][0]["objects"][0]
        shot = meta[r["video_id"]]["shots"][0]
        camera = shot.get("camera", "static")
        out.append({**r, "prompt": _describe(obj["shape"], obj["colour"], obj["action"], obj.get("new_colour"), camera), "shape": obj["shape"],
                    "colour": obj["colour"], "action": obj["action"], "new_colour": obj.get("new_colour"), "camera": camera,
                    "background": shot["background"]})  # fmt: skip
    return out[:limit] if limit else out


def _describe(shape: str, colour: str, action: str, new_colour: str | None, camera: str = "static") -> str:
    phrase = VERB_PHRASES[action][0].format(new=new_colour or "another colour")
    return f"a {colour} {shape} {phrase}" + (f" as the camera {camera_phrase(camera)}" if camera != "static" else "")


def real_clips(records: list[dict], num_frames: int, size: int) -> np.ndarray:
    """The ground-truth clips, laid out as the generator's (N, T, H, W, 3) uint8."""
    from vidfm.tasks.generate import ClipDataset

    ds = ClipDataset(records, num_frames, size)
    return np.stack([((ds.load(i)["video"] + 1) * 127.5).round().byte().permute(1, 2, 3, 0).numpy() for i in range(len(records))])


class SemanticJudge:
    def __init__(self, classifier_path, retrieval_path):
        from vidfm.files import model_folder
        from vidfm.retrieval.embedder import Embedder
        from vidfm.tasks.classify import VideoClassifier

        self.classifier = VideoClassifier.from_pretrained(model_folder(classifier_path)).eval()
        self.retrieval = Embedder(retrieval_path)

    @torch.no_grad()
    def score(self, videos: np.ndarray, records: list[dict]) -> dict:
        from vidfm.data.transforms import clips_from_arrays

        clips = clips_from_arrays(videos, self.classifier.num_frames, self.classifier.image_size)
        predicted = [self.classifier.classes[i] for i in torch.cat([self.classifier(c) for c in clips.split(32)]).argmax(-1).tolist()]
        emb = self.retrieval.embed_arrays(videos)
        hits = {"shape": [], "colour": [], "action": []}
        sims = []
        for e, r in zip(emb, records):
            sims.append(float(e @ self.retrieval.encode_text([r["prompt"]])[0]))
            for attr, values in (("shape", SHAPES), ("colour", tuple(COLOURS)), ("action", ACTIONS)):
                options = [{**r, attr: v} for v in values]
                texts = [_describe(o["shape"], o["colour"], o["action"], o["new_colour"]) for o in options]
                best = values[int(np.argmax(self.retrieval.encode_text(texts) @ e))]
                hits[attr].append(best == r[attr])
        all3 = np.logical_and.reduce([hits[a] for a in hits])
        return {
            "classifier_action_accuracy": float(np.mean([p == r["action"] for p, r in zip(predicted, records)])),
            **{f"retrieval_{a}_accuracy": float(np.mean(h)) for a, h in hits.items()},
            "retrieval_all_accuracy": float(all3.mean()),
            "prompt_similarity": float(np.mean(sims)),
            "n": len(records),
        }


# -- exact judges from the world's ground truth ------------------------------------------
def colour_masks(videos: np.ndarray, radius: float = COLOUR_RADIUS) -> np.ndarray:
    """``(N, T, H, W)`` int8: the index (into ``COLOUR_NAMES``) of the palette colour each
    pixel shows, or -1 (background, or a colour too far from all six)."""
    v = np.asarray(videos, dtype=np.float32)
    d = np.linalg.norm(v[..., None, :] - PALETTE, axis=-1)  # (..., 6)
    nearest = d.argmin(-1).astype(np.int8)
    nearest[d.min(-1) > radius] = -1
    return nearest


def object_pixels(masks: np.ndarray, grow: int = 3) -> np.ndarray:
    """Pixels of any palette colour, dilated by ``grow`` (their blended edges too): what a
    camera-motion estimate must leave out, since objects move on their own."""
    import cv2

    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    m = (np.asarray(masks) >= 0).astype(np.uint8)
    return np.stack([cv2.dilate(f, kernel) for f in m.reshape(-1, *m.shape[-2:])]).reshape(m.shape).astype(bool)


def min_pixels(size: int) -> int:
    """The fewest pixels of a colour that count as an object at frame side ``size``."""
    return max(3, int(round((0.05 * size) ** 2)))


def trajectories(masks: np.ndarray, colours: list[int]) -> np.ndarray:
    """``(N, T, 3)`` centroid x, y and area of each clip's pixels of its colour (NaN where
    fewer than ``min_pixels``)."""
    n, t, h, w = masks.shape
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.full((n, t, 3), np.nan)
    for i, c in enumerate(colours):
        m = masks[i] == c
        area = m.sum((1, 2))
        ok = area >= min_pixels(w)
        out[i, ok, 0] = (m * xs).sum((1, 2))[ok] / area[ok]
        out[i, ok, 1] = (m * ys).sum((1, 2))[ok] / area[ok]
        out[i, :, 2] = area
    return out


def silhouettes(masks: np.ndarray, colours: list[int]) -> tuple[torch.Tensor, np.ndarray]:
    """Scale-normalised silhouettes ``(M, 1, S, S)`` of each clip's colour, one per frame
    where it shows, and the clip each came from: a crop centred on the centroid, its
    half-side twice the radius of a disc of the same area, so size does not matter."""
    import torch.nn.functional as F

    n, t, h, w = masks.shape
    traj = trajectories(masks, colours)
    ok = ~np.isnan(traj[..., 0])
    if not ok.any():
        return torch.zeros(0, 1, SILHOUETTE, SILHOUETTE), np.zeros(0, dtype=int)
    clip_of, frame_of = np.nonzero(ok)
    binary = torch.from_numpy(np.stack([masks[i, f] == colours[i] for i, f in zip(clip_of, frame_of)])).float()[:, None]
    cx, cy, area = (torch.from_numpy(traj[clip_of, frame_of, k]).float() for k in range(3))
    half = 2.0 * torch.sqrt(area / np.pi) + 1.0
    lin = torch.linspace(-1, 1, SILHOUETTE)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    # grid_sample coordinates in [-1, 1] over the frame (align_corners=False)
    sx = ((cx[:, None, None] + gx * half[:, None, None]) + 0.5) / w * 2 - 1
    sy = ((cy[:, None, None] + gy * half[:, None, None]) + 0.5) / h * 2 - 1
    crops = F.grid_sample(binary, torch.stack([sx, sy], -1), mode="bilinear", align_corners=False)
    return crops, clip_of


class ShapeNet(torch.nn.Module):
    """A small CNN: silhouette -> one of ``SHAPES``."""

    def __init__(self):
        super().__init__()
        c = 32
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, c, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(c, 2 * c, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(2 * c * (SILHOUETTE // 4) ** 2, 64), torch.nn.ReLU(), torch.nn.Linear(64, len(SHAPES)),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


def blurred(videos: np.ndarray, sigma: float) -> np.ndarray:
    """Every frame Gaussian-blurred by ``sigma`` pixels (OpenCV)."""
    import cv2

    v = np.asarray(videos)
    flat = v.reshape(-1, *v.shape[-3:])
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in flat]).reshape(v.shape)


def fit_shape_judge(videos: np.ndarray, shapes: list[str], colours: list[str], epochs: int = 30, seed: int = 0,
                    blur_sigmas: tuple[float, ...] = (0.0, 0.6, 1.0)) -> ShapeNet:  # fmt: skip
    """Train the shape judge on real clips (their silhouettes, every frame) whose main
    object's shape and colour are known; also on copies blurred by ``blur_sigmas``, so a
    soft-edged square still reads as a square (sharpness is measured on its own)."""
    colour_ids = [COLOUR_NAMES.index(c) for c in colours]
    parts = [silhouettes(colour_masks(blurred(videos, s) if s else videos), colour_ids) for s in blur_sigmas]
    crops, clip_of = torch.cat([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if len(crops) == 0:
        raise ConfigError("no object silhouettes found in the clips to train the shape judge on")
    labels = torch.tensor([SHAPES.index(shapes[i]) for i in clip_of])
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ShapeNet()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    for _ in range(epochs):
        order = torch.randperm(len(crops), generator=g)
        for s in range(0, len(order), 256):
            idx = order[s : s + 256]
            x = crops[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5  # shapes are mirror-symmetric up to rotation
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = torch.nn.functional.cross_entropy(model(x), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


class WorldJudge:
    """Colour, shape, trajectory, camera and action of generated clips against their
    prompts' ground truth (see the module docstring). ``shape_model``: a trained
    ``ShapeNet``; ``classifier``: a vidfm action classifier folder (optional)."""

    def __init__(self, shape_model: ShapeNet, classifier_path=None):
        self.shape_model = shape_model.eval()
        self.classifier = None
        if classifier_path is not None:
            from vidfm.files import model_folder
            from vidfm.tasks.classify import VideoClassifier

            self.classifier = VideoClassifier.from_pretrained(model_folder(classifier_path)).eval()

    @torch.no_grad()
    def predict_actions(self, videos: np.ndarray) -> list[str]:
        from vidfm.data.transforms import clips_from_arrays

        clips = clips_from_arrays(videos, self.classifier.num_frames, self.classifier.image_size)
        return [self.classifier.classes[i] for i in torch.cat([self.classifier(c) for c in clips.split(32)]).argmax(-1).tolist()]

    @torch.no_grad()
    def predict_shapes(self, masks: np.ndarray, colours: list[int]) -> list[str | None]:
        """Per clip, the shape of its colour's silhouettes (mean probability over frames),
        or None where that colour never shows."""
        crops, clip_of = silhouettes(masks, colours)
        out: list[str | None] = [None] * len(colours)
        if len(crops):
            probs = self.shape_model(crops).softmax(-1).numpy()
            for i in set(clip_of.tolist()):
                out[i] = SHAPES[int(probs[clip_of == i].mean(0).argmax())]
        return out

    @torch.no_grad()
    def score(self, videos: np.ndarray, records: list[dict], reference: np.ndarray | None = None) -> dict:
        """Accuracy of each attribute over the clips; ``reference``: the real clips of the
        records, for the trajectory error (mean distance in pixels between the two clips'
        displacements of the prompted object from its first position, over the frames
        where both show it) and its no-motion baseline (the same with a still object)."""
        from vidfm.metrics.generation import camera_motion

        videos = np.asarray(videos)
        masks = colour_masks(videos)
        colours = [COLOUR_NAMES.index(r["colour"]) for r in records]
        t = videos.shape[1]
        shown = (masks == np.array(colours)[:, None, None, None]).sum((2, 3)) >= min_pixels(videos.shape[3])
        colour_ok = shown.sum(1) >= max(1, t // 3)
        shapes = self.predict_shapes(masks, colours)
        out = {
            "colour_accuracy": float(colour_ok.mean()),
            "shape_accuracy": float(np.mean([s == r["shape"] for s, r in zip(shapes, records)])),
            "n": len(records),
        }
        if self.classifier is not None:
            out["action_accuracy"] = float(np.mean([p == r["action"] for p, r in zip(self.predict_actions(videos), records)]))
        cams = [r for r in records if r.get("camera")]
        if cams:
            predicted = [camera_motion(v, ignore=object_pixels(m)) for v, m, r in zip(videos, masks, records) if r.get("camera")]
            out["camera_accuracy"] = float(np.mean([p == r["camera"] for p, r in zip(predicted, cams)]))
        if reference is not None:
            out.update(trajectory_errors(trajectories(masks, colours), trajectories(colour_masks(reference), colours)))
        return out


def trajectory_errors(fake: np.ndarray, real: np.ndarray) -> dict:
    """ObjMC-style: mean pixel distance between displacements from the first shown frame,
    and what a still object would score against the same real clips."""
    errs, still = [], []
    for f, r in zip(fake, real):
        ok = ~np.isnan(f[:, 0]) & ~np.isnan(r[:, 0])
        if ok.sum() < 2:
            continue
        df, dr = f[ok, :2] - f[ok][0, :2], r[ok, :2] - r[ok][0, :2]
        errs.append(np.linalg.norm(df - dr, axis=1).mean())
        still.append(np.linalg.norm(dr, axis=1).mean())
    return {"trajectory_error_px": float(np.mean(errs)) if errs else float("nan"),
            "trajectory_error_still_px": float(np.mean(still)) if still else float("nan"), "trajectory_clips": len(errs)}  # fmt: skip
