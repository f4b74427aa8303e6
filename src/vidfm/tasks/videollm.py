"""Train, evaluate and use a Video-LLM (``vidfm.models.videollm``).

Frames: taken at ``sample_fps`` (1 fps), then thinned uniformly to the model's frame count
(a short video with fewer 1-fps frames is sampled uniformly instead); their times are the
real presentation timestamps, and they go into the prompt.

Stages (SPEC-style LLaVA recipe), each a run of the one trainer:

1. ``align``: video-caption pairs ("Describe the video."); only the connector trains.
2. ``instruct``: templates over the data: describe, closed QA, "when does X happen?"
   (answer "from 3.2 s to 5.0 s"), counting, yes/no reasoning; the connector and the
   language model (LoRA, or fully for the tiny LM) train.
3. ``dpo``: preference pairs built from the ground truth (the right answer against one
   with a wrong colour, action, count, size or time), loss
   ``-log sigmoid(beta * ((log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))))``
   with the starting model as the reference (its log-probabilities computed once).

Every video is decoded once (its frames at the model's layout) and cached in the run folder,
keyed by the frame layout and every video's size and mtime. The encoder is frozen by
default; ``encoder_train="full"`` trains it with the rest in the instruct/dpo stages (on a
CPU the tiny encoders learn the world this way: features of an encoder never trained on it
hardly tell a small object's colour).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vidfm.data.datasets import DataSource, split_off_validation
from vidfm.errors import ConfigError, DatasetError, VideoDecodeError
from vidfm.files import cached, file_signature
from vidfm.models.videollm import VideoLLM, VideoLLMConfig
from vidfm.training import TrainConfig, Trainer

STAGES = ("align", "instruct", "dpo")  # the memory stage: vidfm.tasks.longvideo.train_memory
DESCRIBE = "Describe the video."
QA_TYPES = ("colour", "shape", "action", "size", "count", "direction", "yesno")


# -- frames ------------------------------------------------------------------------------------
def frame_indices(timestamps: np.ndarray, num_frames: int, fps: float) -> tuple[np.ndarray, int]:
    """(indices, how many 1-fps candidates there were): frames at ``fps``, thinned uniformly
    to ``num_frames``; uniform over all frames when there are fewer candidates."""
    from vidfm.io.samplers import fps_indices, uniform_indices

    n = len(timestamps)
    candidates = fps_indices(timestamps=timestamps, dst_fps=fps) if n > 1 else np.zeros(1, dtype=int)
    if len(candidates) >= num_frames:
        return candidates[uniform_indices(len(candidates), num_frames)], len(candidates)
    return uniform_indices(n, num_frames), len(candidates)


def read_clip(path, num_frames: int, fps: float, size: int, span: tuple[float, float] | None = None) -> dict:
    """``{clip (T, 3, H, W) in [0, 1], times (T,), duration, note}`` for one video, or for
    the part ``span`` = (start, end) seconds of it (times and duration then count from
    ``start``: the part is shown to the model as a video of its own)."""
    from vidfm.data.transforms import to_float_clip
    from vidfm.io.reader import VideoReader

    with VideoReader(path, size=(size, size)) as r:
        ts, duration, offset = r.timestamps, r.duration, 0
        if span is not None:
            inside = np.flatnonzero((ts >= span[0] - 1e-9) & (ts < span[1] - 1e-9))
            if len(inside) == 0:
                raise ConfigError(f"{path}: no frames between {span[0]:.1f} s and {span[1]:.1f} s (the video lasts {duration:.1f} s)")
            offset, ts, duration = int(inside[0]), ts[inside] - span[0], min(span[1], duration) - span[0]
        idx, candidates = frame_indices(ts, num_frames, fps)
        clip = to_float_clip(r.get_frames(idx + offset))
        times = ts[idx]
    note = f"sampled {num_frames} of {candidates} frames taken at {fps:g} fps" if candidates > num_frames else None
    return {"clip": clip, "times": times, "duration": duration, "note": note}


def decoded_clips(paths: list[str], config: VideoLLMConfig, progress=None, skipped: dict | None = None) -> dict:
    """{path: {frames (T, H, W, 3) uint8, times, duration, note}} for every readable video;
    unreadable ones land in ``skipped`` (path -> why), or raise without it."""
    from vidfm.io.reader import VideoReader

    out = {}
    todo = list(dict.fromkeys(paths))
    for p in progress(todo, "decoding", len(todo), "video") if progress else todo:
        try:
            with VideoReader(p, size=(config.read_size, config.read_size)) as r:
                idx, candidates = frame_indices(r.timestamps, config.num_frames, config.sample_fps)
                out[p] = {"frames": torch.from_numpy(r.get_frames(idx)), "times": torch.from_numpy(r.timestamps[idx].copy()), "duration": r.duration}
        except VideoDecodeError as e:
            if skipped is None:
                raise
            skipped[p] = e.problem
    return out


def cached_clips(paths: list[str], config: VideoLLMConfig, cache: Path, progress=None) -> tuple[dict, dict]:
    """``decoded_clips`` through a cache file, reused while the frame layout and every
    video's size and mtime are the same (a damaged cache is rebuilt)."""
    key = {"frames": config.num_frames, "fps": config.sample_fps, "size": config.read_size, "videos": file_signature(sorted(set(paths)))}

    def build():
        skipped: dict = {}
        return decoded_clips(paths, config, progress, skipped), skipped

    return cached(cache, key, build)


def encode(model: VideoLLM, clips: dict, paths: list[str]) -> list[dict]:
    """Features of the cached clips of ``paths`` (through the encoder, with gradients when
    it trains)."""
    from vidfm.data.transforms import to_float_clip

    batch = torch.stack([to_float_clip(clips[p]["frames"].numpy()) for p in paths])
    return model.encode_video(batch, [clips[p]["times"] for p in paths], [clips[p]["duration"] for p in paths])


# -- instruction data --------------------------------------------------------------------------
def _fmt(t: float) -> str:
    return f"{t:.1f}"


def time_answer(start: float, end: float) -> str:
    return f"from {_fmt(start)} s to {_fmt(end)} s"


def parse_time_answer(text: str) -> tuple[float, float] | None:
    """(start, end) seconds from an answer like "from 3.2 s to 5.0 s", or None."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*s?\s*(?:to|-|–|until)\s*(\d+(?:\.\d+)?)\s*s", text)
    if not m:
        return None
    a, b = float(m.group(1)), float(m.group(2))
    return (a, b) if a <= b else (b, a)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9. ]", " ", text.lower()).replace(" .", " ").strip(" .").split())


def answer_matches(predicted: str, truth: str) -> bool:
    """Exact match after normalisation, or the true answer said in a short reply."""
    p, t = normalise(predicted), normalise(truth)
    return p == t or (len(p.split()) <= 6 and re.search(rf"\b{re.escape(t)}\b", p) is not None)


def _world_records(source: DataSource, split: str, seed: int) -> list[dict]:
    from vidfm.data.synthetic import ACTIONS

    rng = np.random.default_rng(seed)
    meta = {m["path"]: m for m in source.world().metadata()}
    records = []
    for cap in source.captions(split):
        records.append({"video": cap["path"], "type": "describe", "question": DESCRIBE, "answers": cap["captions"]})
    for qa in source.qa(split):
        records.append({"video": qa["path"], "type": qa.get("type", "qa"), "question": qa["question"], "answers": [qa["answer"]]})
    for g in source.grounding(split):
        records.append({"video": g["path"], "type": "when", "question": f"when does this happen: {g['sentence']}?",
                        "answers": [time_answer(g["start"], g["end"])], "segment": (g["start"], g["end"])})  # fmt: skip
    for path, m in meta.items():
        if m["split"] != split or len(m["shots"]) != 1:
            continue
        o = m["shots"][0]["objects"][0]
        probe = ACTIONS[int(rng.integers(len(ACTIONS)))] if rng.random() < 0.5 else o["action"]  # half the questions are "yes"
        verb = {"move_left": "move to the left", "move_right": "move to the right", "move_up": "move up", "move_down": "move down",
                "change_colour": "change colour", "stay_still": "stay still"}.get(probe, probe)  # fmt: skip
        records.append({"video": path, "type": "yesno", "question": f"does the {o['colour']} {o['shape']} {verb}?",
                        "answers": ["yes" if probe == o["action"] else "no"]})  # fmt: skip
    return records


def instruction_records(data, split: str = "train", stage: str = "instruct", seed: int = 0) -> list[dict]:
    """Records ``{video, type, question, answers[, segment]}``: from a world, every template;
    from a captions JSONL, descriptions; from a QA JSONL, its questions."""
    source = DataSource(data)
    if source.is_world:
        records = _world_records(source, split, seed)
    elif source.kind == "jsonl":
        lines = source.path.read_text().splitlines()
        first = next((line for line in lines if line.strip()), "{}")
        if '"question"' in first:
            records = [{"video": q["path"], "type": q.get("type", "qa"), "question": q["question"], "answers": [q["answer"]]} for q in source.qa(split)]
        else:
            records = [{"video": c["path"], "type": "describe", "question": DESCRIBE, "answers": c["captions"]} for c in source.captions(split)]
    else:
        raise DatasetError(f"{data}: a Video-LLM trains on a synthetic world, a captions JSONL or a QA JSONL")
    if stage == "align":
        records = [r for r in records if r["type"] == "describe"]
    if not records:
        raise DatasetError(f"{data}: no {'captions' if stage == 'align' else 'examples'} for the {stage} stage in split {split!r}")
    return records


def preference_pairs(records: list[dict], seed: int = 0) -> list[dict]:
    """(chosen, rejected) answers from the ground truth: the right one against one with a
    wrong colour, shape, action, size, count, direction, yes/no or time."""
    from vidfm.data.synthetic import (
        ACTIONS,
        COLOURS,
        COUNT_WORDS,
        DIRECTIONS,
        SHAPES,
        SIZES,
    )

    rng = np.random.default_rng(seed)
    pools = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES), "count": list(COUNT_WORDS.values()),
             "direction": sorted(set(DIRECTIONS.values())), "action": [a.replace("_", " ") for a in ACTIONS], "yesno": ["yes", "no"]}  # fmt: skip
    pairs = []
    for r in records:
        truth = r["answers"][0]
        if r["type"] == "when":
            s, e = r["segment"]
            shift = (e - s) + 0.5 + float(rng.random())
            wrong = time_answer(s + shift, e + shift) if rng.random() < 0.5 or s < shift else time_answer(max(0.0, s - shift), max(0.0, e - shift))
        elif r["type"] in pools:
            wrong = str(rng.choice([x for x in pools[r["type"]] if x != truth]))
        else:
            continue
        pairs.append({**r, "chosen": truth, "rejected": wrong})
    return pairs


class InstructionData(Dataset):
    """Examples over records whose videos could be decoded. With ``turns`` > 1, one example
    is a conversation of up to ``turns`` questions about one video (a LLaVA-style packing:
    the video's prompt is paid once for several answers), reshuffled every epoch. A caption
    is drawn per epoch (reproducibly) from each video's references."""

    def __init__(self, records: list[dict], clips: dict, train: bool, seed: int = 0, turns: int = 1):
        self.records = [r for r in records if r["video"] in clips]
        if not self.records:
            raise DatasetError("none of the videos could be decoded")
        if turns < 1:
            raise ConfigError(f"turns must be >= 1, got {turns}")
        self.train, self.seed, self.epoch, self.turns = train, seed, 0, turns
        by_video: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            by_video.setdefault(r["video"], []).append(i)
        self.groups = list(by_video.items()) if turns > 1 else [(r["video"], [i]) for i, r in enumerate(self.records)]
        self.slots = [(g, k) for g, (_, idx) in enumerate(self.groups) for k in range(-(-len(idx) // turns))]

    def __len__(self) -> int:
        return len(self.slots)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        g, k = self.slots[i]
        video, idx = self.groups[g]
        rng = np.random.default_rng((self.seed, self.epoch, g))
        order = rng.permutation(idx) if self.train and self.turns > 1 else idx
        chosen = [self.records[j] for j in order[k * self.turns : (k + 1) * self.turns]]
        messages = []
        for r in chosen:
            answers = r["answers"]
            answer = answers[int(rng.integers(len(answers)))] if self.train else answers[0]
            messages += [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": answer}]
        return {**chosen[0], "video": video, "messages": messages, "index": i}


# -- training ----------------------------------------------------------------------------------
def set_trainable(model: VideoLLM, stage: str) -> None:
    """align: the connector(s) only; instruct/dpo: also the language model, by LoRA or
    fully (``lm_train``), and the video encoder with ``encoder_train="full"``; memory:
    the memory bridge, the connectors and the language model. The image
    tower of a dual encoder stays frozen: it is there for the detail its own pre-training
    gave it (VideoGPT+)."""
    from vidfm.adapt.lora import add_lora, has_lora

    model.requires_grad_(False)
    for m in (model.connector, model.image_connector, model.memory_bridge):
        if m is not None:
            m.requires_grad_(True)
    if stage == "align":
        return
    if model.config.encoder_train == "full" and stage != "memory":
        model.encoder.requires_grad_(True)
    if model.config.lm_train == "frozen":
        return
    if model.config.lm_train == "full":
        model.lm.requires_grad_(True)
        return
    if not has_lora(model.lm):
        add_lora(model.lm, model.config.lora_rank, 2 * model.config.lora_rank, model.lm_lora_targets())
    for name, p in model.lm.named_parameters():
        p.requires_grad = "lora_" in name


def _conversations(batch: list[dict]) -> list[list[dict]]:
    return [[{"role": "user", "content": r["question"]}] for r in batch]


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, per-pair reward margin) of DPO's sigmoid loss on summed answer log-probs."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean(), beta * margin.detach()


def train_videollm(data, out, *, config: VideoLLMConfig | None = None, stage: str = "instruct", init: str | None = None,
                   train_config: TrainConfig | None = None, beta: float = 0.1, turns: int = 1, progress=None, resume: bool = True) -> dict:  # fmt: skip
    """Run one training stage; ``OUT/best`` is a Video-LLM folder. ``init`` continues from a
    saved Video-LLM (its config wins over ``config``)."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    out = Path(out)
    train_config = train_config or TrainConfig(output_dir=str(out))
    train_config.output_dir = str(out)
    if stage == "dpo" and init is None:
        raise ConfigError("the dpo stage refines a trained Video-LLM: give --init MODEL (an instruct run)")
    torch.manual_seed(train_config.seed)
    model = VideoLLM.from_pretrained(init, merge_lora=False) if init else VideoLLM(config or VideoLLMConfig())
    set_trainable(model, stage)
    source = DataSource(data)
    train_r = instruction_records(data, "train", stage, train_config.seed)
    if source.is_world:
        val_r = instruction_records(data, "val", stage, train_config.seed + 1)
    else:
        train_r, val_r = split_off_validation(train_r, 0.1, train_config.seed)
    clips, skipped = cached_clips([r["video"] for r in train_r + val_r], model.config, out / "clips.pt", progress)
    if stage == "dpo":
        train_r, val_r = preference_pairs(train_r, train_config.seed), preference_pairs(val_r, train_config.seed + 1)
        with torch.no_grad():
            model.eval()
            for recs in (train_r, val_r):
                _reference_logprobs(model, recs, clips, progress)
    turns = 1 if stage == "dpo" else turns
    train, val = InstructionData(train_r, clips, True, train_config.seed, turns), InstructionData(val_r or train_r[:16], clips, False)
    train_config.metric, train_config.metric_mode = ("reward_accuracy", "max") if stage == "dpo" else ("loss", "min")
    train_config.extra = {"task": "videollm", "stage": stage, "data": str(data), "init": str(init) if init else None, "turns": turns, "model": asdict(model.config)}

    def loss_fn(m, batch, g):
        if stage == "dpo":
            return _dpo_step(m, batch, clips, beta)
        out_ = m(encode(m, clips, [r["video"] for r in batch]), [r["messages"] for r in batch])
        return out_.loss, {}

    def evaluate_fn(m, loader, _acc):
        losses, wins = [], []
        for batch in loader:
            if stage == "dpo":
                loss, logs = _dpo_step(m, batch, clips, beta)
                losses.append(float(loss))
                wins.append(logs["reward_accuracy"])
            else:
                losses.append(float(m(encode(m, clips, [r["video"] for r in batch]), [r["messages"] for r in batch]).loss))
        metrics = {"loss": float(np.mean(losses))}
        if wins:
            metrics["reward_accuracy"] = float(np.mean(wins))
        return metrics

    trainer = Trainer(model, train_config, train, loss_fn, val, evaluate_fn, save_fn=lambda m, p: m.save_pretrained(p), collate_fn=list)
    summary = trainer.fit(resume=resume)
    from vidfm.adapt import trainable_parameters

    summary.update(stage=stage, params=trainable_parameters(model), train_examples=len(train), val_examples=len(val), skipped_videos=sorted(skipped))
    return summary


def _dpo_step(model, batch, clips, beta):
    feats = encode(model, clips, [r["video"] for r in batch])
    conv = _conversations(batch)
    chosen = model.answer_logprobs(feats, conv, [r["chosen"] for r in batch])
    rejected = model.answer_logprobs(feats, conv, [r["rejected"] for r in batch])
    ref_c = torch.tensor([r["ref_chosen"] for r in batch], device=chosen.device)
    ref_r = torch.tensor([r["ref_rejected"] for r in batch], device=chosen.device)
    loss, margin = dpo_loss(chosen, rejected, ref_c, ref_r, beta)
    return loss, {"reward_accuracy": float((margin > 0).float().mean()), "reward_margin": float(margin.mean())}


@torch.no_grad()
def _reference_logprobs(model, records, clips, progress=None, batch_size: int = 16) -> None:
    """Log-probabilities of both answers under the starting model, stored in each record."""
    records[:] = [r for r in records if r["video"] in clips]
    batches = range(0, len(records), batch_size)
    for s in progress(batches, "reference log-probs", len(batches), "batch") if progress else batches:
        part = records[s : s + batch_size]
        feats, conv = encode(model, clips, [r["video"] for r in part]), _conversations(part)
        for key, logps in (("ref_chosen", model.answer_logprobs(feats, conv, [r["chosen"] for r in part])),
                           ("ref_rejected", model.answer_logprobs(feats, conv, [r["rejected"] for r in part]))):  # fmt: skip
            for r, v in zip(part, logps.tolist()):
                r[key] = v


# -- using a trained model ---------------------------------------------------------------------
class VideoAssistant:
    """A trained Video-LLM holding one video's features: ``ask`` answers questions (each on
    its own), ``reply`` continues a conversation (optionally streaming tokens)."""

    def __init__(self, model: VideoLLM, video, span: tuple[float, float] | None = None, features: dict | None = None, note: str | None = None):
        """The frames of ``video`` (or of its ``span``), or already computed ``features``
        (e.g. a memory-bridge reading of a long video)."""
        c = model.config
        self.model, self.video = model.eval(), str(video)
        if features is not None:
            self.features, self.duration, self.frame_times, self.note = features, float(features["duration"]), [], note
            return
        clip = read_clip(video, c.num_frames, c.sample_fps, c.read_size, span)
        with torch.no_grad():
            self.features = model.encode_video(clip["clip"][None], [clip["times"]], [clip["duration"]])[0]
        self.duration, self.frame_times, self.note = clip["duration"], [round(float(t), 3) for t in clip["times"]], clip["note"]

    @property
    def tokenizer(self):
        return self.model.tokenizer

    def ask(self, questions: list[str]) -> dict:
        answers = self.model.generate([self.features] * len(questions), [[{"role": "user", "content": q}] for q in questions])
        return {"video": self.video, "duration": self.duration, "frame_times": self.frame_times, "note": self.note,
                "answers": [{"question": q, "answer": a} for q, a in zip(questions, answers)]}  # fmt: skip

    def reply(self, messages: list[dict], streamer=None) -> str:
        return self.model.generate([self.features], [messages], streamer=streamer)[0]


def hallucinations(caption: str, objects: list[dict]) -> list[str]:
    """Colours, shapes and actions a caption mentions that the video does not show (exact
    on the synthetic world: ``objects`` are the shot's objects, the first the main one)."""
    from vidfm.data.synthetic import COLOURS, SHAPES, VERB_PHRASES

    text = f" {normalise(caption)} "
    shown_colours = {o["colour"] for o in objects} | {o["new_colour"] for o in objects if o.get("new_colour")}
    wrong = [c for c in COLOURS if f" {c} " in text and c not in shown_colours]
    wrong += [s for s in SHAPES if f" {s} " in text and s not in {o["shape"] for o in objects}]
    actions = {o["action"] for o in objects}
    for action, phrases in VERB_PHRASES.items():
        spoken = {normalise(p.format(new=c)) for p in phrases for c in COLOURS}
        if action not in actions and any(f" {p} " in text for p in spoken):
            wrong.append(action)
    return wrong


@torch.no_grad()
def evaluate_videollm(model: VideoLLM, data, split: str = "test", limit: int | None = None, batch_size: int = 16, progress=None, with_meteor: bool = True) -> dict:
    """Closed-QA accuracy (by question type), timestamp answers scored as grounding (R@1 at
    IoU 0.3/0.5/0.7, mIoU; unparseable answers count as misses), caption metrics, and the
    hallucination rate of captions (world only)."""
    from vidfm.metrics.captioning import caption_metrics
    from vidfm.metrics.grounding import grounding_metrics, temporal_iou

    records = instruction_records(data, split, "instruct", seed=1)
    if limit:
        keep = sorted({r["video"] for r in records})[:limit]
        records = [r for r in records if r["video"] in set(keep)]
    skipped: dict = {}
    clips = decoded_clips([r["video"] for r in records], model.config, progress, skipped)
    records = [r for r in records if r["video"] in clips]
    model.eval()
    answers = []
    batches = range(0, len(records), batch_size)
    for s in progress(batches, "answering", len(batches), "batch") if progress else batches:
        part = records[s : s + batch_size]
        answers += model.generate(encode(model, clips, [r["video"] for r in part]), _conversations(part))
    metrics: dict = {"split": split, "videos": len(clips), "skipped": sorted(skipped)}
    qa = [(r, a) for r, a in zip(records, answers) if r["type"] not in ("describe", "when")]
    if qa:
        metrics["qa_accuracy"] = float(np.mean([answer_matches(a, r["answers"][0]) for r, a in qa]))
        metrics["qa_by_type"] = {t: float(np.mean([answer_matches(a, r["answers"][0]) for r, a in qa if r["type"] == t]))
                                 for t in sorted({r["type"] for r, _ in qa})}  # fmt: skip
    when = [(r, a) for r, a in zip(records, answers) if r["type"] == "when"]
    if when:
        parsed = [parse_time_answer(a) for _, a in when]
        pred = np.array([p if p is not None else (-1.0, -1.0) for p in parsed])
        truth = np.array([r["segment"] for r, _ in when])
        metrics["timestamps"] = {**grounding_metrics(pred, truth), "unparseable": int(sum(p is None for p in parsed)), "count": len(when)}
        metrics["timestamps"]["mIoU"] = float(temporal_iou(pred, truth).mean())
    desc = [(r, a) for r, a in zip(records, answers) if r["type"] == "describe"]
    if desc:
        refs = {r["video"]: r["answers"] for r, _ in desc}
        cands = {r["video"]: a for r, a in desc}
        metrics["captions"] = caption_metrics(refs, cands, with_meteor=with_meteor)
        source = DataSource(data)
        if source.is_world:
            meta = {m["path"]: m for m in source.world().metadata()}
            flagged = [hallucinations(a, meta[r["video"]]["shots"][0]["objects"]) for r, a in desc if len(meta[r["video"]]["shots"]) == 1]
            metrics["hallucination_rate"] = float(np.mean([bool(f) for f in flagged])) if flagged else None
    metrics["examples"] = [{"video": r["video"], "question": r["question"], "truth": r["answers"][0], "answer": a} for r, a in list(zip(records, answers))[:12]]
    return metrics
