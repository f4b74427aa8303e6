"""Per-video annotations for pre-training: attribute labels for auxiliary heads, a
difficulty score, and a curriculum that serves easy videos first.

Attributes come from a world's annotations (of its first shot and main object) or, for a
CSV, from any of its columns. ``motion`` and ``direction`` are derived from the action, so
in a world they are a coarse form of the class label; the others are independent of it.

The curriculum is competence-based (Platanios et al. 2019): at training progress
``p`` (epoch / ramp) the sampler draws from the easiest ``c(p) = min(1, sqrt(c0² + (1 - c0²) p))``
fraction of the videos, so every epoch keeps its length (the learning-rate schedule is
unchanged) while the pool widens from the simple clips to all of them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from vidfm.data.datasets import DataSource
from vidfm.data.synthetic import DIRECTIONS
from vidfm.errors import ConfigError

IGNORE = -100  # an attribute value never seen in training (cross-entropy skips it)
MOTION = {"move_left": "translate", "move_right": "translate", "move_up": "translate", "move_down": "translate", "grow": "scale",
          "shrink": "scale", "rotate": "rotate", "change_colour": "recolour", "bounce": "bounce", "appear": "visibility",
          "disappear": "visibility", "stay_still": "still"}  # fmt: skip
WORLD_ATTRIBUTES = {
    "camera": lambda m, shot, main: shot.get("camera", "static"),
    "count": lambda m, shot, main: str(len(shot["objects"])),
    "size": lambda m, shot, main: main["size"],
    "shape": lambda m, shot, main: main["shape"],
    "colour": lambda m, shot, main: main["colour"],
    "background": lambda m, shot, main: shot["background"],
    "motion": lambda m, shot, main: MOTION.get(main["action"], main["action"]),
    "direction": lambda m, shot, main: DIRECTIONS.get(main["action"], "none"),
}


def _annotations(source: DataSource) -> dict[str, dict]:
    """path -> annotation row: world metadata, or a CSV's rows (paths resolved)."""
    if source.is_world:
        return {str(Path(m["path"])): m for m in source.world().metadata()}
    if source.kind == "csv":
        return {r["path"]: r for r in source.csv_rows()}
    raise ConfigError(f"{source.path}: attributes and difficulty need a synthetic world or a CSV with those columns")


def attribute_values(source: DataSource, records: list[dict], names: list[str]) -> list[dict[str, str | None]]:
    """Each record's attribute values (strings; ``None`` where a CSV cell is empty), in record order."""
    notes = _annotations(source)
    unknown = [n for n in names if n not in WORLD_ATTRIBUTES]
    if source.is_world and unknown:
        raise ConfigError(f"unknown world attribute {unknown[0]!r}; choose from {', '.join(WORLD_ATTRIBUTES)}")
    out = []
    for r in records:
        row = notes.get(str(Path(r["path"])))
        if row is None:
            raise ConfigError(f"{r['path']}: no annotation row for this video")
        if source.is_world:
            shot = row["shots"][0]
            out.append({n: WORLD_ATTRIBUTES[n](row, shot, shot["objects"][0]) for n in names})
        else:
            missing = [n for n in names if n not in row]
            if missing:
                raise ConfigError(f"{source.path}: no column {missing[0]!r} (columns: {', '.join(row)})")
            out.append({n: (row[n] or "").strip() or None for n in names})
    return out


def attach_attributes(source: DataSource, train: list[dict], val: list[dict] | None, names: list[str],
                      val_source: DataSource | None = None) -> dict[str, list[str]]:  # fmt: skip
    """Add ``attr_<name>`` ids to every record (values unseen in training, and empty
    cells, get ``IGNORE``); returns each attribute's vocabulary (from the training records).
    ``val_source`` holds the validation records' annotations when they come from elsewhere."""
    train_values = attribute_values(source, train, names)
    vocab = {n: sorted({v[n] for v in train_values} - {None}) for n in names}
    for n, values in vocab.items():
        if len(values) < 2:
            raise ConfigError(f"attribute {n!r} has {len(values)} value(s) {values} in the training videos: nothing to learn")
    val_values = attribute_values(val_source or source, val, names) if val else []
    for records, values in ((train, train_values), (val or [], val_values)):
        for r, v in zip(records, values):
            r.update({f"attr_{n}": vocab[n].index(v[n]) if v[n] in vocab[n] else IGNORE for n in names})
    return vocab


def difficulty_scores(source: DataSource, records: list[dict]) -> np.ndarray:
    """Higher = harder. World: objects in view + textured background + moving camera +
    extra shots + a small main object. CSV: its ``difficulty`` column. Captions only: the
    number of words in the shortest caption (one-attribute captions first)."""
    if source.is_world:
        notes = _annotations(source)

        def score(m):
            shot = m["shots"][0]
            return (len(shot["objects"]) + (shot["background"] != "solid") + (shot.get("camera", "static") != "static")
                    + (len(m["shots"]) - 1) + (shot["objects"][0]["size"] == "small"))  # fmt: skip

        return np.array([score(notes[str(Path(r["path"]))]) for r in records], dtype=float)
    if source.kind == "csv":
        try:
            return np.array([float(notes["difficulty"]) for notes in attribute_values(source, records, ["difficulty"])])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source.path}: the 'difficulty' column must hold a number in every row ({e})") from None
    if all(r.get("captions") for r in records):
        return np.array([min(len(c.split()) for c in r["captions"]) for r in records], dtype=float)
    raise ConfigError(f"{source.path}: a curriculum needs a synthetic world, captions, or a CSV with a 'difficulty' column")


def competence(epoch: int, ramp_epochs: int, start: float) -> float:
    """Fraction of the data (easiest first) open at ``epoch`` (0-based)."""
    if ramp_epochs <= 0:
        return 1.0
    return min(1.0, math.sqrt(start**2 + (1 - start**2) * epoch / ramp_epochs))


class CurriculumDataset(Dataset):
    """Wraps a training dataset (anything with ``set_epoch``): item ``i`` of epoch ``e`` is a
    video from the easiest ``competence(e)`` fraction, in a per-epoch shuffled order.
    Ties in difficulty are broken at random (seeded), so the pool is not biased by file order."""

    def __init__(self, dataset, difficulty, ramp_epochs: int, start: float = 0.3, seed: int = 0):
        if not 0 < start <= 1:
            raise ConfigError(f"curriculum start must be in (0, 1], got {start}")
        if ramp_epochs < 1:
            raise ConfigError(f"the curriculum needs at least 1 epoch of ramp, got {ramp_epochs}")
        difficulty = np.asarray(difficulty, dtype=float)
        if len(difficulty) != len(dataset):
            raise ConfigError("one difficulty score per video is needed")
        tie = np.random.default_rng(seed).random(len(difficulty))
        self.dataset, self.order = dataset, np.lexsort((tie, difficulty))
        self.ramp_epochs, self.start, self.seed = ramp_epochs, start, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
        n = max(1, math.ceil(competence(epoch, self.ramp_epochs, self.start) * len(self.order)))
        # every epoch keeps its length: the easiest n videos each come about len/n times, shuffled
        self.schedule = self.order[:n][np.random.default_rng([self.seed, epoch]).permutation(len(self.order)) % n]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset[int(self.schedule[i])]

    def __getattr__(self, name):  # train, skipped... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
