import json
import subprocess
import sys

import pytest
from cli_helpers import run

from vidfm.cli.main import main


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


def test_files_are_written_with_the_usual_permissions(tmp_path, capsys):
    """Atomic writes rename temporary files into place; they must not stay 0600."""
    import os
    import stat

    from vidfm.models import build_encoder
    from vidfm.tasks.classify import VideoClassifier

    old = os.umask(0o022)
    try:
        assert run(capsys, "synth", tmp_path / "w", "--videos", 3)[0] == 0
        VideoClassifier(build_encoder("r2plus1d-tiny"), ["a", "b"]).save_pretrained(tmp_path / "model")
    finally:
        os.umask(old)
    files = [p for p in [*(tmp_path / "w").rglob("*"), *(tmp_path / "model").rglob("*")] if p.is_file()]
    modes = {oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert len(files) > 20 and modes == {"0o644"}


def test_synth_refuses_to_mix_worlds_and_replaces_one_with_overwrite(tmp_path, capsys):
    assert run(capsys, "synth", tmp_path / "w", "--videos", 4, "--seed", 1)[0] == 0
    code, _, err = run(capsys, "synth", tmp_path / "w", "--videos", 2, "--seed", 2)
    assert code == 1 and "already exists and is not empty" in err and "--overwrite" in err
    assert len(list((tmp_path / "w" / "videos").iterdir())) == 4  # untouched
    assert run(capsys, "synth", tmp_path / "w", "--videos", 2, "--seed", 2, "--overwrite")[0] == 0
    assert len(list((tmp_path / "w" / "videos").iterdir())) == 2  # no old videos left beside the new annotations
    assert json.loads((tmp_path / "w" / "world.json").read_text())["config"]["seed"] == 2


def test_several_files_report_each_bad_one_and_finish_the_good_ones(videos, capsys):
    good, bad, missing = videos["coded"], videos["text"], "nothere.mp4"
    code, out, err = run(capsys, "probe", good, bad, missing, good, "--json")
    listing = json.loads(out)
    assert code == 1 and [("error" in r) for r in listing] == [False, True, True, False]
    assert "notes.mp4: not a readable video container" in err and "nothere.mp4: file not found" in err and "Traceback" not in err
    code, out, err = run(capsys, "probe", good, missing)
    assert code == 1 and out.count("frames") == 1 and "nothere.mp4" in err


def test_output_into_a_closed_pipe_is_not_an_error(videos):
    """'vidfm probe ... | head -1': the reader goes away early."""
    proc = subprocess.Popen([sys.executable, "-m", "vidfm", "probe", *[str(videos["coded"])] * 30], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "classify", "--help"])
    blocks = {b.split()[0]: " ".join(b.split()) for b in capsys.readouterr().out.split("\n  -")[1:]}  # one per option
    for option, default in (("-epochs", "20"), ("-lr", "0.003"), ("-batch-size", "8"), ("-encoder", "r2plus1d-tiny"), ("-frames", "8"), ("-precise-bn", "16")):
        assert blocks[option].endswith(f"(default: {default})"), blocks[option]
