import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidfm.errors import ConfigError
from vidfm.io import samplers as S

frames = st.integers(1, 400)
counts = st.integers(1, 64)


def valid(idx, n):
    return idx.dtype == np.int64 and idx.ndim == 1 and (idx >= 0).all() and (idx < n).all()


@given(frames, counts)
def test_uniform_exact_count_sorted_in_range(n, k):
    idx = S.uniform_indices(n, k)
    assert len(idx) == k and valid(idx, n) and (np.diff(idx) >= 0).all()
    if k <= n:
        assert len(set(idx.tolist())) == k  # no repeats unless the video is too short


def test_uniform_centres_and_repeats():
    assert S.uniform_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert S.uniform_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]


@given(frames, counts, st.integers(1, 4), st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_random_clip_properties(n, k, stride, jitter, seed):
    idx = S.random_clip_indices(n, k, stride, jitter, rng=seed)
    assert len(idx) == k and valid(idx, n) and (np.diff(idx) >= 0).all()
    assert (S.random_clip_indices(n, k, stride, jitter, rng=seed) == idx).all()  # reproducible
    if (k - 1) * stride + 1 <= n:
        assert idx[-1] - idx[0] <= (k - 1) * stride + 2 * jitter


def test_random_clip_jitter_is_bounded():
    base = S.random_clip_indices(1000, 8, 10, jitter=0, rng=1)
    jittered = S.random_clip_indices(1000, 8, 10, jitter=3, rng=1)
    assert np.abs(np.sort(jittered) - base).max() <= 3
    assert not np.array_equal(base, jittered)


@given(frames, st.integers(1, 16), st.integers(1, 4), st.booleans(), st.integers(0, 999))
def test_segments_one_block_per_segment(n, k, m, train, seed):
    idx = S.segment_indices(n, k, m, train=train, rng=seed)
    assert len(idx) == k * m and valid(idx, n) and (np.diff(idx) >= 0).all()
    edges = np.linspace(0, n, k + 1)
    for j in range(k):  # the j-th block of m indices lies in segment j
        block = idx[j * m : (j + 1) * m]
        assert (block >= np.floor(edges[j]) - 0).all() and (block <= min(np.ceil(edges[j + 1]), n - 1)).all()


def test_segments_eval_is_centred_and_train_varies():
    assert S.segment_indices(80, 4).tolist() == [10, 30, 50, 70]
    a = S.segment_indices(80, 4, train=True, rng=1)
    b = S.segment_indices(80, 4, train=True, rng=2)
    assert not np.array_equal(a, b)


@given(st.integers(1, 600), st.sampled_from([24, 25, 30, 60]), st.sampled_from([1, 2, 5, 7.5]))
def test_fps_resampling_count_and_spacing(n, src, dst):
    idx = S.fps_indices(n, src, dst)
    assert valid(idx, n) and (np.diff(idx) >= 0).all()
    assert len(idx) == int(np.ceil(n / src * dst - 1e-9))
    np.testing.assert_allclose(idx, np.floor(np.arange(len(idx)) * src / dst + 1e-9).clip(max=n - 1))


def test_fps_30_to_5():
    assert S.fps_indices(30, 30, 5).tolist() == [0, 6, 12, 18, 24]
    assert len(S.fps_indices(3000, 30, 1, max_frames=16)) == 16


@given(frames, st.integers(1, 64), st.integers(0, 63))
def test_windows_cover_every_frame(n, w, overlap):
    if overlap >= w:
        with pytest.raises(ConfigError):
            S.window_indices(n, w, overlap=overlap)
        return
    wins = S.window_indices(n, w, overlap=overlap)
    assert all(len(x) == w and valid(x, n) for x in wins)
    covered = set(np.concatenate(wins).tolist())
    assert covered == set(range(n))
    if n > w:
        starts = [int(x[0]) for x in wins]
        assert all(b - a <= w - overlap for a, b in zip(starts, starts[1:]))


@settings(max_examples=50)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=40), st.one_of(st.none(), st.integers(1, 20)))
def test_keyframes(keys, num):
    out = S.keyframe_sample(keys, num)
    assert set(out.tolist()) <= set(keys)
    assert len(out) == (len(set(keys)) if num is None else num)


@pytest.mark.parametrize(
    "call",
    [
        lambda: S.uniform_indices(0, 4),
        lambda: S.uniform_indices(10, 0),
        lambda: S.random_clip_indices(10, 4, jitter=-1),
        lambda: S.fps_indices(10, 0, 5),
        lambda: S.fps_indices(10, 30, 0),
        lambda: S.fps_indices(timestamps=[0.0, 0.2, 0.1]),
        lambda: S.keyframe_sample([]),
    ],
)
def test_bad_arguments(call):
    with pytest.raises(ConfigError):
        call()
