"""``vidfm serve``: the API, its keys, limits, jobs, metrics and bad input, tested the way
clients hit it (in-process through the ASGI app, and a real server killed mid-job)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import schemathesis
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis.errors import Unsatisfiable

from vidfm.cli.main import main
from vidfm.errors import ConfigError
from vidfm.models import build_encoder
from vidfm.models.text import TextEncoder
from vidfm.models.videollm import VideoLLM, VideoLLMConfig
from vidfm.objectives import VideoTextModel
from vidfm.retrieval.embedder import Embedder
from vidfm.retrieval.index import update_index
from vidfm.serve import Limits, ServeConfig, create_app
from vidfm.serve.config import check_bind, load_api_keys
from vidfm.tasks.classify import VideoClassifier

KEY = "k" * 24
OTHER = "o" * 24


# -- models and files a server holds ------------------------------------------------------------
@pytest.fixture(scope="module")
def served(world, tmp_path_factory) -> dict:
    """Small (untrained or briefly trained) models of every kind, saved as runs save them."""
    d = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    VideoTextModel(build_encoder("r2plus1d-tiny", num_frames=4, image_size=32), TextEncoder("minilm"), embed_dim=32).save_pretrained(d / "vt")
    media = d / "media"
    media.mkdir()
    for v in sorted((world / "videos").glob("*.mp4"))[:6]:
        shutil.copy(v, media / v.name)
    update_index(d / "idx", sorted(media.glob("*.mp4")), Embedder(d / "vt"))
    VideoClassifier(build_encoder("r2plus1d-tiny", num_frames=4, image_size=32), ["grow", "shrink", "move_left"]).save_pretrained(d / "clf")
    VideoLLM(VideoLLMConfig(lm="tiny", encoder="tsm-tiny")).save_pretrained(d / "vllm")
    assert main(["train", "vae", str(world), "--out", str(d / "vae"), "--max-steps", "1", "--batch-size", "2", "--size", "16", "--frames", "5"]) == 0
    assert main(["train", "denoiser", str(world), "--vae", str(d / "vae"), "--out", str(d / "gen"), "--max-steps", "1", "--batch-size", "2", "--frames", "5"]) == 0
    return {"dir": d, "media": media, "models": {"video_text": str(d / "vt"), "index": str(d / "idx"), "classifier": str(d / "clf"),
                                                 "videollm": str(d / "vllm"), "generator": str(d / "gen")}}  # fmt: skip


def make_config(served, tmp_path, **limits) -> ServeConfig:
    return ServeConfig(models=dict(served["models"]), media=str(served["media"]), data_dir=str(tmp_path / "data"), limits=Limits(**limits))


@pytest.fixture(scope="module")
def client(served, tmp_path_factory):
    config = make_config(served, tmp_path_factory.mktemp("srv"), rate_per_minute=100000, burst=100000)
    with TestClient(create_app(config, [KEY]), headers={"X-API-Key": KEY}) as c:
        c.data_dir = Path(config.data_dir)
        yield c


def a_video(served) -> Path:
    return sorted(served["media"].glob("*.mp4"))[0]


def upload(path: Path, name: str | None = None):
    return {"file": (name or path.name, path.read_bytes(), "video/mp4")}


def assert_json_error(r, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body["detail"], (str, list)) and "Traceback" not in r.text
    for w in words:
        assert w in str(body["detail"]), body


# -- configuration and keys ---------------------------------------------------------------------------
def test_config_file_keys_and_bind_rules(tmp_path, capsys):
    cfg = tmp_path / "serve.toml"
    cfg.write_text('[models]\nclassifier = "runs/clf"\n[media]\nfolder = "videos"\n[limits]\nmax_upload_mb = 5\nrequest_timeout_s = 3\n')
    c = ServeConfig.load(cfg)
    assert c.models["classifier"] == str(tmp_path / "runs/clf") and c.media == str(tmp_path / "videos")
    assert c.limits.max_upload_mb == 5 and c.limits.request_timeout_s == 3
    for text, word in (('[limits]\nmax_upload_mb = -1\n', "positive"), ('[limitz]\n', "unknown section"), ('[models]\nfoo = "x"\n', "unknown model"),
                       ("[limits\n", "TOML")):  # fmt: skip
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=word):
            ServeConfig.load(cfg)
    assert load_api_keys({"VIDFM_API_KEYS": f" {KEY}, {OTHER} "}, None) == [KEY, OTHER]
    keyfile = tmp_path / "keys"
    keyfile.write_text(f"# ops\n{KEY}\n")
    assert load_api_keys({}, str(keyfile)) == [KEY]
    with pytest.raises(ConfigError, match="16 characters"):
        load_api_keys({"VIDFM_API_KEYS": "short"}, None)
    check_bind("127.0.0.1", [])
    check_bind("0.0.0.0", [KEY])
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0"):
        check_bind("0.0.0.0", [])
    assert main(["serve", "--host", "0.0.0.0"]) == 1
    assert "refusing to listen" in capsys.readouterr().err
    assert main(["serve", "--classifier", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_keys_are_required_compared_and_never_logged(served, tmp_path, caplog):
    caplog.set_level("INFO", logger="vidfm.serve")
    with TestClient(create_app(make_config(served, tmp_path), [KEY, OTHER])) as c:
        assert_json_error(c.get("/v1/models"), 401, "X-API-Key")
        assert_json_error(c.get("/v1/models", headers={"X-API-Key": "w" * 24}), 401, "not valid")
        assert_json_error(c.get(f"/v1/models?api_key={KEY}", headers={"X-API-Key": KEY}), 401, "never in the URL")
        assert_json_error(c.get("/metrics"), 401)
        assert c.get("/v1/models", headers={"X-API-Key": OTHER}).status_code == 200
        assert c.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
        for public in ("/healthz", "/readyz", "/", "/static/app.js", "/docs", "/openapi.json"):
            assert c.get(public).status_code == 200, public
    assert caplog.records and not any(KEY in r.getMessage() or OTHER in r.getMessage() for r in caplog.records)


def test_rate_limit_per_key(served, tmp_path):
    with TestClient(create_app(make_config(served, tmp_path, rate_per_minute=60, burst=3), [KEY, OTHER])) as c:
        codes = [c.get("/v1/models", headers={"X-API-Key": KEY}).status_code for _ in range(5)]
        assert codes[:3] == [200] * 3 and codes[3:] == [429, 429]
        r = c.get("/v1/models", headers={"X-API-Key": KEY})
        assert_json_error(r, 429, "rate limit")
        assert int(r.headers["Retry-After"]) >= 1
        assert c.get("/v1/models", headers={"X-API-Key": OTHER}).status_code == 200  # another key has its own bucket


# -- the endpoints ------------------------------------------------------------------------------------
def test_video_endpoints_on_uploads_and_media(client, served):
    v = a_video(served)
    probe = client.post("/v1/probe", files=upload(v)).json()
    assert probe["path"] == v.name and probe["frames"] > 0 and probe["width"] == 64
    assert client.post("/v1/probe", data={"video": v.name}).json()["frames"] == probe["frames"]
    shots = client.post("/v1/shots", files=upload(v), data={"method": "histogram"}).json()
    assert shots["shots"] and shots["shots"][0]["thumbnail"].startswith("data:image/jpeg;base64,")
    scenes = client.post("/v1/scenes", data={"video": v.name, "k": "2"}).json()
    assert len(scenes["scenes"]) == 2 and all(s["thumbnail"] for s in scenes["scenes"])
    semantic = client.post("/v1/keyframes", data={"video": v.name, "semantic": "true", "thumbs": "false"}).json()
    assert semantic["scenes"] and "thumbnail" not in semantic["scenes"][0]
    labels = client.post("/v1/classify", data={"video": v.name, "top": "2"}).json()["labels"]
    assert len(labels) == 2 and {x["label"] for x in labels} <= {"grow", "shrink", "move_left"}
    zs = client.post("/v1/zero-shot", data={"video": v.name, "labels": "grow, shrink ,spin"}).json()["labels"]
    assert sorted(x["label"] for x in zs) == ["grow", "shrink", "spin"]
    caption = client.post("/v1/caption", data={"video": v.name}).json()
    assert isinstance(caption["caption"], str) and caption["duration"] > 0
    answer = client.post("/v1/ask", data={"video": v.name, "question": "What color is the circle?"}).json()
    assert isinstance(answer["answer"], str)
    listing = client.get("/v1/media").json()["videos"]
    assert [x["name"] for x in listing] == sorted(p.name for p in served["media"].glob("*.mp4"))
    assert client.get(f"/v1/media/{v.name}").content == v.read_bytes()
    assert_json_error(client.get("/v1/media/..%2F..%2Fetc%2Fpasswd"), 404)
    assert_json_error(client.post("/v1/probe", data={"video": "../" + v.name}), 404, "not a video in the media folder")
    assert_json_error(client.post("/v1/ground", data={"video": v.name, "query": "when?"}), 404, "no grounding model", "--grounding")


def test_search_by_text_and_by_video_and_play_the_hit(client, served):
    hits = client.post("/v1/search", json={"query": "a red circle moves left", "top": 3}).json()["hits"]
    assert len(hits) == 3 and [h["rank"] for h in hits] == [1, 2, 3] and all("path" not in h for h in hits)  # no server paths
    video = client.get(hits[0]["url"])
    assert video.status_code == 200 and video.content == (served["media"] / hits[0]["video"]).read_bytes()
    v = a_video(served)
    by_video = client.post("/v1/search/video", files=upload(v), data={"top": "2"}).json()["hits"]
    assert len(by_video) == 2
    assert_json_error(client.post("/v1/search", json={"query": "   "}), 422, "pattern")
    assert_json_error(client.post("/v1/search", json={"top": 3}), 422)
    assert_json_error(client.get("/v1/segments/99999/video"), 404)


# -- bad input ---------------------------------------------------------------------------------------
def make_long_header_video(path: Path) -> Path:
    """Two tiny frames ten hours apart: a 10-hour video in 2 kB."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=1)
        s.width = s.height = 64
        s.pix_fmt, s.codec_context.time_base = "yuv420p", Fraction(1, 1)
        for pts in (0, 36000):
            f = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            f.pts, f.time_base = pts, Fraction(1, 1)
            c.mux(s.encode(f))
        c.mux(s.encode())
    return path


def make_8k_video(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=1, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = 7680, 4320, "yuv420p"
        c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((4320, 7680, 3), np.uint8), format="rgb24")))
        c.mux(s.encode())
    return path


def test_bad_uploads_get_a_json_error_and_leave_no_files(served, tmp_path):
    config = make_config(served, tmp_path, max_upload_mb=1, max_duration_s=600)
    v = a_video(served)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(v.read_bytes()[: v.stat().st_size // 3])
    big = np.random.default_rng(0).integers(0, 256, 2 * 1024 * 1024, dtype=np.uint8).tobytes()
    with TestClient(create_app(config, [KEY]), headers={"X-API-Key": KEY}) as c:
        assert_json_error(c.post("/v1/probe", files=upload(text)), 400, "notes.mp4")
        assert_json_error(c.post("/v1/probe", files=upload(truncated)), 400, "cut.mp4")
        assert_json_error(c.post("/v1/probe", files={"file": ("empty.mp4", b"", "video/mp4")}), 400, "empty")
        assert_json_error(c.post("/v1/probe", files={"file": ("big.mp4", big, "video/mp4")}), 413, "1 MB")

        def chunks():  # no Content-Length: the limit must hold while the body streams in
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        r = c.post("/v1/probe", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert_json_error(r, 413)
        assert_json_error(c.post("/v1/probe", files=upload(make_long_header_video(tmp_path / "long.mp4"))), 413, "36001 s long")
        assert_json_error(c.post("/v1/probe", files=upload(make_8k_video(tmp_path / "8k.mp4"))), 413, "7680x4320")
        evil = c.post("/v1/probe", files=upload(v, "../../../../tmp/evil\x00name.mp4"))
        assert evil.status_code == 200 and evil.json()["path"].startswith("evil") and "/" not in evil.json()["path"]
        assert not Path("/tmp/evil").exists()
        assert_json_error(c.post("/v1/probe"), 400, "send one video")
        assert_json_error(c.post("/v1/probe", files=upload(v), data={"video": v.name}), 400, "send one video")
        assert_json_error(c.post("/v1/search", content=b'{"query": ', headers={"Content-Type": "application/json"}), 400, "not valid JSON")
        assert_json_error(c.post("/v1/generate", json={"prompt": "x", "steps": 0}), 422)
        assert_json_error(c.get("/v1/jobs/does-not-exist"), 404)
        assert_json_error(c.post("/v1/jobs/" + "0" * 32 + "/cancel"), 404)
        assert list((Path(config.data_dir) / "uploads").iterdir()) == []  # every scratch file removed


def test_slow_requests_time_out(served, tmp_path):
    with TestClient(create_app(make_config(served, tmp_path, request_timeout_s=0.001), [KEY]), headers={"X-API-Key": KEY}) as c:
        assert_json_error(c.post("/v1/shots", data={"video": a_video(served).name}), 504, "longer than")


# -- jobs ---------------------------------------------------------------------------------------------
def wait_for(c, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = c.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']}")


def test_generation_is_a_job_with_progress_a_video_and_cancellation(client):
    r = client.post("/v1/generate", json={"prompt": "a red circle moves left", "steps": 4, "seed": 1})
    assert r.status_code == 202 and r.json()["status"] in ("queued", "running")
    job = wait_for(client, r.json()["id"])
    assert job["status"] == "done" and job["progress"] == 1.0 and job["attempts"] == 1
    mp4 = client.get(job["result"]["video"])
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    webm = client.get(job["result"]["webm"])
    assert webm.status_code == 200 and webm.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file
    with av.open(__import__("io").BytesIO(mp4.content)) as container:
        assert sum(1 for _ in container.decode(video=0)) == job["result"]["frames"]
    # many queued jobs, cancelled from several threads at once: each ends cancelled or done, none lost
    ids = [client.post("/v1/generate", json={"prompt": f"clip {i}", "steps": 50}).json()["id"] for i in range(6)]
    answers = []
    threads = [threading.Thread(target=lambda i=i: answers.append(client.post(f"/v1/jobs/{i}/cancel").status_code)) for i in ids for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 12
    final = [wait_for(client, i) for i in ids]
    assert all(j["status"] in ("cancelled", "done") for j in final) and sum(j["status"] == "cancelled" for j in final) >= 5
    listed = {j["id"] for j in client.get("/v1/jobs").json()["jobs"]}
    assert set(ids) <= listed


def test_a_full_queue_refuses_new_jobs(served, tmp_path):
    config = make_config(served, tmp_path, queue_size=2)
    app = create_app(config, [KEY])
    with TestClient(app, headers={"X-API-Key": KEY}) as c:
        app.state.state["workers"].stop()  # nothing takes jobs off the queue
        assert [c.post("/v1/generate", json={"prompt": "x"}).status_code for _ in range(3)] == [202, 202, 429]
        assert "vidfm_job_queue_depth 2.0" in c.get("/metrics").text


def test_metrics_count_requests_latency_errors_jobs_and_model_loads(client):
    client.get("/v1/models")
    client.get("/v1/jobs/nope")
    text = client.get("/metrics").text
    assert 'vidfm_requests_total{method="GET",route="/v1/models",status="200"}' in text
    assert 'vidfm_request_errors_total{route="/v1/jobs/{job_id}",status="404"}' in text
    assert 'vidfm_request_seconds_bucket{le="0.05",route="/v1/models"}' in text
    assert 'vidfm_model_load_seconds{model="generator"}' in text and "vidfm_job_queue_depth" in text
    assert 'vidfm_jobs_total{kind="generate",status="done"}' in text


def test_openapi_documents_errors_and_docs_are_local(client):
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, op in ops.items():
            assert {"400", "401", "413", "429"} <= set(op["responses"]), (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in op["responses"], (method, path)
    html = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200


# -- a real server, killed mid-job ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(served, data: Path, port: int, *extra: str) -> subprocess.Popen:
    m = served["models"]
    cmd = [sys.executable, "-m", "vidfm", "serve", "--port", str(port), "--data-dir", str(data), "--generator", m["generator"],
           "--index", m["index"], "--media", str(served["media"]), *extra]  # fmt: skip
    env = {**os.environ, "VIDFM_API_KEYS": KEY, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import httpx

    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("the server did not become ready")


@pytest.fixture(scope="module")
def live(served, tmp_path_factory):
    """A real server (uvicorn, keys required) with every model the tests have."""
    port = free_port()
    m = served["models"]
    proc = start_server(served, tmp_path_factory.mktemp("live"), port, "--classifier", m["classifier"], "--video-text", m["video_text"],
                        "--videollm", m["videollm"], "--rate-limit", "1000000")  # fmt: skip
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_api_conforms_to_its_openapi_spec(live, mode):
    """Every schemathesis check on generated valid and invalid requests to every operation;
    only an upload's 'any bytes are a valid file' is expected to be refused (not a video)."""
    from hypothesis import given
    from schemathesis import GenerationMode
    from schemathesis.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(f"{live}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy(GenerationMode(mode)))
        @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            excluded = [positive_data_acceptance] if case.media_type == "multipart/form-data" else []
            # the real key replaces the generated one, unless the invalid case is the key's absence (put back, it made the request valid)
            dropped = mode == "negative" and "X-API-Key" not in (case.headers or {})
            case.call_and_validate(headers={} if dropped else {"X-API-Key": KEY}, excluded_checks=excluded)

        try:
            check()
        except Unsatisfiable:  # nothing about this operation can be made invalid (e.g. no parameters)
            assert mode == "negative"


def test_the_page_in_a_real_browser(live, served, tmp_path):
    """Upload, analyze, search and watch the hits, caption and ask, generate and watch the
    clip, in Debian's Chromium, with the API key typed into the page."""
    from page_driver import CHROMIUM, drive

    if not Path(CHROMIUM).exists():
        if os.environ.get("VIDFM_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    video = a_video(served)
    seen = drive(live, video, tmp_path, key=KEY)
    assert video.name in seen["probe"] and "64×64" in seen["probe"]
    assert seen["shots"] >= 1 and seen["scenes"] >= 1 and "scenes" in seen["status"]
    assert seen["hits"] == 6 and all(w == 64 for w in seen["hit_videos"])  # the hits' clips decoded and play
    assert seen["caption"] and seen["answer"]
    assert seen["generated_width"] > 0 and "done" in seen["job_title"]
    assert not seen["error_shown"] and not seen["failed_requests"]
    for view in ("video", "search", "ask", "generate"):
        assert (tmp_path / f"serve_{view}.png").stat().st_size > 10_000


def test_sigkill_mid_job_loses_no_job(served, tmp_path):
    import httpx

    port = free_port()
    base, headers = f"http://127.0.0.1:{port}", {"X-API-Key": KEY}
    proc = start_server(served, tmp_path / "data", port)
    try:
        ids = [httpx.post(f"{base}/v1/generate", json={"prompt": f"clip {i}", "steps": 150}, headers=headers).json()["id"] for i in range(4)]
        end = time.monotonic() + 60
        while httpx.get(f"{base}/v1/jobs/{ids[0]}", headers=headers).json()["status"] != "running" and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = start_server(served, tmp_path / "data", port)
    try:
        final = {}
        end = time.monotonic() + 120
        while len(final) < len(ids) and time.monotonic() < end:
            for i in ids:
                job = httpx.get(f"{base}/v1/jobs/{i}", headers=headers).json()
                if job["status"] in ("done", "failed", "cancelled"):
                    final[i] = job
            time.sleep(0.2)
        assert len(final) == len(ids), "a job vanished or never finished after the restart"
        assert all(j["status"] == "done" for j in final.values()), [j["error"] for j in final.values()]
        assert final[ids[0]]["attempts"] == 2 and final[ids[0]]["note"] == "retried after a server restart"
    finally:
        proc.terminate()
        proc.wait(10)
    assert list((tmp_path / "data" / "uploads").iterdir()) == []


def test_a_job_out_of_attempts_is_reported_failed(served, tmp_path):
    from vidfm.serve.jobs import JobStore

    store = JobStore(tmp_path / "data" / "jobs.sqlite")
    job = store.submit("generate", {"prompt": "x", "steps": 2, "guidance": 4.0, "seed": 0}, "test", 10)
    store.claim()  # a worker takes it, and the server dies
    assert store.recover(attempts=2) == {"requeued": 1, "failed": 0}
    store.claim()  # and dies again
    assert store.recover(attempts=2) == {"requeued": 0, "failed": 1}
    row = store.get(job["id"])
    assert row["status"] == "failed" and "server restart" in row["error"]
    store.db.close()
    with TestClient(create_app(make_config(served, tmp_path), [KEY]), headers={"X-API-Key": KEY}) as c:
        assert c.get(f"/v1/jobs/{job['id']}").json()["status"] == "failed"
