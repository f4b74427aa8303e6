"""Videos longer than a model's context: streaming captions, hierarchical summaries, the
memory bridge (training and reading a stream) and needle-in-a-haystack answering.

Streaming: frames are decoded as they come (``VideoReader.stream``), each is scored by
online SceneTilling on colour histograms (``StreamingSceneTilling``), and when a scene
closes the Video-LLM captions it from a bounded buffer of its frames: at most
``2 * num_frames`` are kept, and when the buffer fills every other frame is dropped and the
keeping stride doubles, so a scene of any length is still sampled evenly. Memory does not
grow with the video.

Hierarchical: the scene captions (runs of the same caption merged) are summarised by a
text LM in chunks that fit its context, then the chunk summaries are summarised again.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from vidfm.errors import ConfigError


class SceneBuffer:
    """At most ``2 * keep`` (time, frame) pairs of one scene, evenly spread over it."""

    def __init__(self, keep: int):
        self.keep, self.items, self.stride, self.seen = keep, [], 1, 0

    def add(self, time: float, frame: np.ndarray) -> None:
        if self.seen % self.stride == 0:
            self.items.append((time, frame))
            if len(self.items) > 2 * self.keep:
                self.items = self.items[::2]
                self.stride *= 2
        self.seen += 1

    def clip(self) -> tuple[np.ndarray, np.ndarray]:
        """(frames (keep, H, W, 3), times (keep,)) spread uniformly over what is held."""
        from vidfm.io.samplers import uniform_indices

        idx = uniform_indices(len(self.items), self.keep)
        return np.stack([self.items[i][1] for i in idx]), np.array([self.items[i][0] for i in idx])


@torch.no_grad()
def stream_scenes(model, video, *, scene_fps: float = 2.0, alpha: float = 0.5, min_scene_seconds: float = 1.0) -> Iterator[dict]:
    """Yield ``{start, end, features}`` for each scene as soon as it closes: the video
    decoded as it goes, scenes closed by online SceneTilling on colour histograms, each
    scene's frames (a bounded ``SceneBuffer``) encoded by ``model`` with times from the
    scene's start. Memory does not grow with the video."""
    from vidfm.data.transforms import to_float_clip
    from vidfm.io.reader import VideoReader
    from vidfm.shots.detect import colour_histograms
    from vidfm.shots.scenes import StreamingSceneTilling

    if scene_fps <= 0:
        raise ConfigError(f"scene_fps must be positive, got {scene_fps}")
    c = model.config
    model.eval()
    tiller = StreamingSceneTilling(alpha=alpha, min_frames=max(2, round(min_scene_seconds * scene_fps)))

    def scene(buffer: SceneBuffer, end: float) -> dict:
        frames, times = buffer.clip()
        start = float(buffer.items[0][0])
        feats = model.encode_video(to_float_clip(frames)[None], [torch.from_numpy(times - start)], [end - start])[0]
        return {"start": start, "end": end, "features": feats}

    buffer, last = SceneBuffer(c.num_frames), 0.0
    with VideoReader(video, size=(c.read_size, c.read_size)) as reader:
        for t, frame in reader.stream(fps=scene_fps):
            if tiller.push(colour_histograms(frame[None])[0]) is not None:
                yield scene(buffer, t)
                buffer = SceneBuffer(c.num_frames)
            buffer.add(t, frame)
            last = t
    if buffer.items:
        yield scene(buffer, last + 1.0 / scene_fps)


def stream_captions(model, video, *, prompt: str | None = None, **scene_options) -> Iterator[dict]:
    """Yield ``{start, end, caption}`` (seconds) for each scene as soon as it closes.
    ``model``: a ``VideoLLM``; ``prompt`` defaults to its describe instruction;
    ``scene_options`` go to ``stream_scenes``."""
    from vidfm.tasks.videollm import DESCRIBE

    messages = [{"role": "user", "content": prompt or DESCRIBE}]
    for sc in stream_scenes(model, video, **scene_options):
        yield {"start": round(sc["start"], 3), "end": round(sc["end"], 3), "caption": model.generate([sc["features"]], [messages])[0]}


def merge_runs(scenes: list[dict]) -> list[dict]:
    """Consecutive scenes with the same caption as one."""
    out: list[dict] = []
    for s in scenes:
        if out and out[-1]["caption"] == s["caption"]:
            out[-1] = {**out[-1], "end": s["end"], "scenes": out[-1].get("scenes", 1) + 1}
        else:
            out.append(dict(s))
    return out


SUMMARY_PROMPT = "These are captions of consecutive parts of one video, with their times:\n{lines}\nSummarise what happens in the video in two or three sentences."


def summarise(scenes: list[dict], lm: str = "smollm2", chunk: int = 24, max_new_tokens: int = 96) -> dict:
    """A hierarchical summary: chunks of ``chunk`` scene captions summarised, then the
    chunk summaries summarised (repeated until one is left)."""
    from vidfm.models.lm import chat_reply, load_lm

    if not scenes:
        raise ConfigError("no scene captions to summarise")
    model, tokenizer = load_lm(lm)
    items = [{"start": s["start"], "end": s["end"], "text": s["caption"]} for s in merge_runs(scenes)]
    levels = 0
    while True:
        parts = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        summaries = []
        for part in parts:
            lines = "\n".join(f"{p['start']:.1f}-{p['end']:.1f} s: {p['text']}" for p in part)
            text = chat_reply(model, tokenizer, [{"role": "user", "content": SUMMARY_PROMPT.format(lines=lines)}], max_new_tokens)
            summaries.append({"start": part[0]["start"], "end": part[-1]["end"], "text": text})
        levels += 1
        if len(summaries) == 1:
            return {"summary": summaries[0]["text"], "levels": levels, "scenes": len(scenes)}
        items = summaries


# -- needle in a video haystack -----------------------------------------------------------------
NEEDLE_METHODS = ("uniform", "retrieval", "memory")


def answer_needle(model, haystack: dict, method: str = "uniform", *, video_text=None, index_dir=None, window: float = 4.0) -> list[dict]:
    """Answers to a haystack's questions (``vidfm.data.haystack``) by ``method``:
    ``uniform``: the whole video sampled to the model's frames (1 fps, then uniform);
    ``retrieval``: the window of a ``vidfm index`` (``window`` seconds, built with the
    video-text model ``video_text`` in ``index_dir``) ranked first for the question, shown to
    the model as a video of its own; its "when" answers are shifted back to video time;
    ``memory``: the whole video read scene by scene into the model's memory bridge."""
    from vidfm.tasks.videollm import VideoAssistant, parse_time_answer, time_answer

    if method not in NEEDLE_METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(NEEDLE_METHODS)}")
    video, questions = haystack["video"], haystack.get("questions") or []
    if not questions:
        raise ConfigError(f"{video}: the haystack has no needle questions (built with --no-needle?)")
    if method in ("uniform", "memory"):
        assistant = VideoAssistant(model, video) if method == "uniform" else MemoryAssistant(model, video)
        seen = assistant.frame_times if method == "uniform" else None  # the memory reads every scene
        return [{**q, "predicted": assistant.ask([q["question"]])["answers"][0]["answer"], "seen": seen} for q in questions]
    from vidfm.retrieval.embedder import Embedder
    from vidfm.retrieval.index import VideoIndex, update_index

    if video_text is None or index_dir is None:
        raise ConfigError("retrieval needs a video-text model and a folder for the index")
    embedder = Embedder(video_text)
    update_index(index_dir, [video], embedder, window=window)
    rows, assistants = [], {}  # one read per retrieved window, however many questions land on it
    with VideoIndex.open(index_dir) as index:
        for q in questions:
            hit = index.search_text(embedder, q["question"], top=1)[0]
            span = (hit["start"], hit["end"])
            if span not in assistants:
                assistants[span] = VideoAssistant(model, video, span)
            answer = assistants[span].ask([q["question"]])["answers"][0]["answer"]
            if q["type"] == "when" and (t := parse_time_answer(answer)) is not None:
                answer = time_answer(t[0] + hit["start"], t[1] + hit["start"])
            rows.append({**q, "predicted": answer, "seen": [hit["start"], hit["end"]], "seen_is_span": True})
    return rows


def score_needle(rows: list[dict]) -> dict:
    """Exact-answer accuracy per question type ("when": temporal IoU >= 0.5) and over all,
    and how often what the model was shown held the needle (``found``: a retrieved window
    overlapping it, or a uniformly sampled frame inside it; None for the memory, which
    reads every scene)."""
    from vidfm.metrics.grounding import temporal_iou
    from vidfm.tasks.videollm import answer_matches, parse_time_answer

    def right(r: dict) -> bool:
        if r["type"] == "when":
            t = parse_time_answer(r["predicted"])
            return t is not None and float(temporal_iou(np.array([t]), np.array([r["segment"]]))[0]) >= 0.5
        return answer_matches(r["predicted"], r["answer"])

    marks = [right(r) for r in rows]
    by_type = {t: float(np.mean([m for m, r in zip(marks, rows) if r["type"] == t])) for t in sorted({r["type"] for r in rows})}
    when = next((r["segment"] for r in rows if r["type"] == "when"), None)
    found = None
    if when and rows[0].get("seen") is not None:
        def shown(r):  # a shown window overlaps the needle, or a sampled frame falls inside it
            seen = r["seen"]
            return seen[0] < when[1] and seen[1] > when[0] if r.get("seen_is_span") else any(when[0] <= t < when[1] for t in seen)

        found = float(np.mean([shown(r) for r in rows]))
    return {"accuracy": float(np.mean(marks)), "by_type": by_type, "found": found}


# -- the memory bridge: training and reading a stream ---------------------------------------------
class NeedleSequences(torch.utils.data.Dataset):
    """Memory-bridge training examples: 2..``max_clips`` world clips in a row, one holding an
    object of a colour no other clip shows, and a question about that object (its shape or
    action). Drawn afresh every epoch for training (reproducibly); fixed for validation."""

    def __init__(self, metas: list[dict], size: int, seed: int, train: bool, max_clips: int = 6):
        from vidfm.data.haystack import needle_pools

        if max_clips < 2:
            raise ConfigError(f"max_clips must be >= 2, got {max_clips}")
        self.pools, self.size, self.seed, self.train, self.max_clips, self.epoch = needle_pools(metas), size, seed, train, max_clips, 0

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        from vidfm.data.haystack import needle_sequence

        rng = np.random.default_rng((self.seed, self.epoch if self.train else 0, i))
        seq = needle_sequence(self.pools, int(rng.integers(2, self.max_clips + 1)), rng)
        q = seq["questions"][int(rng.integers(len(seq["questions"])))]
        return {"paths": seq["paths"], "type": q["type"], "answer": q["answer"],
                "messages": [{"role": "user", "content": q["question"]}, {"role": "assistant", "content": q["answer"]}]}  # fmt: skip


def segment_features(model, clips: dict, batch: list[dict]) -> list[dict]:
    """Per example, its clips' encoder features as the segments of one long video."""
    from vidfm.tasks.videollm import encode

    flat = [p for ex in batch for p in ex["paths"]]
    feats = encode(model, clips, flat)
    out, k = [], 0
    for ex in batch:
        segs = feats[k : k + len(ex["paths"])]
        k += len(segs)
        out.append({"segments": segs, "duration": float(sum(f["duration"] for f in segs))})
    return out


def train_memory(init, data, out, train_config=None, memory_tokens: int = 32, max_clips: int = 6, progress=None, resume: bool = True) -> dict:
    """The ``memory`` stage: a trained Video-LLM (folder ``init``) learns to read sequences
    of world clips through a memory bridge (added if it has none); the encoder stays frozen.
    ``OUT/best`` is the model with its bridge."""
    from dataclasses import asdict
    from pathlib import Path

    from vidfm.adapt import trainable_parameters
    from vidfm.data.datasets import DataSource
    from vidfm.errors import DatasetError
    from vidfm.models.videollm import VideoLLM
    from vidfm.tasks.videollm import cached_clips, set_trainable
    from vidfm.training import TrainConfig, Trainer

    if init is None:
        raise ConfigError("the memory stage refines a trained Video-LLM: give --init MODEL (an instruct run)")
    train_config = train_config or TrainConfig(output_dir=str(out))
    train_config.output_dir = str(out)
    torch.manual_seed(train_config.seed)
    model = VideoLLM.from_pretrained(init, merge_lora=False)
    source = DataSource(data)
    if not source.is_world:
        raise DatasetError(f"{data}: the memory stage builds its long videos from a synthetic world")
    if model.memory_bridge is None:
        model.add_memory_bridge(memory_tokens)
    set_trainable(model, "memory")
    metas = [m for m in source.world().metadata() if len(m["shots"]) == 1]
    by_split = {s: [m for m in metas if m["split"] == s] for s in ("train", "val")}
    clips, skipped = cached_clips([m["path"] for m in metas if m["split"] in by_split], model.config, Path(out) / "clips.pt", progress)
    by_split = {s: [m for m in ms if m["path"] in clips] for s, ms in by_split.items()}
    train = NeedleSequences(by_split["train"], len(by_split["train"]), train_config.seed, True, max_clips)
    val = NeedleSequences(by_split["val"] or by_split["train"], 64, train_config.seed + 1, False, max_clips)
    train_config.metric, train_config.metric_mode = "loss", "min"
    train_config.extra = {"task": "videollm", "stage": "memory", "data": str(data), "max_clips": max_clips, "model": asdict(model.config)}

    def loss(m, batch):
        return m(segment_features(m, clips, batch), [ex["messages"] for ex in batch]).loss

    def evaluate_fn(m, loader, _acc):
        return {"loss": float(np.mean([float(loss(m, b)) for b in loader]))}

    trainer = Trainer(model, train_config, train, lambda m, b, g: (loss(m, b), {}), val, evaluate_fn,
                      save_fn=lambda m, p: m.save_pretrained(p), collate_fn=list)  # fmt: skip
    summary = trainer.fit(resume=resume)
    summary.update(stage="memory", params=trainable_parameters(model), train_examples=len(train), val_examples=len(val), skipped_videos=sorted(skipped))
    return summary


@torch.no_grad()
def memory_features(model, video, **scene_options) -> dict:
    """Read a video of any length into the memory bridge scene by scene as it decodes
    (``stream_scenes``): ``{memory (M, D), parts, duration}``."""
    if model.memory_bridge is None:
        raise ConfigError("this model has no memory bridge; train one with 'vidfm train videollm --stage memory --init MODEL'")
    state, end = model.memory_bridge.start(), 0.0
    for sc in stream_scenes(model, video, **scene_options):
        state, end = model.memory_bridge.update(state, model.segment_tokens(sc["features"])), sc["end"]
    return {"memory": model.memory_bridge.read(state), "parts": state["segments"], "duration": end}


def MemoryAssistant(model, video):
    """A ``VideoAssistant`` for videos of any length: the video is read once through the
    memory bridge (``memory_features``) and every question is answered from the memory."""
    from vidfm.tasks.videollm import VideoAssistant

    features = memory_features(model, video)
    return VideoAssistant(model, video, features=features, note=f"read through the memory bridge in {features['parts']} scenes")
