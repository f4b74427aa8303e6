import json
import os
import shutil

import numpy as np
import pytest
from cli_helpers import run

from vidfm.errors import ConfigError
from vidfm.metrics.retrieval import ranks, retrieval_metrics
from vidfm.models import build_encoder
from vidfm.retrieval.embedder import Embedder
from vidfm.retrieval.index import VideoIndex, update_index
from vidfm.tasks.retrieval import zero_shot


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("enc") / "encoder"
    build_encoder("r2plus1d-tiny", num_frames=4, image_size=32).save_pretrained(path)
    return path


@pytest.fixture()
def clips(videos, tmp_path):
    """Three good videos in a folder of our own (so tests can add, touch and break files)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for name, key in (("a", "coded"), ("b", "with_audio"), ("c", "rot180")):
        shutil.copy(videos[key], folder / f"{name}.mp4")
    return folder


# -- metrics --------------------------------------------------------------------------------
def test_ranks_and_recalls_on_known_similarities():
    sim = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.1, 0.2, 0.3]])  # text 1's video is 2nd
    assert list(ranks(sim)) == [1, 2, 1]
    m = retrieval_metrics(sim, ks=(1, 2))
    assert m["t2v_R@1"] == pytest.approx(2 / 3) and m["t2v_R@2"] == 1.0 and m["t2v_MdR"] == 1.0
    assert m["v2t_R@1"] == 1.0  # each video prefers its own text (column-wise maxima)
    assert list(ranks(np.ones((3, 3)))) == [3, 3, 3]  # ties count against the query
    perfect = retrieval_metrics(np.eye(20))
    assert perfect["t2v_R@1"] == perfect["v2t_R@1"] == 1.0 and perfect["rsum"] == 6.0


# -- the index ------------------------------------------------------------------------------
def test_index_search_and_incremental_updates(video_text_dir, clips, tmp_path):
    e = Embedder(video_text_dir)
    idx = tmp_path / "index"
    report = update_index(idx, sorted(clips.iterdir()), e)
    assert report.added_videos == 3 and report.added_segments == 3 and not report.failed
    with VideoIndex.open(idx) as ix:
        assert len(ix) == 3
        hits = ix.search_text(e, "a red circle moves left", top=2)
        assert [h["rank"] for h in hits] == [1, 2] and hits[0]["score"] >= hits[1]["score"]
        assert hits[0]["end"] > hits[0]["start"] == 0.0
        same = ix.search_video(e, clips / "a.mp4", top=5)
        assert str(clips / "a.mp4") not in [h["path"] for h in same] and len(same) == 2
        assert ix.search_video(e, clips / "a.mp4", top=1, include_self=True)[0]["score"] == pytest.approx(1.0, abs=1e-4)
    # again: nothing new to embed
    again = update_index(idx, sorted(clips.iterdir()), e)
    assert again.added_videos == 0 and again.unchanged_videos == 3
    # a new video and a changed one: only those are embedded; the changed one is replaced
    shutil.copy(clips / "a.mp4", clips / "d.mp4")
    os.utime(clips / "b.mp4", (1, 1))
    more = update_index(idx, sorted(clips.iterdir()), e)
    assert more.added_videos == 2 and more.unchanged_videos == 2
    with VideoIndex.open(idx) as ix:
        assert len(ix) == 4
        assert sorted(ix.videos()) == sorted(str(p) for p in clips.iterdir())


def test_windows_of_long_videos_get_their_own_time_ranges(video_text_dir, videos, tmp_path):
    e = Embedder(video_text_dir)
    update_index(tmp_path / "w", [videos["coded"]], e, window=2.0, stride=1.0)
    with VideoIndex.open(tmp_path / "w") as ix:
        rows = ix.db.execute("SELECT start, end FROM segments ORDER BY id").fetchall()
    assert len(rows) > 2 and rows[0] == (0.0, 2.0) and rows[1] == (1.0, 3.0)
    assert all(end - start == pytest.approx(2.0) for start, end in rows)


def test_unreadable_videos_are_reported_and_the_index_stays_consistent(video_text_dir, clips, videos, tmp_path):
    e = Embedder(video_text_dir)
    shutil.copy(videos["truncated"], clips / "broken.mp4")
    report = update_index(tmp_path / "i", [*sorted(clips.iterdir()), tmp_path / "missing.mp4"], e)
    failed = {os.path.basename(p) for p, _ in report.failed}
    assert failed == {"broken.mp4", "missing.mp4"} and report.added_videos == 3
    with VideoIndex.open(tmp_path / "i") as ix:
        assert len(ix) == 3 and "broken.mp4" not in " ".join(ix.videos())


def test_a_different_model_is_refused(video_text_dir, encoder_dir, clips, tmp_path):
    update_index(tmp_path / "i", sorted(clips.iterdir()), Embedder(video_text_dir))
    other = Embedder(encoder_dir)
    with VideoIndex.open(tmp_path / "i") as ix, pytest.raises(ConfigError, match="different space"):
        ix.search_video(other, clips / "a.mp4")
    with pytest.raises(ConfigError, match="different space"):
        update_index(tmp_path / "i", sorted(clips.iterdir()), other)
    with pytest.raises(ConfigError, match="no text tower"):
        update_index(tmp_path / "enc", sorted(clips.iterdir()), other)
        with VideoIndex.open(tmp_path / "enc") as ix:
            ix.search_text(other, "a red circle")


@pytest.mark.parametrize("damage", ["manifest", "vectors", "sqlite", "count", "half-written"])
def test_corrupt_or_half_written_indexes_are_detected(video_text_dir, clips, tmp_path, damage):
    idx = tmp_path / "i"
    update_index(idx, sorted(clips.iterdir()), Embedder(video_text_dir))
    if damage == "manifest":
        (idx / "manifest.json").write_text("{not json")
    elif damage == "vectors":
        data = (idx / "vectors.faiss").read_bytes()
        (idx / "vectors.faiss").write_bytes(data[: len(data) // 2])
    elif damage == "sqlite":
        (idx / "meta.sqlite").write_bytes(b"garbage" * 100)
    elif damage == "count":
        m = json.loads((idx / "manifest.json").read_text())
        (idx / "manifest.json").write_text(json.dumps({**m, "count": 7}))
    else:  # a crash before the first publish leaves only the temporary folder
        os.replace(idx, tmp_path / "i.tmp")
    with pytest.raises(ConfigError, match="corrupt|inconsistent|never completed"):
        VideoIndex.open(idx)


def test_hnsw_index_finds_the_same_nearest_neighbours(video_text_dir, clips, tmp_path):
    e = Embedder(video_text_dir)
    update_index(tmp_path / "flat", sorted(clips.iterdir()), e)
    update_index(tmp_path / "hnsw", sorted(clips.iterdir()), e, kind="hnsw")
    with VideoIndex.open(tmp_path / "flat") as a, VideoIndex.open(tmp_path / "hnsw") as b:
        q = "a green cross grows"
        assert [h["path"] for h in a.search_text(e, q, 3)] == [h["path"] for h in b.search_text(e, q, 3)]


def test_zero_shot_scores_are_cosines_to_the_prompt_ensemble(video_text_dir, clips):
    e = Embedder(video_text_dir)
    labels = ["move left", "grow", "rotate"]
    scores = zero_shot(e, sorted(clips.iterdir()), labels, templates=("a video of {}", "{}"))
    for i, video in enumerate(sorted(clips.iterdir())):
        v = e.embed_video(video)
        for j, label in enumerate(labels):
            t = e.encode_text([f"a video of {label}", label]).mean(0)
            assert scores[i, j] == pytest.approx(float(v @ t / np.linalg.norm(t)), abs=1e-5)


# -- command line ---------------------------------------------------------------------------
def test_cli_index_search_zeroshot(video_text_dir, clips, tmp_path, capsys):
    idx = tmp_path / "index"
    code, out, _ = run(capsys, "index", clips, "--model", video_text_dir, "--out", idx, "--json")
    assert code == 0 and json.loads(out)["total_segments"] == 3
    code, out, _ = run(capsys, "search", idx, "a red circle moves left", "--top", 2, "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and len(hits) == 2 and {"score", "path", "start", "end"} <= set(hits[0])
    code, out, _ = run(capsys, "search", idx, "--video", clips / "b.mp4", "--top", 5, "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and sorted(os.path.basename(h["path"]) for h in hits) == ["a.mp4", "c.mp4"]  # every other video, never itself
    assert hits[0]["score"] >= hits[1]["score"]
    code, out, _ = run(capsys, "zeroshot", video_text_dir, clips / "a.mp4", "--labels", "grow,shrink", "--json")
    ranked = json.loads(out)[str(clips / "a.mp4")]
    expected = zero_shot(Embedder(video_text_dir), [clips / "a.mp4"], ["grow", "shrink"])[0]
    assert code == 0 and [r["label"] for r in ranked] == [["grow", "shrink"][i] for i in np.argsort(-expected)]
    assert [r["score"] for r in ranked] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "{idx}", "   "], "query is empty"),
        (["search", "{idx}"], "either a text QUERY or --video"),
        (["search", "{tmp}/nothing", "x"], "index not found"),
        (["search", "{idx}", "x", "--top", "0"], "--top must be >= 1"),
        (["index", "{tmp}/empty", "--model", "{model}", "--out", "{tmp}/i2"], "no videos found"),
        (["zeroshot", "{model}", "{clip}", "--labels", "a,b", "--template", "no placeholder"], "needs a {}"),
        (["pretrain", "{tmp}/empty", "--objective", "mvm", "--encoder", "r2plus1d-tiny", "--out", "{tmp}/r"], "no videos found"),
    ],
)
def test_cli_errors_are_one_line(video_text_dir, clips, tmp_path, capsys, argv, message):
    idx = tmp_path / "idx"
    update_index(idx, [clips / "a.mp4"], Embedder(video_text_dir))
    (tmp_path / "empty").mkdir()
    fill = {"idx": idx, "tmp": tmp_path, "model": video_text_dir, "clip": clips / "a.mp4"}
    code, _, err = run(capsys, *[a.format(**fill) for a in argv])
    assert code == 1 and message in err and "Traceback" not in err


def test_index_one_segment_per_shot(video_text_dir, tmp_path):
    from vidfm.io.writer import write_video

    frames = np.concatenate([np.full((12, 32, 48, 3), c, np.uint8) for c in ((200, 30, 30), (20, 40, 220), (30, 200, 40))])
    video = write_video(tmp_path / "three_shots.mp4", frames, fps=6)
    update_index(tmp_path / "i", [video], Embedder(video_text_dir), shots="histogram")
    with VideoIndex.open(tmp_path / "i") as ix:
        rows = ix.db.execute("SELECT start, end FROM segments ORDER BY id").fetchall()
    assert rows == [(0.0, 2.0), (2.0, 4.0), (4.0, pytest.approx(6.0))]


def test_an_index_moved_with_its_model_works_from_any_directory(video_text_dir, clips, tmp_path, capsys, monkeypatch):
    home = tmp_path / "project"
    shutil.copytree(video_text_dir, home / "model")
    monkeypatch.chdir(home)
    assert run(capsys, "index", clips, "--model", "model", "--out", "idx")[0] == 0  # relative paths, as a user types them
    shutil.move(str(home), str(tmp_path / "moved"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "search", tmp_path / "moved" / "idx", "a red circle", "--json")
    assert code == 0, err
    assert len(json.loads(out)["hits"]) == 3


def test_a_file_given_as_the_index_is_a_clear_error(clips, capsys):
    code, _, err = run(capsys, "search", clips / "a.mp4", "x")
    assert code == 1 and "a.mp4: is a file, not an index folder" in err and "Traceback" not in err


def test_evaluation_drops_unreadable_videos_instead_of_counting_another_twice(video_text_dir, clips, tmp_path):
    from vidfm.tasks.retrieval import evaluate_retrieval

    (clips / "broken.mp4").write_text("not a video")
    records = [{"path": str(clips / n), "captions": [f"caption {n}"]} for n in ("a.mp4", "broken.mp4", "c.mp4")]
    metrics = evaluate_retrieval(Embedder(video_text_dir), records)
    assert metrics["videos"] == 2 and metrics["skipped"] == [str(clips / "broken.mp4")]
