"""A persistent video index: FAISS for the vectors, SQLite for what each vector is.

Layout of an index folder::

    manifest.json   format, model fingerprint, dimension, vector count, index kind
    vectors.faiss   FAISS index (exact inner product, or HNSW for large collections)
    meta.sqlite     segments(id, path, start, end) and videos(path, size, mtime, segments)

Vectors are unit-length, so inner product is cosine similarity. Row ``id`` is the
vector's position in FAISS (the index is append-only). Every update writes a complete new
folder next to the old one and swaps it in (``atomic_save_dir``): a crash leaves either
the old or the new index, never a mix. Opening checks that the three files agree.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidfm.errors import ConfigError, VideoDecodeError
from vidfm.files import atomic_save_dir
from vidfm.retrieval.embedder import Embedder

FORMAT = 1
KINDS = ("flat", "hnsw")


class CorruptIndexError(ConfigError):
    """An index folder that is missing, corrupt or inconsistent."""


@dataclass
class IndexReport:
    added_videos: int = 0
    added_segments: int = 0
    unchanged_videos: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "failed": [{"path": p, "error": e} for p, e in self.failed]}


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ConfigError("the video index needs faiss (pip install faiss-cpu)") from None
    return faiss


def new_faiss_index(dim: int, kind: str = "flat", hnsw_m: int = 32):
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
        return index
    raise ConfigError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")


class VideoIndex:
    def __init__(self, path: Path, manifest: dict, vectors, db: sqlite3.Connection):
        self.path, self.manifest, self.vectors, self.db = path, manifest, vectors, db

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path) -> "VideoIndex":
        path = Path(path)
        if not path.exists():
            if path.with_name(path.name + ".tmp").exists():
                raise CorruptIndexError(f"{path}: the index was never completed (an interrupted 'vidfm index' left {path.name}.tmp); run 'vidfm index' again")
            raise CorruptIndexError(f"{path}: index not found")
        if not path.is_dir():
            raise CorruptIndexError(f"{path}: is a file, not an index folder (make one with 'vidfm index VIDEOS --model M --out FOLDER')")
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except FileNotFoundError:
            raise CorruptIndexError(f"{path}: not a vidfm index, or a half-written one (no manifest.json)") from None
        except json.JSONDecodeError:
            raise CorruptIndexError(f"{path}/manifest.json: corrupt (not valid JSON)") from None
        if manifest.get("format") != FORMAT:
            raise CorruptIndexError(f"{path}: index format {manifest.get('format')!r} is not supported (expected {FORMAT})")
        try:
            vectors = _faiss().read_index(str(path / "vectors.faiss"))
        except RuntimeError as e:
            raise CorruptIndexError(f"{path}/vectors.faiss: corrupt or missing ({str(e).splitlines()[-1][:80]})") from None
        db = _connect(path / "meta.sqlite")
        rows = _count(db, path)
        if not (vectors.ntotal == rows == manifest["count"]) or vectors.d != manifest["dim"]:
            raise CorruptIndexError(f"{path}: inconsistent index ({vectors.ntotal} vectors, {rows} metadata rows, manifest says {manifest['count']}); rebuild it")
        return cls(path, manifest, vectors, db)

    def __len__(self) -> int:
        return self.vectors.ntotal

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def model_path(self) -> Path:
        """The model that built the index: where it was (absolute), or where it is relative
        to the index folder (both were moved together)."""
        saved = Path(self.manifest["model"])
        candidates = [saved] + ([self.path / self.manifest["model_relative"]] if self.manifest.get("model_relative") else [])
        for c in candidates:
            if c.exists():
                return c
        raise ConfigError(f"{self.path}: the model that built this index ({saved}) is gone; give --model")

    def check_model(self, embedder: Embedder) -> None:
        if embedder.fingerprint != self.manifest["model_fingerprint"]:
            raise ConfigError(
                f"{self.path}: this index was built with model {self.manifest['model']} (fingerprint "
                f"{self.manifest['model_fingerprint']}); {embedder.folder} (fingerprint {embedder.fingerprint}) embeds "
                "into a different space — query with the same model, or build a new index"
            )

    def videos(self) -> dict[str, tuple[int, float]]:
        return {p: (s, m) for p, s, m in self.db.execute("SELECT path, size, mtime FROM videos")}

    # -- searching -----------------------------------------------------------------------
    def search_vectors(self, queries: np.ndarray, top: int = 5, exclude_path: str | None = None) -> list[list[dict]]:
        """For each (E,) query: the ``top`` best segments as dicts (rank, score, path, start, end, id)."""
        if top < 1:
            raise ConfigError(f"--top must be >= 1, got {top}")
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.vectors.d:
            raise ConfigError(f"query vectors have dimension {queries.shape[1]}, the index {self.vectors.d}")
        k = min(len(self), top + (self._segments_of(exclude_path) if exclude_path else 0))
        if k == 0:
            return [[] for _ in queries]
        scores, ids = self.vectors.search(queries, k)
        results = []
        for row_scores, row_ids in zip(scores, ids):
            hits = []
            for score, i in zip(row_scores, row_ids):
                if i < 0:
                    continue
                path, start, end = self.db.execute("SELECT path, start, end FROM segments WHERE id = ?", (int(i),)).fetchone()
                if exclude_path and path == exclude_path:
                    continue
                hits.append({"rank": len(hits) + 1, "score": float(score), "path": path, "start": start, "end": end, "id": int(i)})
                if len(hits) == top:
                    break
            results.append(hits)
        return results

    def _segments_of(self, path: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM segments WHERE path = ?", (path,)).fetchone()[0]

    def search_text(self, embedder: Embedder, text: str, top: int = 5) -> list[dict]:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("the query is empty; give a sentence such as 'a red circle moves left'")
        self.check_model(embedder)
        return self.search_vectors(embedder.encode_text([text]), top)[0]

    def search_video(self, embedder: Embedder, video, top: int = 5, include_self: bool = False) -> list[dict]:
        self.check_model(embedder)
        path = str(Path(video).resolve())
        return self.search_vectors(embedder.embed_video(path)[None], top, exclude_path=None if include_self else path)[0]


# -- building and updating ---------------------------------------------------------------
@dataclass
class IndexUpdate:
    """What an update has to do: the open index (if any), what it holds, and the videos
    (path, stat) to embed now."""

    path: Path
    existing: "VideoIndex | None"
    known: dict
    todo: list
    kind: str
    report: IndexReport


def plan_update(path, videos, embedder: Embedder, kind: str = "flat") -> IndexUpdate:
    """Open the index at ``path`` (if it exists; it must have been built by the same model)
    and sort ``videos`` into unchanged (same size and mtime), to embed, and missing."""
    path = Path(path)
    existing = VideoIndex.open(path) if path.exists() else None
    if existing is not None:
        existing.check_model(embedder)
        kind = existing.manifest["kind"]
    elif kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    known = existing.videos() if existing else {}
    report = IndexReport()
    todo = []
    for v in videos:
        v = Path(v).resolve()
        try:
            st = v.stat()
        except OSError as e:
            report.failed.append((str(v), e.strerror or "cannot read"))
            continue
        if known.get(str(v)) == (st.st_size, st.st_mtime):
            report.unchanged_videos += 1
        else:
            todo.append((v, st))
    return IndexUpdate(path, existing, known, todo, kind, report)


def update_index(path, videos, embedder: Embedder, *, window: float | None = None, stride: float | None = None,
                 shots: str | None = None, kind: str = "flat", batch_size: int = 32, progress=None) -> IndexReport:  # fmt: skip
    """Create the index at ``path`` or add the new/changed videos to it (videos whose size
    and mtime match the index are skipped). Videos that fail to decode are reported in
    ``failed`` and leave the index untouched for them. (``vidfm.scale`` runs the same
    update on Ray.)"""
    started = time.perf_counter()
    plan = plan_update(path, videos, embedder, kind)
    report = plan.report
    new_rows, new_vecs, new_videos = [], [], []
    pending = []  # (segment, clip) waiting for a batch

    def flush():
        if pending:
            new_vecs.append(embedder.encode_clips(torch.stack([c for _, c in pending])))
            new_rows.extend((s.path, s.start, s.end) for s, _ in pending)
            pending.clear()

    for v, st in progress(plan.todo) if progress else plan.todo:
        try:
            segs, loaded = embedder.read(v, window, stride, shots)
            clips = list(zip(segs, loaded))
        except VideoDecodeError as e:
            report.failed.append((str(v), str(e)))
            continue
        for item in clips:
            pending.append(item)
            if len(pending) >= batch_size:
                flush()
        new_videos.append((str(v), st.st_size, st.st_mtime, len(segs)))
    flush()
    vectors = np.concatenate(new_vecs) if new_vecs else np.zeros((0, embedder.dim), np.float32)
    publish_update(plan, embedder, new_rows, vectors, new_videos, window=window, stride=stride, shots=shots)
    report.seconds = time.perf_counter() - started
    return report


def publish_update(plan: IndexUpdate, embedder: Embedder, new_rows: list[tuple], new_vectors: np.ndarray, new_videos: list[tuple],
                   *, window=None, stride=None, shots=None) -> None:  # fmt: skip
    """Write the index with the embedded videos in: ``new_rows`` (path, start, end) and
    their ``new_vectors`` (N, E), ``new_videos`` (path, size, mtime, segments). Rows of
    videos that changed on disk are dropped first. Atomic; closes ``plan.existing``."""
    existing, known, path = plan.existing, plan.known, plan.path
    plan.report.added_videos, plan.report.added_segments = len(new_videos), len(new_rows)
    if existing is not None and not new_videos:
        existing.close()
        return
    changed = {str(v) for v, _ in plan.todo if str(v) in known}
    old_rows = existing.db.execute("SELECT path, start, end FROM segments ORDER BY id").fetchall() if existing else []
    old_videos = existing.db.execute("SELECT path, size, mtime, segments FROM videos").fetchall() if existing else []
    if changed:
        keep = [i for i, r in enumerate(old_rows) if r[0] not in changed]
        kept = existing.vectors.reconstruct_n(0, len(old_rows))[keep] if keep else np.zeros((0, embedder.dim), np.float32)
        vectors = new_faiss_index(embedder.dim, plan.kind)
        vectors.add(np.ascontiguousarray(kept))
        old_rows = [old_rows[i] for i in keep]
        old_videos = [v for v in old_videos if v[0] not in changed]
    else:
        vectors = existing.vectors if existing else new_faiss_index(embedder.dim, plan.kind)
    if len(new_vectors):
        vectors.add(np.ascontiguousarray(new_vectors, dtype=np.float32))
    rows = old_rows + list(new_rows)
    manifest = {
        "format": FORMAT, "kind": plan.kind, "dim": embedder.dim, "count": int(vectors.ntotal),
        "model": str(Path(embedder.folder).resolve()), "model_relative": os.path.relpath(Path(embedder.folder).resolve(), path.resolve()),
        "model_fingerprint": embedder.fingerprint,
        "num_frames": embedder.num_frames, "image_size": embedder.image_size,
        "window": window, "stride": stride, "shots": shots, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip
    if existing is not None:
        existing.close()
    write_index(path, vectors, rows, old_videos + list(new_videos), manifest)


def write_index(path, vectors, rows: list[tuple], videos: list[tuple], manifest: dict) -> None:
    """Publish a complete index folder atomically: FAISS ``vectors`` (row i = vector i),
    ``rows`` (path, start, end), ``videos`` (path, size, mtime, segments), the manifest."""

    def write(d: Path):
        db = _connect(d / "meta.sqlite", create=True)
        with db:
            db.executemany("INSERT INTO segments(id, path, start, end) VALUES (?, ?, ?, ?)", [(i, *r) for i, r in enumerate(rows)])
            db.executemany("INSERT OR REPLACE INTO videos(path, size, mtime, segments) VALUES (?, ?, ?, ?)", videos)
        db.close()
        _faiss().write_index(vectors, str(d / "vectors.faiss"))
        (d / "manifest.json").write_text(json.dumps(manifest, indent=2))

    atomic_save_dir(Path(path), write)


def _connect(db_file: Path, create: bool = False) -> sqlite3.Connection:
    if not create and not db_file.exists():
        raise CorruptIndexError(f"{db_file}: missing; the index is incomplete")
    try:
        db = sqlite3.connect(str(db_file), check_same_thread=False)  # the server reads it from worker threads (one at a time)
        db.execute("CREATE TABLE IF NOT EXISTS segments(id INTEGER PRIMARY KEY, path TEXT NOT NULL, start REAL, end REAL)")
        db.execute("CREATE TABLE IF NOT EXISTS videos(path TEXT PRIMARY KEY, size INTEGER, mtime REAL, segments INTEGER)")
        db.execute("CREATE INDEX IF NOT EXISTS segments_path ON segments(path)")
    except sqlite3.DatabaseError as e:
        raise CorruptIndexError(f"{db_file}: corrupt ({e})") from None
    return db


def _count(db: sqlite3.Connection, path: Path) -> int:
    try:
        return db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise CorruptIndexError(f"{path}/meta.sqlite: corrupt ({e})") from None
