import numpy as np
import pytest
import torch
from conftest import coded_clip
from PIL import Image

from vidfm.data.synthetic import read_frame_code
from vidfm.errors import ConfigError
from vidfm.io import VideoReader, contact_sheet, save_contact_sheet, write_video


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv"])
def test_video_round_trip(tmp_path, suffix):
    clip = coded_clip(16)
    path = write_video(tmp_path / f"out{suffix}", clip, fps=8)
    with VideoReader(path) as r:
        assert len(r) == 16 and r.fps == pytest.approx(8.0)
        back = r.get_frames(range(16))
    assert [read_frame_code(f) for f in back] == list(range(16))
    # fidelity on natural-looking (smooth) content: PSNR well above visible-artefact levels
    yy, xx = np.mgrid[0:64, 0:64]
    smooth = np.stack([np.stack([(xx * 3 + t * 4) % 256, yy * 3, (xx + yy + t * 8) % 256], -1) for t in range(8)]).astype(np.uint8)
    path = write_video(tmp_path / f"smooth{suffix}", smooth, fps=8)
    with VideoReader(path) as r:
        mse = ((r.get_frames(range(8)).astype(float) - smooth) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 28
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_float_tensor_clip_and_odd_size(tmp_path):
    clip = torch.rand(5, 3, 31, 45)  # (T, C, H, W) float in [0, 1]
    path = write_video(tmp_path / "odd.mp4", clip, fps=4)
    with VideoReader(path) as r:
        assert r[0].shape == (32, 46, 3)  # padded to even for yuv420p


def test_gif(tmp_path):
    path = write_video(tmp_path / "a.gif", coded_clip(6), fps=5)
    img = Image.open(path)
    assert img.n_frames == 6 and img.size == (64, 64)


def test_contact_sheet_layout(tmp_path):
    sheet = contact_sheet(coded_clip(6), columns=3, labels=list("abcdef"), title="t", pad=2)
    assert sheet.size == (3 * 66 + 2, 14 + 2 * (64 + 12 + 2) + 2)
    path = save_contact_sheet(tmp_path / "s.png", coded_clip(4))
    assert Image.open(path).size[0] > 64


@pytest.mark.parametrize(
    "path,clip,msg",
    [
        ("a.avi2", coded_clip(2), "unsupported output format"),
        ("a.mp4", np.zeros((2, 8, 8, 2)), "RGB frame"),
        ("a.mp4", np.zeros((0, 8, 8, 3), np.uint8), "at least one"),
        ("a.mp4", np.zeros((8, 8)), "4 dimensions"),
    ],
)
def test_writer_errors(tmp_path, path, clip, msg):
    with pytest.raises(ConfigError, match=msg):
        write_video(tmp_path / path, clip)
