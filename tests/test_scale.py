"""Collections on Ray Data and in one process: the same index, failures recorded and never
fatal, a worker crash bounded, a killed job resumed from its shards."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run

from vidfm.errors import ConfigError
from vidfm.models import build_encoder
from vidfm.retrieval.embedder import Embedder
from vidfm.retrieval.index import VideoIndex, update_index
from vidfm.scale.batch import (
    RayOptions,
    actor_pool_size,
    plan_shards,
    run_job,
    start_ray,
)
from vidfm.scale.jobs import EmbedJob, run_to_file


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("scale") / "encoder"
    build_encoder("r2plus1d-tiny", num_frames=4, image_size=32).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def collection(world, videos, tmp_path_factory):
    """12 world videos and a list file that also names a corrupt, an empty and a missing file."""
    d = tmp_path_factory.mktemp("collection")
    good = sorted((world / "videos").glob("*.mp4"))[:12]
    lines = [str(p) for p in good[:5]] + [str(videos["truncated"]), str(videos["empty"]), "missing.mp4"] + [str(p) for p in good[5:]]
    (d / "list.txt").write_text("# videos to index\n" + "\n".join(lines) + "\n")
    return {"good": good, "list": d / "list.txt", "bad": [videos["truncated"], videos["empty"], d / "missing.mp4"]}


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    start_ray(RayOptions(num_cpus=2))
    yield ray
    ray.shutdown()


def index_contents(path):
    with VideoIndex.open(path) as ix:
        rows = ix.db.execute("SELECT path, start, end FROM segments ORDER BY id").fetchall()
        return rows, ix.vectors.reconstruct_n(0, len(ix)), ix.videos()


def test_ray_index_equals_the_one_process_index_and_records_failures(local_ray, encoder, collection, tmp_path, capsys):
    update_index(tmp_path / "one", collection["good"], Embedder(encoder))
    code, out, err = run(capsys, "index", collection["list"], "--model", encoder, "--out", tmp_path / "ray", "--engine", "ray", "--shard-size", "3", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["added_videos"] == 12 and len(report["failed"]) == 3
    rows_one, vecs_one, videos_one = index_contents(tmp_path / "one")
    rows_ray, vecs_ray, videos_ray = index_contents(tmp_path / "ray")
    assert rows_ray == rows_one and videos_ray == videos_one
    np.testing.assert_allclose(vecs_ray, vecs_one, atol=1e-5)
    failures = [json.loads(line) for line in (tmp_path / "ray.failures.jsonl").read_text().splitlines()]
    by_name = {Path(f["path"]).name: f for f in failures}
    assert set(by_name) == {"truncated.mp4", "empty.mp4", "missing.mp4"}
    assert "No such file" in by_name["missing.mp4"]["error"] and by_name["truncated.mp4"]["attempts"] == 3  # read, then 2 retries
    assert not (tmp_path / "ray.parts").exists()  # shards are dropped once merged
    # a second run: nothing new, the index untouched
    code, out, _ = run(capsys, "index", *collection["good"], "--model", encoder, "--out", tmp_path / "ray", "--engine", "ray", "--json")
    assert code == 0 and json.loads(out)["unchanged_videos"] == 12 and json.loads(out)["added_videos"] == 0


class CrashingJob(EmbedJob):
    """Kills its worker process (as a decoder segfault would) on one file."""

    def read(self, path):
        if Path(path).name == "000003.mp4":
            os._exit(1)
        return super().read(path)


def test_a_video_that_kills_its_worker_is_retried_then_recorded(local_ray, encoder, collection, tmp_path):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    report, store, shards = run_job(CrashingJob(encoder), collection["good"][:6], tmp_path / "parts", engine="ray", shard_size=2, retries=1)
    assert [Path(f["path"]).name for f in report.failed] == ["000003.mp4"]
    assert "died" in report.failed[0]["error"] and report.failed[0]["attempts"] == 2
    assert report.rows == 5 and report.processed == 6


def test_the_actor_pool_leaves_cpu_for_reading():
    assert actor_pool_size(RayOptions(), 2) == 2  # two half-CPU actors leave one CPU free
    with pytest.raises(ConfigError, match="44687"):
        actor_pool_size(RayOptions(actors=4), 2)
    with pytest.raises(ConfigError, match="starve"):
        actor_pool_size(RayOptions(actors=2, cpus_per_actor=1.0), 2)


def test_an_unreachable_cluster_fails_in_seconds():
    import socket
    import time

    from vidfm.scale.batch import check_ray_address

    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        check_ray_address(f"127.0.0.1:{port}")
    assert time.perf_counter() - t0 < 10
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_ray_address(f"ray://127.0.0.1:{listening.getsockname()[1]}")  # answers: left to Ray
    check_ray_address("auto")


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'vidfm\[ray\]'"):
        start_ray(RayOptions())


def test_shards_are_named_by_their_videos_and_the_job(collection):
    a, _ = plan_shards(collection["good"], {"job": "x"}, 4)
    b, _ = plan_shards(collection["good"], {"job": "y"}, 4)
    c, _ = plan_shards(collection["good"][:11], {"job": "x"}, 4)
    assert len(a) == 3 and [s.name for s in a][:2] == [s.name for s in c][:2] and a[2].name != c[2].name
    assert not {s.name for s in a} & {s.name for s in b}


class Interrupted(EmbedJob):
    """Stops the whole run (like a kill) when it reaches one file."""

    def read(self, path):
        if Path(path).name == "000007.mp4":
            raise KeyboardInterrupt
        return super().read(path)


def test_an_interrupted_embed_resumes_from_its_finished_shards(encoder, collection, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "features.parquet"
    with pytest.raises(KeyboardInterrupt):
        run_to_file(Interrupted(encoder), collection["good"], out, fmt="parquet", shard_size=3)
    assert not out.exists() and len(list((tmp_path / "features.parquet.parts").glob("*.json"))) == 2  # 6 videos done
    report = run_to_file(EmbedJob(encoder), collection["good"], out, fmt="parquet", shard_size=3)
    assert report.reused == 6 and report.processed == 6 and not report.failed
    table = pq.read_table(out).to_pylist()
    assert [Path(r["path"]).name for r in table] == [p.name for p in collection["good"]]
    reference = Embedder(encoder)
    np.testing.assert_allclose(np.asarray(table[4]["vector"]), reference.embed_video(collection["good"][4]), atol=1e-5)


def test_a_killed_ray_index_resumes(local_ray, encoder, collection, tmp_path):
    """SIGKILL the whole process group mid-run; the same command again reuses the shards."""
    pytest.importorskip("ray")
    many = tmp_path / "many"
    many.mkdir()
    for k in range(4):  # 48 videos, 24 shards of 2
        for p in collection["good"]:
            shutil.copy(p, many / f"{k}_{p.name}")
    cmd = [sys.executable, "-m", "vidfm", "index", str(many), "--model", str(encoder), "--out", str(tmp_path / "ix"), "--engine", "ray",
           "--shard-size", "2", "--json"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    parts = tmp_path / "ix.parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*.json"))) < 3 and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("*.json")))
    assert 3 <= done < 24 and not (tmp_path / "ix").exists()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added_videos"] == 48
    with VideoIndex.open(tmp_path / "ix") as ix:
        assert len(ix) == 48


def test_collections_of_shots_and_predictions_from_the_cli(collection, tmp_path, capsys):
    code, out, err = run(capsys, "shots", collection["list"], "--method", "histogram", "--out", tmp_path / "shots.jsonl")
    assert code == 0, err
    assert "15 videos, 12 done" in out and "3 failed" in out
    rows = [json.loads(line) for line in (tmp_path / "shots.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["shots"] and r["num_frames"] > 0 for r in rows)
    assert len((tmp_path / "shots.jsonl.failures.jsonl").read_text().splitlines()) == 3
    code, out, err = run(capsys, "shots", *collection["bad"], "--out", tmp_path / "bad.jsonl")
    assert code == 1 and "3 failed" in out  # nothing could be read: the command fails
    code, _, err = run(capsys, "shots", *collection["good"][:2])
    assert code == 1 and "--out" in err


def test_split_of_videos_with_the_same_name_keeps_every_shot(collection, tmp_path, capsys, monkeypatch):
    for folder, source in (("a", collection["good"][0]), ("b", collection["good"][1])):
        (tmp_path / folder).mkdir()
        shutil.copy(source, tmp_path / folder / "clip.mp4")
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    code, out, err = run(capsys, "split", "a/clip.mp4", "b/clip.mp4", "--method", "histogram", "--out", tmp_path / "parts")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "parts" / "shots.jsonl").read_text().splitlines()]
    files = [f for r in rows for f in r["files"]]
    assert len(files) == len(set(files)) == sum(len(r["shots"]) for r in rows) >= 2  # no shot overwrote another
    assert all(Path(f).exists() and Path(f).name.startswith("clip_") for f in files)
