"""Run one job over a collection of videos, in this process or on Ray Data, in resumable
shards.

A *job* (``vidfm.scale.jobs``) says how to read one video and how to run the model on a
batch of read videos. The collection is cut into shards of ``shard_size`` videos, in order;
a shard's name holds a hash of its videos (path, size, mtime) and of the job's settings, so
a finished shard is reused by a restarted run with the same inputs and never by another.

With ``engine="ray"``, a Ray Data dataset holds one row per shard *of paths* (never bytes);
``map_batches`` sends each row to an actor of a pool, which loads the model once, decodes
and runs the model, and returns the shard's rows. The driver writes each shard as it
arrives (a Parquet file, then a JSON marker that says it is complete, both atomic), so
memory stays flat however many videos there are, and the output needs no filesystem shared
with the workers. A video that raises is retried ``retries`` times in the actor and then
recorded as failed with its reason; a video that kills its worker process (a decoder
crash) is counted by a small bookkeeping actor across Ray's automatic restarts and, after
``retries + 1`` attempts, recorded as failed too. Nothing one video does stops the job.

Actors take fractional CPUs and the pool never takes every CPU: an actor pool holding all
of them starves Ray Data's read tasks and the job hangs (ray-project/ray#44687).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from vidfm.errors import ConfigError
from vidfm.files import atomic_file, atomic_write_text

ENGINES = ("local", "ray")
INSTALL_RAY = "--engine ray needs Ray: pip install 'vidfm[ray]' (or pip install 'ray[data]')"


@dataclass
class RayOptions:
    """Where and how wide to run on Ray. ``address=None`` starts a local Ray with
    ``num_cpus`` (default: every core); ``actors`` model replicas of ``cpus_per_actor``
    CPUs each (default: one per core, half a CPU each)."""

    address: str | None = None
    num_cpus: float | None = None
    actors: int | None = None
    cpus_per_actor: float = 0.5
    gpus_per_actor: float = 0.0  # > 0: the actors run the model on CUDA


@dataclass
class JobReport:
    videos: int = 0  # in the collection
    processed: int = 0  # read and run now
    reused: int = 0  # in shards a previous (killed) run had finished
    rows: int = 0
    failed: list[dict] = field(default_factory=list)  # {"path", "error", "attempts"}
    seconds: float = 0.0
    engine: str = "local"
    actors: int = 0
    shards: int = 0

    @property
    def failed_all(self) -> bool:
        return bool(self.failed) and len(self.failed) == self.videos

    @property
    def videos_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "videos_per_second": round(self.videos_per_second, 3)}


@dataclass
class Shard:
    name: str
    videos: list[tuple[str, int, float]]  # (path, size, mtime)


def auto_shard_size(videos: int) -> int:
    """At least 16 shards for small collections (every actor has work), at most 64 videos a
    shard; it depends on the collection only, so a restarted run cuts the same shards."""
    return max(1, min(64, math.ceil(videos / 16)))


def plan_shards(videos, settings: dict, shard_size: int | None = None) -> tuple[list[Shard], list[dict]]:
    """Shards of the readable videos (in the given order) and the ones that cannot even be
    stat'ed (missing files), which fail at once."""
    videos = list(videos)
    shard_size = auto_shard_size(len(videos)) if shard_size is None else shard_size
    if shard_size < 1:
        raise ConfigError(f"--shard-size must be >= 1, got {shard_size}")
    stats, missing = [], []
    for v in videos:
        path = str(Path(v).resolve())
        try:
            st = os.stat(path)
        except OSError as e:
            missing.append({"path": path, "error": e.strerror or "cannot read", "attempts": 0})
            continue
        stats.append((path, st.st_size, st.st_mtime))
    key = json.dumps(settings, sort_keys=True, default=str)
    shards = []
    for k in range(0, len(stats), shard_size):
        chunk = stats[k : k + shard_size]
        digest = hashlib.sha256((key + json.dumps(chunk)).encode()).hexdigest()[:12]
        shards.append(Shard(f"shard-{k // shard_size:06d}-{digest}", chunk))
    return shards, missing


class ShardStore:
    """A work folder of finished shards: ``NAME.parquet`` (the rows, if any) and
    ``NAME.json`` (videos, failures, seconds; written last, so its presence means done)."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def done(self, shard: Shard) -> bool:
        return (self.folder / f"{shard.name}.json").exists()

    def write(self, shard: Shard, rows: list[dict], failures: list[dict], seconds: float) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        if rows:
            with atomic_file(self.folder / f"{shard.name}.parquet") as tmp:
                pq.write_table(pa.Table.from_pylist(rows), tmp)
        marker = {"videos": shard.videos, "rows": len(rows), "failures": failures, "seconds": seconds}
        atomic_write_text(self.folder / f"{shard.name}.json", json.dumps(marker))

    def marker(self, shard: Shard) -> dict:
        return json.loads((self.folder / f"{shard.name}.json").read_text())

    def table(self, shard: Shard):
        """The shard's rows as a pyarrow table (``None`` when it has none)."""
        import pyarrow.parquet as pq

        f = self.folder / f"{shard.name}.parquet"
        return pq.read_table(f) if f.exists() else None

    def rows(self, shard: Shard) -> list[dict]:
        table = self.table(shard)
        return table.to_pylist() if table is not None else []

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# -- running one shard (in this process or in a Ray actor) ------------------------------
def process_shard(job, videos: list[str], retries: int, book=None, name: str = "") -> tuple[list[dict], list[dict]]:
    """``(rows, failures)`` of shard ``name``: each video read with up to ``retries``
    retries, then the model run on the readable ones in batches. ``book`` (start(key) ->
    unfinished attempts, finish(key)) bounds the attempts at a video whose reading, or a
    shard whose model run, kills the worker."""
    items, failures = [], []
    for path in videos:
        if book is not None:
            attempts = book.start(path)
            if attempts > retries + 1:
                failures.append({"path": path, "error": "the worker process died while reading it (crashed every attempt)", "attempts": attempts - 1})
                book.finish(path)
                continue
        for attempt in range(retries + 1):
            try:
                items.append((path, job.read(path)))
                break
            except Exception as e:  # noqa: BLE001 - any failure of one video is recorded, never fatal
                if attempt == retries:
                    failures.append({"path": path, "error": _one_line(e), "attempts": attempt + 1})
        if book is not None:
            book.finish(path)
    rows = []
    if book is not None and book.start(f"model:{name}") > retries + 1:  # it died in the model, every time
        return rows, failures + [{"path": p, "error": "the worker process died running the model on it", "attempts": retries + 1} for p, _ in items]
    batch = max(1, getattr(job, "batch_size", 8))
    for k in range(0, len(items), batch):
        chunk = items[k : k + batch]
        try:
            outputs = job.compute([item for _, item in chunk])
        except Exception:  # noqa: BLE001 - one bad video in the batch: run them one by one
            outputs = []
            for path, item in chunk:
                try:
                    outputs += job.compute([item])
                except Exception as e:  # noqa: BLE001
                    failures.append({"path": path, "error": _one_line(e), "attempts": 1})
        for out in outputs:
            rows += out
    if book is not None:
        book.finish(f"model:{name}")
    return rows, failures


def _one_line(e: Exception, limit: int = 300) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:limit]


class _ShardWorker:
    """The Ray actor: loads the job's model once, then runs shards as they come."""

    def __init__(self, job, retries: int, threads: int, bookkeeper, gpu: bool = False):
        import torch

        torch.set_num_threads(threads)
        if gpu:
            job.device = "cuda"
        self.job, self.retries, self.bookkeeper = job, retries, bookkeeper
        job.setup()

    def __call__(self, batch: dict) -> dict:
        import ray

        book, payloads = _RemoteBook(self.bookkeeper, ray), []
        for name, videos in zip(batch["shard"], batch["videos"]):
            started, videos = time.perf_counter(), json.loads(videos)
            rows, failures = process_shard(self.job, videos, self.retries, book, name)
            payloads.append(pickle.dumps((rows, failures, time.perf_counter() - started)))
        return {"shard": list(batch["shard"]), "payload": payloads}


class _RemoteBook:
    def __init__(self, actor, ray):
        self.actor, self.ray = actor, ray

    def start(self, key: str) -> int:
        return self.ray.get(self.actor.start.remote(key))

    def finish(self, key: str) -> None:
        self.ray.get(self.actor.finish.remote(key))  # recorded before the next video can crash the worker


class _Bookkeeper:
    """Counts, across worker crashes and restarts, the attempts at each video (and shard)
    that never finished: a worker that dies leaves its attempt unfinished."""

    def __init__(self):
        self.unfinished: dict[str, int] = {}

    def start(self, key: str) -> int:
        self.unfinished[key] = self.unfinished.get(key, 0) + 1
        return self.unfinished[key]

    def finish(self, key: str) -> None:
        self.unfinished[key] = 0


# -- the driver ---------------------------------------------------------------------------
def run_job(job, videos, work_dir, *, engine: str = "local", shard_size: int | None = None, retries: int = 2,
            ray_options: RayOptions | None = None, progress=None) -> tuple[JobReport, ShardStore, list[Shard]]:  # fmt: skip
    """Run ``job`` over ``videos``, keeping finished shards in ``work_dir`` (reused by a
    restarted run). ``progress(total)`` returns a bar with ``update(n)``. Returns the report,
    the store and the shards in order (read them back with ``store.rows``)."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if retries < 0:
        raise ConfigError(f"--retries must be >= 0, got {retries}")
    started = time.perf_counter()
    shards, missing = plan_shards(videos, job.settings(), shard_size)
    store = ShardStore(work_dir)
    pending = [s for s in shards if not store.done(s)]
    report = JobReport(videos=sum(len(s.videos) for s in shards) + len(missing), engine=engine, shards=len(shards))
    report.reused = sum(len(s.videos) for s in shards) - sum(len(s.videos) for s in pending)
    bar = progress(sum(len(s.videos) for s in pending)) if progress else None
    if pending and engine == "local":
        job.setup()
        for shard in pending:
            t = time.perf_counter()
            rows, failures = process_shard(job, [v[0] for v in shard.videos], retries)
            store.write(shard, rows, failures, time.perf_counter() - t)
            report.processed += len(shard.videos)
            bar and bar.update(len(shard.videos))
    elif pending:
        report.actors = _run_on_ray(job, pending, store, retries, ray_options or RayOptions(), report, bar)
    bar and bar.close()
    for shard in shards:
        marker = store.marker(shard)
        report.rows += marker["rows"]
        report.failed += marker["failures"]
    report.failed = missing + report.failed
    report.seconds = time.perf_counter() - started
    return report, store, shards


def start_ray(options: RayOptions):
    """``ray.init`` once: a local instance (dashboard off, quiet) or the cluster at
    ``options.address``."""
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_RAY) from None
    if not ray.is_initialized():
        import logging

        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # the driver's C++ notes (not errors of ours) stay in Ray's logs
        common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if options.address:
                check_ray_address(options.address)
                ray.init(address=options.address, **common)
            else:
                ray.init(num_cpus=options.num_cpus or os.cpu_count(), **common)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {options.address}" if options.address else "a local Ray instance"
            raise ConfigError(f"cannot start or reach {where}: {_one_line(e, 200)}") from None
    return ray


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after Ray's own minutes of retries, when ``host:port`` (or
    ``ray://host:port``) does not answer; ``auto`` and ``local`` are left to Ray."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {e.strerror or e} (is 'ray start --head' running there?)") from None


def actor_pool_size(options: RayOptions, cluster_cpus: float) -> int:
    """The number of actors, checked to leave CPU for Ray Data's read tasks (ray#44687)."""
    if options.cpus_per_actor <= 0:
        raise ConfigError(f"--cpus-per-actor must be > 0, got {options.cpus_per_actor}")
    actors = options.actors or max(1, int(cluster_cpus))
    if actors < 1:
        raise ConfigError(f"--actors must be >= 1, got {actors}")
    if actors * options.cpus_per_actor > cluster_cpus - 0.5:
        raise ConfigError(
            f"{actors} actors x {options.cpus_per_actor} CPUs would take all {cluster_cpus:g} CPUs and starve Ray Data's read "
            "tasks (the job would hang, ray-project/ray#44687); use fewer --actors or a smaller --cpus-per-actor"
        )
    return actors


def _run_on_ray(job, pending: list[Shard], store: ShardStore, retries: int, options: RayOptions, report: JobReport, bar) -> int:
    start_ray(options)
    import logging
    import warnings

    import ray
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # vidfm's bar and summary say what Ray Data's notes would
    warnings.filterwarnings("ignore", message=".*minimum number of concurrent actors.*")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # vidfm's bar counts videos, not blocks
    ctx.print_on_execution_start = False
    cpus = float(ray.cluster_resources().get("CPU", 1))
    actors = actor_pool_size(options, cpus)
    threads = max(1, int(cpus // actors))
    bookkeeper = ray.remote(num_cpus=0)(_Bookkeeper).remote()
    items = [{"shard": s.name, "videos": json.dumps([v[0] for v in s.videos])} for s in pending]
    by_name = {s.name: s for s in pending}
    ds = ray.data.from_items(items, override_num_blocks=len(items))

    class Worker(_ShardWorker):  # no constructor arguments: they would sit in the object store
        def __init__(self):
            super().__init__(job, retries, threads, bookkeeper, options.gpus_per_actor > 0)

    ds = ds.map_batches(
        Worker,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=options.cpus_per_actor,
        **({"num_gpus": options.gpus_per_actor} if options.gpus_per_actor > 0 else {}),
    )
    for row in ds.iter_rows():
        shard = by_name[row["shard"]]
        rows, failures, seconds = pickle.loads(row["payload"])
        store.write(shard, rows, failures, seconds)
        report.processed += len(shard.videos)
        bar and bar.update(len(shard.videos))
    ray.kill(bookkeeper)
    return actors


def write_failures(path, failures: list[dict]) -> Path | None:
    """``path`` as JSONL (one failed video per line) when anything failed; otherwise a
    stale file from an earlier run is removed. Returns the file written, if any."""
    path = Path(path)
    if not failures:
        path.unlink(missing_ok=True)
        return None
    return atomic_write_text(path, "".join(json.dumps(f) + "\n" for f in failures))


__all__ = ["ENGINES", "JobReport", "RayOptions", "ShardStore", "actor_pool_size", "plan_shards", "process_shard", "run_job", "start_ray", "write_failures"]
