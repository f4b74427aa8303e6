"""Referring video object segmentation with a Video-LLM (Sa2VA): "segment the small red
circle" -> "Sure, the small red circle [SEG]." -> a mask on every frame
(``vidfm.models.segmentation``).

Training data: the synthetic world's exact instance masks (``masks/<id>/00000.png``) and
referring expressions made from its metadata: the shortest description that tells the
object from the others in the video ("the red circle", "the small red circle", with its
action when colour, shape and size are not enough), in training also shape-only,
colour-only and action variants; and questions about things the video does not show,
answered "There is no purple cross in the video." (no mask). Loss: the language model's
cross-entropy + sigmoid BCE x 2.0 + Dice x 0.5 on sampled frames (and half that on the
coarse location map that prompts SAM-2) + the object score (is the object in this frame). The language model trains by LoRA (with the ``[SEG]`` row of its
vocabulary), SAM-2 fully (a real SAM-2 keeps its image encoder frozen).

Evaluation: J&F (DAVIS) per (video, object) on every frame, means on test and on the
compositional split, accuracy on clips with several objects (the predicted mask overlaps
the named object more than any other), and how often an absent thing is refused; the
baselines are the whole frame and the largest moving region.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vidfm.data.datasets import DataSource
from vidfm.errors import ConfigError, DatasetError, VideoDecodeError
from vidfm.files import cached, file_signature
from vidfm.models.segmentation import SEG_TOKEN, mask_loss, upsample_logits
from vidfm.models.videollm import VideoLLM
from vidfm.tasks.videollm import cached_clips, encode, read_clip
from vidfm.training import TrainConfig, Trainer


def seg_answer(expression: str) -> str:
    """The answer that carries the mask: the phrase, then ``[SEG]`` (GLaMM-style). Sa2VA's
    bare "Sure, [SEG]." works for big LMs; in a 2-layer LM the state at a bare ``[SEG]``
    hardly depends on the question (a linear probe on it told the referred colour 0.34 of
    the time after 150 LoRA steps, against 0.86 with the phrase just before it)."""
    return f"Sure, {expression} {SEG_TOKEN}."
ASK = ("Please segment {}.", "Segment {}.", "Where is {}? Give its mask.", "Can you segment {} in the video?")


# -- referring expressions -----------------------------------------------------------------
def _objects(meta: dict) -> list[dict]:
    return [o for shot in meta["shots"] for o in shot["objects"]]


def _action_phrase(o: dict, rng: np.random.Generator | None) -> str:
    from vidfm.data.synthetic import VERB_PHRASES

    options = VERB_PHRASES[o["action"]]
    return options[int(rng.integers(len(options))) if rng is not None else 0].format(new=o.get("new_colour"))


def describe(objects: list[dict], k: int, rng: np.random.Generator | None = None, with_action: bool = False) -> str | None:
    """The shortest expression naming object ``k`` alone among ``objects`` (colour and
    shape, then size, then its action), or None when nothing tells it apart. With ``rng``
    (training) it varies: the shape or colour alone when that is unique, an action added."""
    o, others = objects[k], [x for i, x in enumerate(objects) if i != k]

    def unique(*keys):
        return not any(all(x[key] == o[key] for key in keys) for x in others)

    if rng is not None and unique("shape") and rng.random() < 0.2:
        noun = o["shape"]
    elif rng is not None and unique("colour") and rng.random() < 0.15:
        noun = f"{o['colour']} object"
    elif unique("colour", "shape") and not (rng is not None and rng.random() < 0.2):
        noun = f"{o['colour']} {o['shape']}"
    elif unique("colour", "shape", "size"):
        noun = f"{o['size']} {o['colour']} {o['shape']}"
    elif unique("colour", "shape", "size", "action"):
        return f"the {o['size']} {o['colour']} {o['shape']} that {_action_phrase(o, rng)}"
    else:
        return None
    if with_action or (rng is not None and rng.random() < 0.3):
        return f"the {noun} that {_action_phrase(o, rng)}"
    return f"the {noun}"


def absent_expression(objects: list[dict], rng: np.random.Generator) -> str:
    """A colour and shape that no object in the video has."""
    from vidfm.data.synthetic import COLOURS, SHAPES

    shown = {(o["colour"], o["shape"]) for o in objects}
    choices = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in shown]
    c, s = choices[int(rng.integers(len(choices)))]
    return f"the {c} {s}"


def no_object_answer(expression: str) -> str:
    return f"There is no {expression.removeprefix('the ')} in the video."


def referring_records(data, split: str, seed: int = 0, train: bool = True, negatives: float = 0.3) -> list[dict]:
    """``{video, labels, mask_id, expression, question, answer, objects}`` per object of
    every video of ``split`` (``mask_id`` 0 and no mask for an absent thing, asked for in a
    ``negatives`` share of the videos; in evaluation the main object's expression carries
    its action)."""
    source = DataSource(data)
    if not source.is_world:
        raise DatasetError(f"{data}: referring segmentation trains on a synthetic world (it needs instance masks)")
    rng = np.random.default_rng(seed)
    records = []
    for m in source.world().metadata():
        if m["split"] != split:
            continue
        if "masks" not in m:
            raise DatasetError(f"{data}: this world has no instance masks (written by vidfm since issue 15); synthesise it again")
        objects = _objects(m)
        labels = str(Path(m["path"]).parent.parent / m["masks"])
        for k, o in enumerate(objects):
            expression = describe(objects, k, rng if train else None, with_action=not train and k == 0 and o["action"] != "stay_still")
            if expression is None:
                continue
            question = (ASK[int(rng.integers(len(ASK)))] if train else ASK[0]).format(expression)
            records.append({"video": m["path"], "labels": labels, "mask_id": o["mask_id"], "expression": expression, "question": question,
                            "answer": seg_answer(expression), "objects": len(objects), "others": [x["mask_id"] for x in objects if x is not o]})  # fmt: skip
        if rng.random() < negatives:
            expression = absent_expression(objects, rng)
            records.append({"video": m["path"], "labels": labels, "mask_id": 0, "expression": expression, "question": ASK[0].format(expression),
                            "answer": no_object_answer(expression), "objects": len(objects), "others": []})  # fmt: skip
    if not records:
        raise DatasetError(f"{data}: no videos in split {split!r}")
    return records


# -- frames and masks --------------------------------------------------------------------------
def frames_and_masks(video, labels) -> tuple[np.ndarray, np.ndarray] | str:
    """Every frame of ``video`` (T, H, W, 3) and its instance labels (T, H, W) from the mask
    folder ``labels``, or why they cannot be used (unreadable, or not the same frames)."""
    from vidfm.data.synthetic import read_masks
    from vidfm.io.reader import VideoReader

    try:
        with VideoReader(video) as r:
            frames = r.get_frames(np.arange(len(r)))
        masks = read_masks(labels)
    except (VideoDecodeError, ConfigError) as e:
        return getattr(e, "problem", str(e))
    if masks.shape != frames.shape[:3]:
        return f"{len(masks)} masks of {masks.shape[1:]} for {len(frames)} frames of {frames.shape[1:3]}"
    return frames, masks


def pixel_cache(records: list[dict], cache: Path, progress=None) -> tuple[dict, dict]:
    """{video: {frames (T, H, W, 3) uint8, labels (T, H, W) uint8}} of every readable video
    (all frames at their own size), through a cache file keyed by the videos' size and
    mtime; unreadable videos, or masks that do not match them, go to the second dict."""

    videos = sorted({r["video"] for r in records})
    labels_of = {r["video"]: r["labels"] for r in records}

    def build():
        pixels, skipped = {}, {}
        for v in progress(videos, "frames and masks", len(videos), "video") if progress else videos:
            read = frames_and_masks(v, labels_of[v])
            if isinstance(read, str):
                skipped[v] = read
                continue
            pixels[v] = {"frames": torch.from_numpy(read[0]), "labels": torch.from_numpy(read[1])}
        return pixels, skipped

    return cached(cache, {"videos": file_signature(videos)}, build)


class ReferringData(Dataset):
    """One (video, expression) per example, with ``frames`` sampled frame indices (drawn
    again every epoch in training; spread evenly in evaluation); instruction examples
    (``mask_id`` None) go through as text."""

    def __init__(self, records: list[dict], pixels: dict, clips: dict, train: bool, seed: int = 0, frames: int = 4):
        self.records = [r for r in records if (r["mask_id"] is None or r["video"] in pixels) and r["video"] in clips]
        if not self.records:
            raise DatasetError("none of the videos could be decoded")
        self.pixels, self.train, self.seed, self.frames, self.epoch = pixels, train, seed, frames, 0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        if r["mask_id"] is None:  # an instruction example: text only
            return {**r, "frames": np.zeros(0, int), "messages": [{"role": "user", "content": r["question"]}]}
        n = len(self.pixels[r["video"]]["frames"])
        if self.train:
            idx = np.random.default_rng((self.seed, self.epoch, i)).choice(n, size=min(self.frames, n), replace=False)
        else:
            idx = np.linspace(0, n - 1, min(self.frames, n)).round().astype(int)
        return {**r, "frames": np.sort(idx), "messages": [{"role": "user", "content": r["question"]}]}


def _pixels(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float() / 255.0


def _step(model: VideoLLM, batch: list[dict], clips: dict, pixels: dict):
    """(loss, logs, (mask logits, targets)) of a batch: the LM's loss on the answers, and
    for every ``[SEG]`` the mask and object-score losses on its sampled frames. A thing the
    video does not show is also put to the decoder (its ``[SEG]`` state from the answer
    "Sure, <phrase> [SEG]." without LM loss) with empty masks: the object score learns to
    say "not here" when the LM does not refuse."""
    feats = encode(model, clips, [r["video"] for r in batch])
    out, hidden, rows = model.seg_hidden(feats, [r["messages"] for r in batch], [r["answer"] for r in batch])
    loss, logs = out.loss, {"lm_loss": float(out.loss.detach())}
    absent = [i for i, r in enumerate(batch) if r["mask_id"] == 0]
    if absent:
        _, more, more_rows = model.seg_hidden([feats[i] for i in absent], [batch[i]["messages"] for i in absent],
                                              [seg_answer(batch[i]["expression"]) for i in absent])  # fmt: skip
        hidden, rows = torch.cat([hidden, more]), torch.cat([rows, torch.tensor(absent, device=rows.device)[more_rows]])
    if len(rows) == 0:
        return loss, logs, None
    frames, targets, prompts = [], [], []
    for h, row in zip(hidden, rows.tolist()):
        r = batch[row]
        idx = torch.from_numpy(np.asarray(r["frames"]))
        labels = pixels[r["video"]]["labels"][idx]
        frames.append(pixels[r["video"]]["frames"][idx])
        targets.append(labels == r["mask_id"] if r["mask_id"] else torch.zeros_like(labels, dtype=torch.bool))
        prompts.append(h.expand(len(idx), -1))
    targets = torch.cat(targets).to(hidden.device)
    logits, objects, coarse = model.segmenter(_pixels(torch.cat(frames)), torch.cat(prompts))
    logits = upsample_logits(logits, targets.shape[-2:])
    present = targets.flatten(1).any(1).to(objects.dtype)
    seg = mask_loss(logits, targets) + 0.5 * mask_loss(upsample_logits(coarse, targets.shape[-2:]), targets)
    score = F.binary_cross_entropy_with_logits(objects, present)
    phrase = phrase_loss(model, hidden, [batch[row]["expression"] for row in rows.tolist()])
    logs.update(mask_loss=float(seg.detach()), score_loss=float(score.detach()), phrase_loss=float(phrase.detach()))
    return loss + seg + score + phrase, logs, (logits.detach(), targets)


def phrase_loss(model: VideoLLM, hidden: torch.Tensor, phrases: list[str]) -> torch.Tensor:
    """Each ``[SEG]`` state, read by the LM's own output head, should name the words of its
    phrase (mean negative log-likelihood of each word). Without it the states of every
    ``[SEG]`` stay alike (the LM's last hidden states share a large common part) and the
    mask decoder, given one prompt for everything, learns the union of all objects."""
    logp = model.lm.get_output_embeddings()(hidden).float().log_softmax(-1)
    words = [model.tokenizer(p, add_special_tokens=False).input_ids for p in phrases]
    return torch.stack([-logp[i, ids].mean() for i, ids in enumerate(words)]).mean()


def instruction_mix(data, count: int, seed: int = 0) -> list[dict]:
    """``count`` instruction examples of the world's train split (drawn without repeats while
    there are enough), shaped like referring records without a mask."""
    from vidfm.tasks.videollm import instruction_records

    if count <= 0:
        return []
    pool = instruction_records(data, "train", "instruct", seed)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(pool), size=count, replace=count > len(pool))
    return [{"video": pool[i]["video"], "question": pool[i]["question"], "answer": pool[i]["answers"][int(rng.integers(len(pool[i]["answers"])))],
             "mask_id": None} for i in picks]  # fmt: skip


def set_trainable_segment(model: VideoLLM, lora_rank: int) -> None:
    """LoRA on the LM's projections with the ``[SEG]`` row of its vocabulary, and SAM-2
    (a loaded SAM-2 checkpoint keeps its image encoder frozen, as in Sa2VA)."""
    from vidfm.adapt.lora import add_lora

    model.requires_grad_(False)
    add_lora(model.lm, lora_rank, 2 * lora_rank, model.lm_lora_targets(), trainable_tokens=[model.seg_token_id])
    model.segmenter.requires_grad_(True)
    if model.config.segmenter != "sam2-tiny":
        model.segmenter.sam.vision_encoder.requires_grad_(False)


def train_segmenter(data, out, init, train_config: TrainConfig | None = None, sam: str | None = None, image_size: int | None = None,
                    frames: int = 4, lora_rank: int = 16, mix: float = 1.0, progress=None, resume: bool = True) -> dict:  # fmt: skip
    """The ``segment`` stage: add ``[SEG]`` and SAM-2 (``sam``, default sam2-tiny at
    ``image_size`` 128 px) to the Video-LLM ``init`` and train them on the world's masks, or
    train further a model that already segments; ``OUT/best`` answers ``vidfm segment``.
    ``mix`` instruction examples (questions, captions, "when") per referring one keep the
    LM answering questions (trained on segmentation alone it forgets: closed QA fell to 0.03
    on the 120-video world)."""
    if init is None:
        raise ConfigError("the segment stage adds segmentation to a trained Video-LLM: give --init MODEL")
    out = Path(out)
    train_config = train_config or TrainConfig(output_dir=str(out))
    train_config.output_dir = str(out)
    torch.manual_seed(train_config.seed)
    model = VideoLLM.from_pretrained(init, merge_lora=True)
    if model.segmenter is None:
        model.add_segmenter(sam or "sam2-tiny", image_size or 128)
    elif (sam and sam != model.config.segmenter) or (image_size and image_size != model.config.seg_size):
        raise ConfigError(f"{init} already segments with {model.config.segmenter} at {model.config.seg_size} px; "
                          "leave out --sam/--seg-size to keep training it, or start from a model without a segmenter")  # fmt: skip
    set_trainable_segment(model, lora_rank)
    train_r = referring_records(data, "train", train_config.seed)
    val_r = referring_records(data, "val", train_config.seed + 1, train=False)
    pixels, bad = pixel_cache(train_r + val_r, out / "frames.pt", progress)
    train_r += instruction_mix(data, round(mix * len(train_r)), train_config.seed)
    clips, skipped = cached_clips([r["video"] for r in train_r + val_r], model.config, out / "clips.pt", progress)
    train, val = ReferringData(train_r, pixels, clips, True, train_config.seed, frames), ReferringData(val_r, pixels, clips, False, frames=frames)
    train_config.metric, train_config.metric_mode = "mIoU", "max"
    train_config.extra = {"task": "videollm", "stage": "segment", "data": str(data), "init": str(init), "frames": frames, "mix": mix, "model": asdict(model.config)}

    def loss_fn(m, batch, g):
        loss, logs, _ = _step(m, batch, clips, pixels)
        return loss, logs

    def evaluate_fn(m, loader, _acc):
        losses, ious = [], []
        for batch in loader:
            loss, _, masks = _step(m, batch, clips, pixels)
            losses.append(float(loss))
            if masks is not None:
                pred, truth = masks[0] > 0, masks[1]
                union = (pred | truth).flatten(1).sum(1)
                ious += torch.where(union > 0, (pred & truth).flatten(1).sum(1) / union.clamp(min=1), 1.0).tolist()
        return {"loss": float(np.mean(losses)), "mIoU": float(np.mean(ious)) if ious else 0.0}

    trainer = Trainer(model, train_config, train, loss_fn, val, evaluate_fn, save_fn=lambda m, p: m.save_pretrained(p), collate_fn=list)
    summary = trainer.fit(resume=resume)
    from vidfm.adapt import trainable_parameters

    summary.update(stage="segment", params=trainable_parameters(model), train_examples=len(train), val_examples=len(val),
                   skipped_videos=sorted(set(skipped) | set(bad)))  # fmt: skip
    return summary


# -- using a trained model ---------------------------------------------------------------------
@torch.no_grad()
def video_features(model: VideoLLM, video) -> dict:
    """``{features, note}``: the Video-LLM's encoding of ``video`` (its sampled frames)."""
    c = model.config
    clip = read_clip(video, c.num_frames, c.sample_fps, c.read_size)
    return {"features": model.encode_video(clip["clip"][None], [clip["times"]], [clip["duration"]]), "note": clip["note"]}


@torch.no_grad()
def refer(model: VideoLLM, video, expression: str, question: str | None = None, seen: dict | None = None) -> dict:
    """Ask the model to segment ``expression`` in ``video``: ``{answer, prompt}`` where
    ``prompt`` is the ``[SEG]`` hidden state (D_lm,), or None when the model says the
    video shows no such thing. ``seen``: ``video_features`` already computed (several
    questions about one video)."""
    if not expression.strip():
        raise ConfigError("the expression is empty; say what to segment, e.g. 'the small red circle'")
    if model.segmenter is None:
        raise ConfigError(f"this Video-LLM ({model.config.lm} LM) has no segmenter; train one with 'vidfm train videollm WORLD --stage segment --init MODEL'")
    seen = seen or video_features(model, video)
    features = seen["features"]
    messages = [[{"role": "user", "content": question or ASK[0].format(expression.strip())}]]
    answer = model.generate(features, messages, keep_seg=True)[0]
    if SEG_TOKEN not in answer:
        return {"answer": answer, "prompt": None, "note": seen["note"]}
    _, hidden, _ = model.seg_hidden(features, messages, [answer])
    said = " ".join(answer.replace(SEG_TOKEN, " ").split()).rstrip(" ,.") + "."
    return {"answer": said, "prompt": hidden[0], "note": seen["note"]}


@torch.no_grad()
def decode_masks(model: VideoLLM, frames: np.ndarray, prompt: torch.Tensor, threshold: float = 0.0, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """((N, H, W) bool masks, (N,) object scores) of ``frames`` (N, H, W, 3) uint8 with one
    ``[SEG]`` prompt, ``batch_size`` frames at a time; a frame whose object score is below 0
    gets an empty mask."""
    seg = model.segmenter.eval()
    masks, scores = [], []
    for s in range(0, len(frames), batch_size):
        part = torch.from_numpy(frames[s : s + batch_size])
        logits, score, _ = seg(_pixels(part), prompt[None].expand(len(part), -1))
        masks.append(((upsample_logits(logits, part.shape[1:3]) > threshold) & (score > 0)[:, None, None]).cpu().numpy())
        scores.append(score.cpu().numpy())
    return np.concatenate(masks), np.concatenate(scores)


@torch.no_grad()
def iter_masks(model: VideoLLM, video, prompt: torch.Tensor, batch_size: int = 16, threshold: float = 0.0):
    """``(seconds, frame (H, W, 3) uint8, mask (H, W) bool, object score)`` for every frame
    of ``video``, decoded as it goes (memory does not grow with the video): each frame
    through SAM-2 with the same ``[SEG]`` prompt, logits upsampled to the frame's size; a
    frame whose object score is below 0 gets an empty mask (the object is not there)."""
    from vidfm.io.reader import VideoReader

    batch: list = []

    def flush():
        masks, scores = decode_masks(model, np.stack([f for _, f in batch]), prompt, threshold)
        for (t, f), m, s in zip(batch, masks, scores.tolist()):
            yield t, f, m, s

    with VideoReader(video) as r:
        for t, frame in r.stream():
            batch.append((t, frame))
            if len(batch) == batch_size:
                yield from flush()
                batch = []
    if batch:
        yield from flush()


def segment_video(model: VideoLLM, video, expression: str) -> dict:
    """``{answer, found, refused, masks (T, H, W) bool, times, scores, note}``: the mask of
    what ``expression`` names on every frame; all empty when the video shows no such thing
    (the model's answer says so, ``refused``, or SAM-2's object score is low on every
    frame)."""
    from vidfm.io.probe import probe

    ref = refer(model, video, expression)
    if ref["prompt"] is None:
        info = probe(video)
        n, h, w = info.frames, info.height, info.width
        return {"answer": ref["answer"], "found": False, "refused": True, "masks": np.zeros((n, h, w), bool), "times": [], "scores": [], "note": ref["note"]}
    times, masks, scores = [], [], []
    for t, _, m, s in iter_masks(model, video, ref["prompt"]):
        times.append(t)
        masks.append(m)
        scores.append(s)
    masks = np.stack(masks)
    return {"answer": ref["answer"], "found": bool(masks.any()), "refused": False, "masks": masks, "times": times, "scores": scores, "note": ref["note"]}


def overlay(frame: np.ndarray, mask: np.ndarray, dim: float = 0.45, colour=(0, 255, 0)) -> np.ndarray:
    """The frame with everything outside the mask dimmed and the mask outlined, for people
    to look at (the object keeps its own colours: a tint would change them)."""
    import cv2

    out = frame.copy()
    if mask.any():
        out[~mask] = (out[~mask] * dim).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, colour, 1)
    return out


def write_segmentation(model: VideoLLM, video, expression: str, out, gif_frames: int = 240, progress=None) -> dict:
    """``vidfm segment``: ``OUT/00000.png``... (DAVIS-style masks, 1 = the object), an
    ``overlay.mp4`` of the whole video and an ``overlay.gif`` (at most ``gif_frames``
    frames, at most 320 pixels wide), and ``segment.json``. Frames stream from decoder to
    files, so memory does not grow with the video. When the model says the video shows no
    such thing, or SAM-2's object score is low on every frame, every mask is empty and the
    summary says so (``found`` false)."""
    import json

    from PIL import Image

    from vidfm.data.synthetic import write_mask
    from vidfm.files import atomic_write_text
    from vidfm.io.probe import probe
    from vidfm.io.writer import write_gif, write_video

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; give a folder for the masks")
    info = probe(video)
    ref = refer(model, video, expression)
    out.mkdir(parents=True, exist_ok=True)
    stale = [*out.glob("[0-9][0-9][0-9][0-9][0-9].png"), out / "segment.json", out / "overlay.mp4", out / "overlay.gif"]
    for old in stale:  # nothing of an earlier run may pass for this one (segment.json is written last)
        old.unlink(missing_ok=True)
    step = max(1, -(-info.frames // gif_frames))
    gif, rows = [], []

    def frames():
        if ref["prompt"] is None:
            from vidfm.io.reader import VideoReader

            with VideoReader(video) as r:
                stream = ((t, f, np.zeros(f.shape[:2], bool), float("-inf")) for t, f in r.stream())
                yield from stream
        else:
            yield from iter_masks(model, video, ref["prompt"])

    def overlays():
        items = frames()
        for i, (t, frame, mask, score) in enumerate(progress(items, "segmenting", info.frames, "frame") if progress else items):
            write_mask(out / f"{i:05d}.png", mask.astype(np.uint8))
            rows.append((t, int(mask.sum()), score))
            shown = overlay(frame, mask)
            if i % step == 0:
                img = Image.fromarray(shown)
                if img.width > 320:
                    img = img.resize((320, max(2, round(img.height * 320 / img.width))), Image.BILINEAR)
                gif.append(np.asarray(img))
            yield shown

    write_video(out / "overlay.mp4", overlays(), fps=info.fps or 8.0)
    write_gif(out / "overlay.gif", np.stack(gif), fps=min(10.0, (info.fps or 8.0) / step))
    present = [t for t, area, _ in rows if area > 0]
    summary = {"video": str(video), "expression": expression, "answer": ref["answer"], "found": bool(present), "refused": ref["prompt"] is None,
               "frames": len(rows), "frames_with_object": len(present), "first_seen": present[0] if present else None,
               "last_seen": present[-1] if present else None, "mean_area": float(np.mean([a for _, a, _ in rows])) / (info.width * info.height) if rows else 0.0,
               "masks": str(out), "overlay": str(out / "overlay.mp4"), "gif": str(out / "overlay.gif"), "note": ref["note"]}  # fmt: skip
    atomic_write_text(out / "segment.json", json.dumps(summary, indent=2) + "\n")
    return summary


# -- evaluation ---------------------------------------------------------------------------------
def moving_region(frames: np.ndarray, threshold: int = 30) -> np.ndarray:
    """Baseline: per frame, the largest connected region that differs from the video's
    median frame (what moves or changes), (T, H, W) bool."""
    import cv2

    diff = np.abs(frames.astype(np.int16) - np.median(frames, axis=0).astype(np.int16)).max(-1) > threshold
    out = np.zeros_like(diff)
    for i, d in enumerate(diff):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(d.astype(np.uint8), connectivity=8)
        if n > 1:
            out[i] = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


@torch.no_grad()
def evaluate_segmentation(model: VideoLLM, data, split: str = "test", limit: int | None = None, progress=None) -> dict:
    """J&F (DAVIS) per (video, object) and their mean, on clips with one object and with
    several (there also whether the mask overlaps the named object more than any other),
    how often an absent thing is refused and a present one answered with ``[SEG]``, and the
    whole-frame and largest-moving-region baselines on the same objects."""
    from vidfm.metrics.segmentation import mean_jf, video_jf

    records = referring_records(data, split, seed=1, train=False, negatives=1.0)
    videos = sorted({r["video"] for r in records})[:limit] if limit else sorted({r["video"] for r in records})
    rows, absent, skipped, baselines = [], [], {}, {"whole_frame": [], "moving_region": []}
    for video in progress(videos, "segmenting", len(videos), "video") if progress else videos:
        mine = [r for r in records if r["video"] == video]
        read = frames_and_masks(video, mine[0]["labels"])
        if isinstance(read, str):
            skipped[video] = read
            continue
        frames, labels = read
        moving = moving_region(frames)
        seen = video_features(model, video)  # the LM's view of the video, once for all its questions
        for r in mine:
            ref = refer(model, video, r["expression"], r["question"], seen)
            pred = decode_masks(model, frames, ref["prompt"])[0] if ref["prompt"] is not None else np.zeros(labels.shape, bool)
            if r["mask_id"] == 0:
                absent.append(not pred.any())  # the LM refused, or SAM-2 found it on no frame
                continue
            truth = labels == r["mask_id"]
            row = {"video": Path(video).stem, "expression": r["expression"], "objects": r["objects"], "answered": ref["prompt"] is not None,
                   **video_jf(pred, truth)}  # fmt: skip
            if r["others"]:
                mine_iou = _iou(pred, truth)
                row["right_object"] = bool(mine_iou > 0 and all(mine_iou > _iou(pred, labels == o) for o in r["others"]))
            rows.append(row)
            baselines["whole_frame"].append(video_jf(np.ones_like(truth), truth))
            baselines["moving_region"].append(video_jf(moving, truth))
    single, multi = [r for r in rows if r["objects"] == 1], [r for r in rows if r["objects"] > 1]
    return {"split": split, "videos": len(videos), **mean_jf(rows),
            "single_object": mean_jf(single),
            "multi_object": {**mean_jf(multi), "right_object": float(np.mean([r["right_object"] for r in multi])) if multi else None},
            "answered_with_seg": float(np.mean([r["answered"] for r in rows])) if rows else None,
            "absent_refused": {"count": len(absent), "rate": float(np.mean(absent)) if absent else None},
            "baselines": {k: mean_jf(v) for k, v in baselines.items()}, "per_video": rows, "skipped": skipped}  # fmt: skip
