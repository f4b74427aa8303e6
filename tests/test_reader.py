import numpy as np
import pytest

from vidfm.data.synthetic import read_frame_code
from vidfm.errors import VideoDecodeError
from vidfm.io import VideoReader, probe, read_video
from vidfm.io.samplers import fps_indices


def codes(frames):
    return [read_frame_code(f) for f in frames]


def test_random_access_is_frame_exact_in_any_order(videos):
    wanted = [37, 3, 59, 0, 17, 17, 8, 7, -1, 44, 45, 46, 12]
    with VideoReader(videos["coded"]) as r:
        assert len(r) == 60
        frames = r.get_frames(wanted)
        assert frames.shape == (len(wanted), 64, 64, 3) and frames.dtype == np.uint8
        assert codes(frames) == [i % 60 for i in wanted]
        assert read_frame_code(r[25]) == 25


def test_every_frame_reads_back_exactly(videos):
    with VideoReader(videos["coded"]) as r:
        assert codes(r.get_frames(range(60))) == list(range(60))
        assert codes(r.get_frames(range(59, -1, -1))) == list(range(59, -1, -1))


def test_batch_decodes_each_group_of_pictures_once(videos, monkeypatch):
    with VideoReader(videos["coded"]) as r:
        _ = r.index
        seeks = []
        real_seek = r._seek_to_gop
        monkeypatch.setattr(r, "_seek_to_gop", lambda gop: (seeks.append(gop), real_seek(gop))[1])
        wanted = [1, 2, 3, 5, 9, 10, 11, 50, 51]  # groups of 8 frames: 0, 1, 6
        assert codes(r.get_frames(wanted)) == wanted
        assert seeks == [0, 1, 6]


def test_sequential_iteration_is_complete_and_lazy(videos):
    with VideoReader(videos["coded"]) as r:
        it = iter(r)
        assert read_frame_code(next(it)) == 0  # a generator: frames arrive one at a time
        assert codes(it) == list(range(1, 60))
        assert codes(r.iter_frames(10, 30, 7)) == [10, 17, 24]
        # random access still exact after a sequential pass
        assert codes(r.get_frames([5, 55])) == [5, 55]


def test_access_by_time(videos):
    with VideoReader(videos["coded"]) as r:
        assert r.fps == pytest.approx(8.0)
        assert read_frame_code(r.get_frame_at(2.0)) == 16
        assert read_frame_code(r.get_frame_at(2.1)) == 16
        assert read_frame_code(r.get_frame_at(0.0)) == 0
        assert r.duration == pytest.approx(7.5)


def test_variable_frame_rate_timestamps_and_fps_sampling(videos):
    times = np.array([0, 33, 66, 100, 300, 320, 340, 700, 710, 720, 1000]) / 1000
    with VideoReader(videos["vfr"]) as r:
        assert len(r) == 11
        np.testing.assert_allclose(r.timestamps, times, atol=1e-3)
        assert read_frame_code(r.get_frame_at(0.5)) == 6  # on screen from 0.34 s to 0.70 s
        idx = fps_indices(timestamps=r.timestamps, dst_fps=5)  # every 0.2 s
        assert idx.tolist() == [0, 3, 6, 6, 9, 10]
        assert codes(r.get_frames(idx)) == idx.tolist()
    info = probe(videos["vfr"])
    assert info.variable_frame_rate and info.frames == 11


@pytest.mark.parametrize("name,k", [("rot90", 1), ("rot180", 2), ("rot270", 3)])
def test_rotation_is_applied(videos, name, k):
    """A phone video stores unrotated pixels plus a display matrix; we return what a player shows."""
    raw = read_video(videos["coded"], [0])[0]  # reference orientation isn't needed: compare shapes+code
    with VideoReader(videos[name]) as r:
        frame = r[3]
        assert r.rotation == k * 90
    assert frame.shape == ((64, 48, 3) if k % 2 else (48, 64, 3))
    # undo the rotation and the burned code must read back
    assert read_frame_code(np.rot90(frame, -k)) == 3
    assert raw.shape == (64, 64, 3)
    info = probe(videos[name])
    assert (info.width, info.height, info.rotation) == ((48, 64, k * 90) if k % 2 else (64, 48, 180))


def test_resize_while_decoding_respects_rotation(videos):
    with VideoReader(videos["rot90"], size=(32, 24)) as r:
        assert r[0].shape == (32, 24, 3)
    with VideoReader(videos["coded"], size=(32, 48)) as r:
        assert r.get_frames([0, 1]).shape == (2, 32, 48, 3)


def test_context_manager_closes(videos):
    with VideoReader(videos["coded"]) as r:
        r[0]
    with pytest.raises(ValueError, match="closed"):
        r[1]


def test_out_of_range_index(videos):
    with VideoReader(videos["coded"]) as r, pytest.raises(IndexError, match="out of range"):
        r[60]


def test_webm_reads(videos):
    with VideoReader(videos["webm"]) as r:
        assert codes(r.get_frames([0, 7, 19])) == [0, 7, 19]


def test_probe_fields(videos):
    info = probe(videos["with_audio"])
    assert info.frames == 24 and info.fps == pytest.approx(8.0) and info.real_fps == pytest.approx(8.0)
    assert info.duration == pytest.approx(3.0) and (info.width, info.height) == (64, 64)
    assert info.codec == "h264" and info.has_audio and info.bit_rate > 0 and info.rotation == 0
    assert not info.variable_frame_rate
    assert not probe(videos["coded"]).has_audio
    assert probe(videos["coded"], count_frames=False).frames == 60


@pytest.mark.parametrize(
    "name,message",
    [
        ("empty", "file is empty"),
        ("text", "not a readable video container"),
        ("truncated", "not a readable video container"),
        ("faststart_truncated", "truncated: the header declares 50 frames"),
        ("audio_only", "has no video stream (only audio)"),
        ("zero_frames", "contains no video frames"),
    ],
)
def test_bad_files_raise_a_named_error(videos, name, message):
    with pytest.raises(VideoDecodeError) as e:
        with VideoReader(videos[name]) as r:
            r.get_frames([0])
    assert message in str(e.value) and str(videos[name]) in str(e.value)
    with pytest.raises(VideoDecodeError):
        probe(videos[name])


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(VideoDecodeError, match="file not found"):
        VideoReader(tmp_path / "nope.mp4")
    with pytest.raises(VideoDecodeError, match="is a directory"):
        VideoReader(tmp_path)


def test_damaged_payload_raises_instead_of_returning_garbage(videos):
    with pytest.raises(VideoDecodeError, match="damaged.mp4: decoding frame"):
        with VideoReader(videos["damaged"]) as r:
            r.get_frames(range(len(r)))
    with pytest.raises(VideoDecodeError, match="damaged.mp4"):
        with VideoReader(videos["damaged"]) as r:
            list(r)
