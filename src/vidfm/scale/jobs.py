"""The collection jobs ``vidfm.scale.batch.run_job`` runs, and how their shards become the
ordinary vidfm outputs (an index, a Parquet table, a JSONL file).

A job is a small picklable object: ``settings()`` (what makes its output; part of every
shard's name), ``setup()`` (load the model, once per process or actor), ``read(path)``
(decode one video; may raise), ``compute(items)`` (the model on a batch of read videos ->
one list of rows per video). The same object runs in this process or in a Ray actor;
``device`` is set to ``cuda`` in actors that were given a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidfm.errors import ConfigError
from vidfm.files import atomic_file, atomic_write_text, fingerprint_folder, model_folder
from vidfm.scale.batch import RayOptions, run_job, write_failures


class EmbedJob:
    """One vector per segment (the whole video, windows or shots) with an index model."""

    def __init__(self, model, window: float | None = None, stride: float | None = None, shots: str | None = None, batch_size: int = 32,
                 fingerprint: str | None = None):  # fmt: skip
        """``fingerprint``: the model's, when the caller already has it (an ``Embedder``'s)."""
        if not Path(model).exists():
            raise ConfigError(f"{model}: model folder not found")
        self.model, self.window, self.stride, self.shots, self.batch_size = str(model), window, stride, shots, batch_size
        self.fingerprint = fingerprint or fingerprint_folder(model_folder(self.model))
        self.embedder, self.device = None, "cpu"

    def settings(self) -> dict:
        return {"job": "embed", "model": self.fingerprint, "window": self.window, "stride": self.stride, "shots": self.shots}

    def setup(self) -> None:
        from vidfm.retrieval.embedder import Embedder

        self.embedder = Embedder(self.model, device=self.device)

    def read(self, path):
        return path, *self.embedder.read(path, self.window, self.stride, self.shots)

    def compute(self, items) -> list[list[dict]]:
        import torch

        clips = [c for _, _, cs in items for c in cs]
        vecs = [self.embedder.encode_clips(torch.stack(clips[k : k + self.batch_size])) for k in range(0, len(clips), self.batch_size)]
        vecs = np.concatenate(vecs) if vecs else np.zeros((0, 1), np.float32)
        out, k = [], 0
        for path, segs, _ in items:
            out.append([{"path": path, "segment": i, "start": s.start, "end": s.end, "vector": vecs[k + i]} for i, s in enumerate(segs)])
            k += len(segs)
        return out


def unique_stems(paths) -> dict[str, str]:
    """A file-name stem per video that no other video in ``paths`` shares: the plain stem,
    or for videos whose stems collide (``a/clip.mp4``, ``b/clip.mp4``) the stem plus a
    short hash of the full path, so a split of both keeps every shot."""
    import hashlib
    from collections import Counter

    paths = [str(Path(p).resolve()) for p in paths]  # the form the shards hand to ``read``
    counts = Counter(Path(p).stem for p in paths)
    return {p: Path(p).stem if counts[Path(p).stem] == 1 else f"{Path(p).stem}_{hashlib.sha1(p.encode()).hexdigest()[:8]}" for p in paths}


class ShotsJob:
    """Shot boundaries of each video; with ``split_dir``, one file per shot written there
    (named by ``stems``, path -> stem, where given: see ``unique_stems``)."""

    def __init__(self, method: str = "student", threshold: float = 0.5, split_dir=None, runtime: str = "torch", stems: dict | None = None):
        self.method, self.threshold, self.runtime, self.stems = method, threshold, runtime, stems or {}
        self.split_dir = str(Path(split_dir).resolve()) if split_dir else None
        self.batch_size, self.detector, self.device = 1, None, "cpu"  # the detectors run on the CPU

    def settings(self) -> dict:
        return {"job": "split" if self.split_dir else "shots", "method": self.method, "threshold": self.threshold, "out": self.split_dir}

    def setup(self) -> None:
        from vidfm.shots.detect import make_detector

        self.detector = make_detector(self.method, self.threshold, **({"runtime": self.runtime} if self.method == "student" else {}))

    def read(self, path):
        from vidfm.shots.split import split_shots

        shots = self.detector.detect(path)
        row = {"path": path, **shots.as_dict()}
        if self.split_dir:
            row["files"] = [str(p) for p in split_shots(shots, self.split_dir, stem=self.stems.get(str(path)))]
        return row

    def compute(self, items) -> list[list[dict]]:
        return [[{"path": r["path"], "result": json.dumps(r)}] for r in items]


class PredictJob:
    """Top-k labels of each video with a trained classifier."""

    def __init__(self, model, top: int = 5, batch_size: int = 16):
        self.model, self.top, self.batch_size = str(model), top, batch_size
        self.classifier, self.device = None, "cpu"

    def settings(self) -> dict:
        return {"job": "predict", "model": fingerprint_folder(model_folder(self.model, "classifier.json")), "top": self.top}

    def setup(self) -> None:
        from vidfm.tasks.classify import VideoClassifier

        self.classifier = VideoClassifier.from_pretrained(model_folder(self.model, "classifier.json")).to(self.device).eval()

    def read(self, path):
        from vidfm.tasks.classify import predict_inputs

        return path, predict_inputs(self.classifier, path)

    def compute(self, items) -> list[list[dict]]:
        import torch

        from vidfm.tasks.classify import top_labels

        with torch.no_grad():
            probs = self.classifier(torch.stack([clip for _, clip in items]).to(self.device)).softmax(-1).cpu()
        return [[{"path": path, "result": json.dumps({"path": path, "labels": top_labels(self.classifier, p, self.top)})}] for (path, _), p in zip(items, probs)]


class CaptionJob:
    """A caption of each video from a trained Video-LLM (batched generation)."""

    def __init__(self, model, batch_size: int = 8, max_new_tokens: int | None = None):
        self.model, self.batch_size, self.max_new_tokens = str(model), batch_size, max_new_tokens
        self.llm, self.device = None, "cpu"

    def settings(self) -> dict:
        return {"job": "caption", "model": fingerprint_folder(model_folder(self.model)), "max_new_tokens": self.max_new_tokens}

    def setup(self) -> None:
        from vidfm.models.videollm import VideoLLM

        self.llm = VideoLLM.from_pretrained(self.model).to(self.device).eval()
        if self.max_new_tokens:
            self.llm.config.max_new_tokens = self.max_new_tokens

    def read(self, path):
        from vidfm.tasks.videollm import read_clip

        c = self.llm.config
        return path, read_clip(path, c.num_frames, c.sample_fps, c.read_size)

    def compute(self, items) -> list[list[dict]]:
        import torch

        from vidfm.tasks.videollm import DESCRIBE

        with torch.no_grad():
            feats = [self.llm.encode_video(c["clip"][None], [c["times"]], [c["duration"]])[0] for _, c in items]
        captions = self.llm.generate(feats, [[{"role": "user", "content": DESCRIBE}]] * len(items))
        return [[{"path": path, "result": json.dumps({"video": path, "caption": cap})}] for (path, _), cap in zip(items, captions)]


# -- running a job and publishing its output ----------------------------------------------
def _parts_dir(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".parts")


def failures_file(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".failures.jsonl")


def run_to_file(job, videos, out, *, fmt: str, engine: str = "local", ray_options: RayOptions | None = None, shard_size: int | None = None,
                retries: int = 2, progress=None):  # fmt: skip
    """Run ``job`` and merge its shards into ``out`` atomically: ``fmt="parquet"`` (the rows
    as a table) or ``"jsonl"`` (each row's ``result`` JSON, one per line). Failures go to
    ``OUT.failures.jsonl``. Shards live in ``OUT.parts`` until the merge has succeeded."""
    report, store, shards = run_job(job, videos, _parts_dir(out), engine=engine, shard_size=shard_size, retries=retries,
                                    ray_options=ray_options, progress=progress)  # fmt: skip
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [store.table(s) for s in shards]
        tables = [t for t in tables if t is not None]
        table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({"path": pa.array([], pa.string())})
        with atomic_file(out) as tmp:
            pq.write_table(table, tmp)
    else:
        atomic_write_text(out, "".join(r["result"] + "\n" for s in shards for r in store.rows(s)))
    write_failures(failures_file(out), report.failed)
    store.remove()
    return report


def index_with_engine(out, videos, model, *, window=None, stride=None, shots=None, kind: str = "flat", engine: str = "ray",
                      ray_options: RayOptions | None = None, shard_size: int | None = None, retries: int = 2, batch_size: int = 32, progress=None):  # fmt: skip
    """``vidfm index`` on an engine: the new and changed videos are embedded by
    ``EmbedJob`` in shards, then merged into the ordinary index exactly as a one-process
    update would (same rows, same order, same vectors to float tolerance)."""
    from vidfm.retrieval.embedder import Embedder
    from vidfm.retrieval.index import plan_update, publish_update

    embedder = Embedder(model)
    plan = plan_update(out, videos, embedder, kind)
    job = EmbedJob(model, window, stride, shots, batch_size, fingerprint=embedder.fingerprint)
    report, store, shards = run_job(job, [v for v, _ in plan.todo], _parts_dir(out), engine=engine, shard_size=shard_size, retries=retries,
                                    ray_options=ray_options, progress=progress)  # fmt: skip
    rows, vectors, new_videos = [], [], []
    failed = {f["path"] for f in report.failed}
    for s in shards:
        counts = {}
        for r in store.rows(s):
            rows.append((r["path"], r["start"], r["end"]))
            vectors.append(np.asarray(r["vector"], np.float32))
            counts[r["path"]] = counts.get(r["path"], 0) + 1
        new_videos += [(p, size, mtime, counts.get(p, 0)) for p, size, mtime in s.videos if p not in failed]
    matrix = np.stack(vectors) if vectors else np.zeros((0, embedder.dim), np.float32)
    publish_update(plan, embedder, rows, matrix, new_videos, window=window, stride=stride, shots=shots)
    missing = [{"path": p, "error": e, "attempts": 0} for p, e in plan.report.failed]  # could not even be stat'ed
    plan.report.failed += [(f["path"], f["error"]) for f in report.failed]
    plan.report.seconds = report.seconds
    write_failures(failures_file(out), missing + report.failed)
    store.remove()
    return plan.report, report


__all__ = ["CaptionJob", "EmbedJob", "PredictJob", "ShotsJob", "failures_file", "index_with_engine", "run_to_file"]
