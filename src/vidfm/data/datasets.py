"""Datasets in the formats the field uses, read into one ``VideoDataset``.

A *record* is a dict with at least ``path`` (absolute) plus task fields (``label``,
``caption``, ``question``/``answer``, ``start``/``end``/``sentence``). Parsers turn each
annotation format into records; ``VideoDataset`` decodes, samples and transforms clips.
Adding your own dataset means writing a list of dicts - nothing to register.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vidfm.data.transforms import to_float_clip
from vidfm.errors import DatasetError, VideoDecodeError
from vidfm.io.reader import VideoReader
from vidfm.io.samplers import random_clip_indices, segment_indices, uniform_indices

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"}


def find_videos(folder) -> list[Path]:
    """Every video file under ``folder`` (recursively, by suffix), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def split_off_validation(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """``(train, val)``: a seeded random ``fraction`` (at least one, when there are two or
    more records) held out for validation."""
    order = np.random.default_rng(seed).permutation(len(records))
    n_val = max(1, int(round(len(records) * fraction))) if len(records) > 1 else 0
    return [records[i] for i in order[n_val:]], [records[i] for i in order[:n_val]]


def _need(path: Path) -> Path:
    if not path.exists():
        raise DatasetError(f"{path}: annotation file not found")
    return path


def read_jsonl(path: Path) -> list[dict]:
    """One JSON object per non-empty line; a bad line is a DatasetError naming it."""
    rows = []
    for n, line in enumerate(_need(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    return rows


def classification_from_csv(csv_path, root=None, classes: Sequence[str] | None = None) -> tuple[list[dict], list[str]]:
    """``path,label`` CSV (header required; paths relative to ``root`` or the CSV's folder).
    ``classes`` fixes the label order; otherwise labels are sorted."""
    csv_path = _need(Path(csv_path))
    base = Path(root) if root else csv_path.parent
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{csv_path}: needs a header with 'path' and 'label' columns, got {reader.fieldnames}")
        rows = list(reader)
    names = list(classes) if classes is not None else sorted({r["label"] for r in rows})
    lookup = {c: i for i, c in enumerate(names)}
    records = []
    for n, r in enumerate(rows, 2):
        if r["label"] not in lookup:
            raise DatasetError(f"{csv_path}:{n}: unknown label {r['label']!r} (known: {', '.join(names)})")
        p = Path(r["path"])
        records.append({"path": str(p if p.is_absolute() else base / p), "label": lookup[r["label"]]})
    return records, names


def classification_from_folder(root, classes: Sequence[str] | None = None) -> tuple[list[dict], list[str]]:
    """One sub-folder per class holding its videos (``root/<label>/*.mp4``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    names = list(classes) if classes is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DatasetError(f"{root}: folders {unknown} are not among the known labels {names}")
    records = []
    for i, name in enumerate(names):
        for p in sorted((root / name).glob("*")):
            if p.suffix.lower() in VIDEO_SUFFIXES:
                records.append({"path": str(p), "label": i})
    if not records:
        raise DatasetError(f"{root}: no videos found (expected {root}/<label>/<video>.mp4)")
    return records, names


def captions_from_jsonl(path, root=None) -> list[dict]:
    """MSR-VTT-style JSONL: ``{"video_id", "path", "captions": [...]}`` per line."""
    path = Path(path)
    base = Path(root) if root else path.parent.parent
    out = []
    for r in read_jsonl(path):
        caps = r.get("captions") or ([r["caption"]] if "caption" in r else None)
        if not caps or "path" not in r:
            raise DatasetError(f"{path}: each line needs 'path' and 'captions'")
        out.append({"path": str(base / r["path"]), "video_id": r.get("video_id", ""), "captions": list(caps)})
    return out


def qa_from_jsonl(path, root=None) -> list[dict]:
    """``{"path", "question", "answer", "type"?}`` per line."""
    path = Path(path)
    base = Path(root) if root else path.parent.parent
    out = []
    for r in read_jsonl(path):
        if not {"path", "question", "answer"} <= set(r):
            raise DatasetError(f"{path}: each line needs 'path', 'question' and 'answer'")
        out.append({**r, "path": str(base / r["path"])})
    return out


def grounding_from_sta(path, video_dir, suffix: str = ".mp4") -> list[dict]:
    """Charades-STA lines: ``video_id start end##sentence`` (seconds)."""
    path = _need(Path(path))
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            head, sentence = line.split("##", 1)
            vid, start, end = head.split()
            start, end = float(start), float(end)
        except ValueError:
            raise DatasetError(f"{path}:{n}: expected 'video_id start end##sentence', got {line[:60]!r}") from None
        if end < start:
            raise DatasetError(f"{path}:{n}: end {end} is before start {start}")
        out.append({"path": str(Path(video_dir) / f"{vid}{suffix}"), "video_id": vid, "start": start, "end": end, "sentence": sentence})
    return out


def _world_split(split: str) -> str:
    from vidfm.data.synthetic import SPLITS

    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return split


class DataSource:
    """The one place that knows every dataset layout vidfm reads, and what each can give:

    ============== ======================================================================
    ``world``      a synthetic world (``vidfm synth``): every task, with splits
    ``csv``        ``path,label`` (classification) or a ``path`` column (videos only)
    ``jsonl``      ``{"path", "captions"}`` per line (MSR-VTT style): videos and captions
    ``classes``    a folder of sub-folders only: one per class (its videos: all of them)
    ``videos``     a folder with videos in it: every video under it (recursively)
    ``video``      a single video file
    ============== ======================================================================

    Paths inside a CSV or JSONL are relative to the file's folder. Asking a source for
    something it does not hold (captions of a CSV, grounding of a folder) raises a
    ``DatasetError`` saying what would work.
    """

    def __init__(self, data):
        self.path = Path(data)
        p = self.path
        if not p.exists():
            raise DatasetError(f"{p}: no such file or folder")
        if p.is_dir():
            if (p / "world.json").exists():
                self.kind = "world"
            else:
                subdirs = [d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")]
                direct = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES]
                self.kind = "classes" if subdirs and not direct else "videos"
        elif p.suffix.lower() == ".csv":
            self.kind = "csv"
        elif p.suffix.lower() == ".jsonl":
            self.kind = "jsonl"
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            self.kind = "video"
        else:
            raise DatasetError(f"{p}: not a dataset vidfm reads (a synthetic world, a CSV, a captions JSONL, a folder of videos or a video file)")

    @property
    def is_world(self) -> bool:
        return self.kind == "world"

    def world(self) -> SyntheticWorld:
        if not self.is_world:
            raise DatasetError(f"{self.path}: not a synthetic world (no world.json)")
        return SyntheticWorld(self.path)

    def videos(self, split: str = "train") -> list[dict]:
        """``{path}`` records (with captions where the source has them)."""
        if self.kind in ("world", "jsonl"):
            return self.captions(split)
        if self.kind == "video":
            return [{"path": str(self.path)}]
        if self.kind == "csv":
            return [{"path": r["path"]} for r in self.csv_rows()]
        records = [{"path": str(p)} for p in find_videos(self.path)]
        if not records:
            raise DatasetError(f"{self.path}: no videos found")
        return records

    def csv_rows(self) -> list[dict]:
        """A CSV source's rows, every column kept, ``path`` resolved against the file's folder."""
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "path" not in rows[0]:
            raise DatasetError(f"{self.path}: needs a header with a 'path' column")
        return [{**r, "path": str(p if (p := Path(r["path"])).is_absolute() else self.path.parent / p)} for r in rows]

    def classification(self, split: str = "train", classes: Sequence[str] | None = None) -> tuple[list[dict], list[str]]:
        if self.is_world:
            world = self.world()
            names = list(classes) if classes is not None else world.classes
            return classification_from_csv(self.path / "classification" / f"{_world_split(split)}.csv", self.path, names)[0], names
        if self.kind == "csv":
            return classification_from_csv(self.path, classes=classes)
        if self.kind == "classes":
            return classification_from_folder(self.path, classes=classes)
        raise DatasetError(f"{self.path}: has no labels; classification needs a synthetic world, a CSV of 'path,label' or a folder with one sub-folder per class")

    def captions(self, split: str = "train") -> list[dict]:
        if self.is_world:
            return captions_from_jsonl(self.path / "captions" / f"{_world_split(split)}.jsonl", self.path)
        if self.kind == "jsonl":
            return captions_from_jsonl(self.path, self.path.parent)
        raise DatasetError(f"{self.path}: has no captions; this needs a synthetic world or a JSONL of {{\"path\", \"captions\"}} per line")

    def grounding(self, split: str = "train") -> list[dict]:
        if self.is_world:
            return grounding_from_sta(self.path / "grounding" / f"{_world_split(split)}.txt", self.path / "videos")
        raise DatasetError(f"{self.path}: grounding data must be a synthetic world (for Charades-STA files use vidfm.data.grounding_from_sta)")

    def qa(self, split: str = "train") -> list[dict]:
        if self.is_world:
            return qa_from_jsonl(self.path / "qa" / f"{_world_split(split)}.jsonl", self.path)
        if self.kind == "jsonl":
            return qa_from_jsonl(self.path, self.path.parent)
        raise DatasetError(f"{self.path}: has no questions; QA needs a synthetic world or a JSONL of {{\"path\", \"question\", \"answer\"}}")


class SkipsUnreadable(Dataset):
    """Base for datasets of video records: ``__getitem__`` calls ``self.load(i)``. A video
    that cannot be decoded is warned about once and counted in ``skipped``; then

    * in training (``train=True``) the next readable record is served instead, so batches
      stay full;
    * in evaluation the item is ``None`` and ``collate_readable`` drops it, so a metric
      never counts another video twice in its place.

    ``on_error="raise"`` raises instead."""

    records: list[dict]
    on_error: str = "skip"
    train: bool = True

    def __len__(self) -> int:
        return len(self.records)

    def _skip(self, e: VideoDecodeError) -> None:
        if self.on_error == "raise":
            raise e
        skipped = self.__dict__.setdefault("skipped", set())
        if e.path not in skipped:
            skipped.add(e.path)
            warnings.warn(f"skipping unreadable video: {e}", stacklevel=3)

    def __getitem__(self, i: int) -> dict | None:
        if not self.train:
            try:
                return self.load(i)
            except VideoDecodeError as e:
                self._skip(e)
                return None
        for attempt in range(len(self.records)):
            try:
                return self.load((i + attempt) % len(self.records))
            except VideoDecodeError as e:
                self._skip(e)
        raise DatasetError(f"no video in this dataset could be decoded ({len(self.__dict__.get('skipped', ()))} failed)")


def collate_readable(items: list) -> dict | None:
    """``default_collate`` without the items of unreadable videos (``None``); a batch in
    which nothing could be read is ``None``."""
    from torch.utils.data import default_collate

    items = [x for x in items if x is not None]
    return default_collate(items) if items else None


def readable_batches(loader):
    """The batches of ``loader`` that hold at least one video."""
    return (b for b in loader if b is not None)


class VideoDataset(SkipsUnreadable):
    """Clips from a list of records.

    Args:
        records: dicts with ``path`` and any task fields (passed through to each item).
        num_frames: frames per clip.
        sampler: ``"uniform"`` (whole video, deterministic), ``"random"`` (random clip with
            ±3-frame jitter, stride ``stride``) or ``"segments"`` (TSN; random in ``train``).
        transform: called as ``transform(clip, generator)`` on ``(T, C, H, W)`` float clips.
        temporal: optional ``TemporalAugment`` applied to the sampled indices.
        text_transform: optional ``text_transform(caption, numpy_generator)`` applied to the
            chosen caption in ``train`` (caption augmentation).
        decode_size: ``(h, w)`` to resize to while decoding (cheaper than after).
        train: random sampling and random caption choice; otherwise deterministic.
        on_error: ``"skip"`` a video that fails to decode (warned once, counted in
            ``skipped``; the next record is used) or ``"raise"``.
        seed: with ``set_epoch``, makes every item's randomness reproducible.

    Items are dicts: ``video`` ``(T, C, H, W)`` float32, ``frame_indices``, ``index`` and the
    record's fields (``captions`` become one ``caption``).
    """

    def __init__(
        self,
        records: list[dict],
        *,
        num_frames: int = 8,
        sampler: str = "uniform",
        stride: int = 1,
        transform: Callable | None = None,
        temporal: Callable | None = None,
        text_transform: Callable | None = None,
        decode_size: tuple[int, int] | None = None,
        train: bool = False,
        on_error: str = "skip",
        seed: int = 0,
    ):
        if not records:
            raise DatasetError("the dataset has no records")
        if sampler not in ("uniform", "random", "segments"):
            raise DatasetError(f"unknown sampler {sampler!r}; choose uniform, random or segments")
        if on_error not in ("skip", "raise"):
            raise DatasetError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.records = records
        self.num_frames, self.sampler, self.stride = num_frames, sampler, stride
        self.transform, self.temporal, self.text_transform = transform, temporal, text_transform
        self.decode_size, self.train, self.on_error, self.seed = decode_size, train, on_error, seed
        self.epoch = 0
        self.skipped: set[str] = set()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self, n: int, g: torch.Generator) -> np.ndarray:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (), generator=g)))
        if self.sampler == "random" and self.train:
            idx = random_clip_indices(n, self.num_frames, self.stride, rng=rng)
        elif self.sampler == "segments":
            idx = segment_indices(n, self.num_frames, train=self.train, rng=rng)
        else:
            idx = uniform_indices(n, self.num_frames)
        if self.temporal is not None and self.train:
            idx = self.temporal(idx, n, g)
        return idx

    def load(self, i: int) -> dict:
        rec = self.records[i]
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) & (2**62 - 1))
        with VideoReader(rec["path"], size=self.decode_size) as reader:
            idx = self._indices(len(reader), g)
            frames = reader.get_frames(idx)
        clip = to_float_clip(frames)
        if self.transform is not None:
            clip = self.transform(clip, g)
        item = {k: v for k, v in rec.items() if k not in ("path", "captions")}
        if "captions" in rec:
            caps = rec["captions"]
            item["caption"] = caps[int(torch.randint(0, len(caps), (), generator=g))] if self.train else caps[0]
            if self.text_transform is not None and self.train:  # the original still tells duplicates apart
                item["caption_original"] = item["caption"]
                item["caption"] = self.text_transform(item["caption"], np.random.default_rng(int(torch.randint(0, 2**62, (), generator=g))))
        item.update(video=clip, frame_indices=torch.as_tensor(idx), index=i, path=rec["path"])
        return item


class SyntheticWorld:
    """Read back a world written by ``vidfm synth`` as ready-to-train datasets."""

    def __init__(self, root):
        self.root = Path(root)
        if not (self.root / "world.json").exists():
            raise DatasetError(f"{self.root}: not a synthetic world (no world.json); create one with 'vidfm synth {self.root}'")
        self.summary = json.loads((self.root / "world.json").read_text())
        self.classes = [c for c in (self.root / "labels.txt").read_text().split() if c]
        self.answers = [a for a in (self.root / "qa" / "answers.txt").read_text().splitlines() if a]

    def _split(self, split: str) -> str:
        return _world_split(split)

    def classification(self, split: str = "train", **kwargs) -> VideoDataset:
        records, _ = classification_from_csv(self.root / "classification" / f"{self._split(split)}.csv", self.root, self.classes)
        return VideoDataset(records, **kwargs)

    def captions(self, split: str = "train", **kwargs) -> VideoDataset:
        return VideoDataset(captions_from_jsonl(self.root / "captions" / f"{self._split(split)}.jsonl", self.root), **kwargs)

    def qa(self, split: str = "train", **kwargs) -> VideoDataset:
        records = qa_from_jsonl(self.root / "qa" / f"{self._split(split)}.jsonl", self.root)
        lookup = {a: i for i, a in enumerate(self.answers)}
        for r in records:
            r["answer_id"] = lookup[r["answer"]]
        return VideoDataset(records, **kwargs)

    def grounding(self, split: str = "train", **kwargs) -> VideoDataset:
        path = self.root / "grounding" / f"{self._split(split)}.txt"
        return VideoDataset(grounding_from_sta(path, self.root / "videos"), **kwargs)

    def shots(self) -> list[dict]:
        return [{**r, "path": str(self.root / r["path"])} for r in read_jsonl(self.root / "shots.jsonl")]

    def metadata(self) -> list[dict]:
        return [{**r, "path": str(self.root / r["path"])} for r in read_jsonl(self.root / "metadata.jsonl")]
