import json
import subprocess
import sys

import pytest

from vidfm.cli.main import main


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_synth_then_probe_then_frames(tmp_path, capsys):
    code, out, _ = run(capsys, "synth", tmp_path / "w", "--videos", 12, "--seed", 1, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["videos"] == 12 and (tmp_path / "w" / "stats.png").exists()
    code, out, _ = run(capsys, "synth", tmp_path / "w2", "--videos", 5)
    assert code == 0 and "synthetic world" in out and "held-out" in out
    video = tmp_path / "w" / "videos" / "000000.mp4"
    code, out, _ = run(capsys, "probe", video, "--json")
    info = json.loads(out)
    assert code == 0 and info["width"] == 64 and info["fps"] == pytest.approx(8.0)
    code, out, _ = run(capsys, "probe", video, video)
    assert code == 0 and out.count("frames") == 2
    code, out, _ = run(capsys, "frames", video, "--sampler", "uniform", "--num", 6, "--out", tmp_path / "s.png", "--json")
    res = json.loads(out)
    assert code == 0 and len(res["indices"]) == 6 and (tmp_path / "s.png").exists()
    code, out, _ = run(capsys, "frames", video, "--sampler", "windows", "--window", 4, "--overlap", 2, "--out", tmp_path / "fr")
    assert code == 0 and len(list((tmp_path / "fr").glob("*.png"))) >= 4
    for sampler in ("random", "segments", "fps", "keyframes"):
        code, out, _ = run(capsys, "frames", video, "--sampler", sampler, "--json")
        assert code == 0 and json.loads(out)["indices"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["probe", "missing.mp4"], "missing.mp4: file not found"),
        (["frames", "missing.mp4"], "missing.mp4: file not found"),
        (["synth", "OUT", "--videos", "0"], "--videos must be >= 1"),
    ],
)
def test_user_mistakes_give_one_line_and_nonzero_exit(tmp_path, capsys, argv, message):
    argv = [a if a != "OUT" else str(tmp_path / "o") for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_video_file_exits_nonzero(videos, capsys):
    code, _, err = run(capsys, "probe", videos["text"])
    assert code == 1 and "not a readable video container" in err


@pytest.mark.parametrize("command", ["synth", "probe", "frames"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and "usage: vidfm" in capsys.readouterr().out


def test_console_script_installed():
    res = subprocess.run([sys.executable, "-m", "vidfm", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "synth" in res.stdout
