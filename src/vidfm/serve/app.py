"""The HTTP service: vidfm's capabilities under ``/v1`` (FastAPI), a web page, Prometheus
metrics and health checks. Quick answers run in a thread with a timeout; generation is a
job (see ``jobs``). Every error is a JSON ``{"detail": message}``; none shows a traceback."""


import asyncio
import base64
import contextlib
import functools
import io
import json
import logging
import os
import re
import shutil
import time
import traceback
import uuid
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi import Path as FastPath
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidfm import __version__
from vidfm.errors import VidfmError
from vidfm.serve.config import ServeConfig
from vidfm.serve.jobs import JobStore, JobWorkers, QueueFull
from vidfm.serve.metrics import ServiceMetrics
from vidfm.serve.models import Models, NotConfigured
from vidfm.serve.security import KeyChecker, RateLimiter, key_id

log = logging.getLogger("vidfm.serve")
STATIC = Path(__file__).parent / "static"
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif", ".mpg", ".mpeg", ".ts"}
KEY_IN_URL = {"api_key", "apikey", "api-key", "key", "x-api-key", "token", "access_token"}


class Error(BaseModel):
    detail: str = Field(description="what went wrong, in one line")


def _doc(text: str) -> dict:
    return {"model": Error, "description": text}


COMMON = {
    400: _doc("bad input: not a video, a truncated or corrupt one, a missing or contradictory field, malformed JSON"),
    401: _doc("no API key, a wrong one, or a key sent in the URL instead of the X-API-Key header"),
    404: _doc("no such job, media-folder video or index segment, or this server has no model for the endpoint"),
    413: _doc("the upload is larger than --max-upload-mb, or the video is longer, larger or has more frames than allowed"),
    429: _doc("too many requests for this key (see Retry-After), or the job queue is full"),
    504: _doc("the request took longer than the server's timeout"),
}


def declared_query(route) -> set[str]:
    """The query parameters a route (and its dependencies) declares."""
    names, stack = set(), [route.dependant]
    while stack:
        d = stack.pop()
        names |= {p.alias for p in d.query_params}
        stack += d.dependencies
    return names


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


# -- request bodies and answers ----------------------------------------------------------------
NOT_BLANK = r"[^\s\u0085]"  # one non-space character (NEL is space to Python and Rust, not to JSON Schema regexes)
# JSON Schema's integer includes 171.0; strict mode refuses true and "171" as numbers
WholeNumber = Annotated[int, BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)]


class SearchText(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true to the schema: no "true" for a number
    query: str = Field(min_length=1, max_length=1000, pattern=NOT_BLANK, description="a sentence describing the moment to find")
    top: WholeNumber = Field(5, ge=1, le=100)


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true to the schema: no "true" for a number
    prompt: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK, description="what the clip should show")
    steps: WholeNumber = Field(25, ge=1, le=200, description="sampling steps")
    guidance: float = Field(4.0, ge=0.0, le=30.0, description="classifier-free guidance scale")
    seed: WholeNumber = Field(0, ge=0, le=2**31 - 1)


class Job(BaseModel):
    id: str
    kind: str
    status: str = Field(description="queued, running, done, failed or cancelled")
    progress: float
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    note: str | None = None
    attempts: int
    created: float
    started: float | None = None
    finished: float | None = None


def _job_out(row: dict) -> dict:
    return {k: row[k] for k in Job.model_fields}


# -- the app -----------------------------------------------------------------------------------
def create_app(config: ServeConfig, keys: list[str] | None = None) -> FastAPI:
    """The service for ``config``; with ``keys``, every endpoint but health, metrics-free
    docs and the page's static files needs one in ``X-API-Key``."""
    limits = config.limits
    data = Path(config.data_dir)
    uploads = data / "uploads"
    checker = KeyChecker(keys or [])
    limiter = RateLimiter(limits.rate_per_minute, limits.burst)
    models = Models(config.models)
    metrics = ServiceMetrics()
    state: dict[str, Any] = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        shutil.rmtree(uploads, ignore_errors=True)  # scratch left by a killed server
        uploads.mkdir(parents=True, exist_ok=True)
        await run_in_threadpool(models.load_all)
        for kind, seconds in models.load_seconds.items():
            metrics.model_load.labels(kind).set(seconds)
        store = JobStore(data / "jobs.sqlite")
        recovered = store.recover(limits.job_attempts)
        if any(recovered.values()):
            log.warning("jobs interrupted by the last shutdown: %(requeued)d queued again, %(failed)d failed", recovered)
        workers = JobWorkers(store, {"generate": generate_job}, config.workers, on_finish=metrics.job_finished)
        metrics.queue_depth.set_function(store.depth)
        state.update(store=store, workers=workers, ready=True)
        workers.start()
        try:
            yield
        finally:
            state["ready"] = False
            workers.stop()
            models.close()

    app = FastAPI(
        title="vidfm",
        version=__version__,
        description="Video foundation models over HTTP: probe, classify, search, shots, scenes, keyframes, grounding, "
        "captions and questions (Video-LLM), and text-to-video generation as jobs. Send your key in the `X-API-Key` header.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        max_body_size=int(limits.max_upload_mb * 1024 * 1024),
    )
    app.state.metrics, app.state.models, app.state.state = metrics, models, state

    # -- errors: one JSON shape, no tracebacks ------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return JSONResponse({"detail": e.detail}, status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        detail = e.detail if isinstance(e.detail, str) else str(e.detail)
        if e.status_code == 413:
            detail = f"the request body is larger than this server's limit of {limits.max_upload_mb:g} MB (--max-upload-mb)"
        return JSONResponse({"detail": detail}, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        errors = e.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return JSONResponse({"detail": "the request body is not valid JSON"}, status_code=400)
        return JSONResponse({"detail": [{k: err[k] for k in ("type", "loc", "msg") if k in err} for err in errors]}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, e: Exception):
        ref = uuid.uuid4().hex[:8]
        log.error("internal error %s on %s %s:\n%s", ref, request.method, request.url.path, traceback.format_exc())
        return JSONResponse({"detail": f"internal error (reference {ref}); the server log has the details"}, status_code=500)

    # -- auth and rate limit ----------------------------------------------------------------
    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key the server was started with")

    def authorize(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> str:
        if KEY_IN_URL & {k.lower() for k in request.query_params}:
            raise ApiError(401, "API keys go in the X-API-Key header, never in the URL (URLs end up in logs and browser history)")
        route = request.scope.get("route")
        if route is not None and (unknown := set(request.query_params) - declared_query(route)):
            raise ApiError(400, f"unknown query parameter(s): {', '.join(sorted(unknown))[:200]}")
        if checker.enabled:
            if not key:
                raise ApiError(401, "this server needs an API key: send it in the X-API-Key header")
            if not checker.valid(key):
                raise ApiError(401, "the API key is not valid")
            client = key_id(key)
        else:
            client = request.client.host if request.client else "local"
        request.state.key_id = client
        wait = limiter.take(client)
        if wait:
            raise ApiError(429, f"rate limit: at most {limits.rate_per_minute:g} requests a minute (bursts of {limits.burst}); retry in {wait:.1f} s",
                           headers={"Retry-After": str(max(1, round(wait)))})  # fmt: skip
        return client

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize)], responses=COMMON)

    # -- running model work: in a thread, one at a time per model, with a deadline ---------------
    async def call(kind: str | None, fn, *args):
        def locked():
            if kind is None:
                return fn(*args)
            with models.locks[kind]:
                return fn(*args)

        try:
            return await asyncio.wait_for(run_in_threadpool(locked), limits.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"the request took longer than {limits.request_timeout_s:g} s; try a shorter video") from None

    def model(kind: str):
        try:
            return models.get(kind)
        except NotConfigured as e:
            raise ApiError(404, str(e)) from None  # 404, not 501: a missing model is not a server fault

    def media_files() -> dict[str, Path]:
        if not config.media:
            return {}
        return {p.name: p for p in sorted(Path(config.media).iterdir()) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES}

    def media_file(name: str) -> Path | None:
        """One media-folder video by its bare name (no listing per request; no ``../`` either)."""
        if not config.media or name != PurePath(name).name or name.startswith(".") or PurePath(name).suffix.lower() not in VIDEO_SUFFIXES:
            return None
        path = Path(config.media) / name
        return path if path.is_file() else None

    def check_limits(path: Path) -> None:
        from vidfm.io.probe import probe

        info = probe(path, count_frames=False)
        problems = []
        if info.duration > limits.max_duration_s:
            problems.append(f"{info.duration:.0f} s long (the limit is {limits.max_duration_s:g} s)")
        if info.width > limits.max_width or info.height > limits.max_height:
            problems.append(f"{info.width}x{info.height} (the limit is {limits.max_width}x{limits.max_height})")
        if info.frames > limits.max_frames:
            problems.append(f"{info.frames} frames (the limit is {limits.max_frames})")
        if problems:
            raise ApiError(413, f"the video is {' and '.join(problems)}")

    @contextlib.asynccontextmanager
    async def video_input(file: UploadFile | None, video: str | None):
        """A local path for the request's video: the upload streamed to a scratch file of
        our own naming (removed afterwards, whatever happens) or a media-folder file."""
        if (file is None) == (not video):
            raise ApiError(400, "send one video: an upload in the multipart field 'file', or 'video' naming a file of the media folder")
        if video:
            path = media_file(video)
            if path is None:
                raise ApiError(404 if config.media else 400, f"{video!r} is not a video in the media folder" if config.media else "this server has no media folder; upload the video as 'file'")
            name, scratch = video, None
        else:
            name = re.sub(r"[^\w.\- ]", "_", PurePath((file.filename or "upload").replace("\\", "/")).name)[:120] or "upload"
            suffix = PurePath(name).suffix.lower()
            scratch = uploads / f"{uuid.uuid4().hex}{suffix if suffix in VIDEO_SUFFIXES else '.mp4'}"
            path = scratch
        try:
            if scratch is not None:
                with open(scratch, "wb") as out:
                    while chunk := await file.read(1 << 20):
                        out.write(chunk)
                if scratch.stat().st_size == 0:
                    raise ApiError(400, f"{name}: the upload is empty")
                await call(None, check_limits, scratch)
            yield path, name
        except VidfmError as e:
            raise ApiError(400, str(e).replace(str(path), name)) from None
        finally:
            if scratch is not None:
                scratch.unlink(missing_ok=True)

    FileField = Annotated[UploadFile | None, File(description="the video file (any container FFmpeg reads)")]
    VideoField = Annotated[str | None, Form(description="instead of an upload: the name of a video in the server's media folder")]

    def thumbnails(path: Path, frames: list[int], width: int = 160) -> list[str]:
        """Small JPEG data URIs, so the page shows frames of an upload that is already gone."""
        from PIL import Image

        from vidfm.io.reader import VideoReader

        with VideoReader(path) as r:
            images = r.get_frames([min(max(0, int(f)), len(r) - 1) for f in frames])
        out = []
        for img in images:
            im = Image.fromarray(img)
            im = im.resize((width, max(1, round(im.height * width / im.width))))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
            out.append("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())
        return out

    # -- the endpoints ------------------------------------------------------------------------
    @v1.get("/models", summary="Which models this server holds")
    def list_models() -> dict:
        return {"models": models.describe(), "media": bool(config.media), "version": __version__}

    @v1.get("/media", summary="Videos in the server's media folder")
    def list_media() -> dict:
        return {"videos": [{"name": n, "bytes": p.stat().st_size} for n, p in media_files().items()]}

    @v1.get("/media/{name}", summary="One video of the media folder", responses={200: {"content": {"video/mp4": {}}}})
    def get_media(name: str):
        path = media_file(name)
        if path is None:
            raise ApiError(404, f"{name!r} is not a video in the media folder")
        return FileResponse(path)

    @v1.post("/probe", summary="Container and stream facts of a video")
    async def probe_video(file: FileField = None, video: VideoField = None) -> dict:
        from vidfm.io.probe import probe

        async with video_input(file, video) as (path, name):
            info = (await call(None, probe, path)).to_dict()
        return {**info, "path": name}

    @v1.post("/classify", summary="Top classes of a video (the configured classifier)")
    async def classify(file: FileField = None, video: VideoField = None, top: Annotated[int, Form(ge=1, le=100)] = 5) -> dict:
        from vidfm.tasks.classify import predict

        clf = model("classifier")
        async with video_input(file, video) as (path, name):
            rows = await call("classifier", predict, clf, path, top)
        return {"video": name, "labels": [{"label": lab, "probability": p} for lab, p in rows]}

    @v1.post("/zero-shot", summary="Score a video against free-text labels (video-text model)")
    async def zero_shot(labels: Annotated[str, Form(min_length=1, max_length=5000, pattern=r"[^,\s]", description="comma-separated labels, e.g. 'grow,shrink,move left'")],
                        file: FileField = None, video: VideoField = None, top: Annotated[int, Form(ge=1, le=100)] = 5) -> dict:  # fmt: skip
        from vidfm.tasks.retrieval import TEMPLATES, zero_shot_classifier

        names = [x.strip() for x in labels.split(",") if x.strip()]
        embedder = model("video_text")

        def score(path):
            row = embedder.embed_video(path) @ zero_shot_classifier(embedder, names, TEMPLATES).T
            return [{"label": names[i], "score": float(row[i])} for i in row.argsort()[::-1][:top]]

        async with video_input(file, video) as (path, name):
            return {"video": name, "labels": await call("video_text", score, path)}

    @functools.lru_cache(maxsize=4096)
    def query_vector(text: str):
        """Popular queries repeat: their embeddings are kept (the text tower is most of a search's time)."""
        index, embedder = models.get("index")
        index.check_model(embedder)
        return embedder.encode_text([text])


    def hit_out(h: dict) -> dict:
        return {**{k: v for k, v in h.items() if k != "path"}, "video": Path(h["path"]).name, "url": f"/v1/segments/{h['id']}/video"}  # no server paths

    @v1.post("/search", summary="Find the moments of the index that a sentence describes")
    async def search_text(body: SearchText) -> dict:
        index, embedder = model("index")
        vector = await call("text", query_vector, body.query)  # the text tower apart: a slow miss does not hold the index
        hits = await call("index", lambda: index.search_vectors(vector, body.top)[0])
        return {"query": body.query, "hits": [hit_out(h) for h in hits]}

    @v1.post("/search/video", summary="Find the moments of the index most like a video")
    async def search_video(file: FileField = None, video: VideoField = None, top: Annotated[int, Form(ge=1, le=100)] = 5) -> dict:
        index, embedder = model("index")
        async with video_input(file, video) as (path, name):
            hits = await call("index", index.search_video, embedder, path, top, False)
        return {"query": name, "hits": [hit_out(h) for h in hits]}

    @v1.get("/segments/{segment_id}/video", summary="The video file an index hit lies in", responses={200: {"content": {"video/mp4": {}}}})
    def segment_video(segment_id: Annotated[str, FastPath(pattern=r"^[0-9]{1,12}$", description="a hit's id")]):
        index, _ = model("index")
        with models.locks["index"]:
            row = index.db.execute("SELECT path FROM segments WHERE id = ?", (int(segment_id),)).fetchone()
        if row is None or not Path(row[0]).is_file():
            raise ApiError(404, f"no indexed video for segment {segment_id}")
        return FileResponse(row[0], media_type="video/mp4")

    @v1.post("/shots", summary="Shot boundaries, as a timeline with a thumbnail per shot")
    async def shots(file: FileField = None, video: VideoField = None,
                    method: Annotated[str, Form(pattern="^(student|transnetv2|histogram|content|adaptive)$")] = "student",
                    thumbs: Annotated[bool, Form(description="add a JPEG thumbnail of each shot's middle frame")] = True) -> dict:  # fmt: skip
        from vidfm.shots import detect_shots

        def work(path):
            result = detect_shots(path, method).as_dict()
            if thumbs and result["shots"]:
                middles = [(s["start_frame"] + s["end_frame"]) // 2 for s in result["shots"]]
                for s, t in zip(result["shots"], thumbnails(path, middles)):
                    s["thumbnail"] = t
            return result

        async with video_input(file, video) as (path, name):
            result = await call(None, work, path)
        return {**result, "path": name, "method": method}

    def scenes_of(path, k, semantic, thumbs):
        from vidfm.shots.scenes import detect_scenes

        embedder = models.get("video_text") if semantic else None
        result = detect_scenes(path, k=None if k is None else k - 1, embedder=embedder).as_dict()
        if thumbs and result["scenes"]:
            for s, t in zip(result["scenes"], thumbnails(path, [s["keyframe_frame"] for s in result["scenes"]])):
                s["thumbnail"] = t
        return result

    for route, what in (("/scenes", "Semantic scenes (SceneTilling), each with its keyframe"), ("/keyframes", "Keyframes: one per scene, or the k most representative")):

        async def run_scenes(file: FileField = None, video: VideoField = None, k: Annotated[int | None, Form(ge=1, le=200, description="exactly this many")] = None,
                             semantic: Annotated[bool, Form(description="use the video-text model's features instead of colour histograms")] = False,
                             thumbs: Annotated[bool, Form()] = True) -> dict:  # fmt: skip
            if semantic:
                model("video_text")
            async with video_input(file, video) as (path, name):
                result = await call("video_text" if semantic else None, scenes_of, path, k, semantic, thumbs)
            return {**result, "path": name}

        v1.add_api_route(route, run_scenes, methods=["POST"], summary=what, name=route.strip("/"))

    @v1.post("/ground", summary="When does it happen? Moments matching a sentence")
    async def ground(query: Annotated[str, Form(min_length=1, max_length=500, pattern=NOT_BLANK)], file: FileField = None, video: VideoField = None) -> dict:
        grounder = model("grounding")
        async with video_input(file, video) as (path, name):
            return {"video": name, "query": query, "moments": await call("grounding", grounder.ground, path, query)}

    def assistant_answers(path, questions):
        from vidfm.tasks.videollm import VideoAssistant

        return VideoAssistant(models.get("videollm"), path).ask(questions)

    @v1.post("/caption", summary="Describe a video (Video-LLM)")
    async def caption(file: FileField = None, video: VideoField = None) -> dict:
        from vidfm.tasks.videollm import DESCRIBE

        model("videollm")
        async with video_input(file, video) as (path, name):
            result = await call("videollm", assistant_answers, path, [DESCRIBE])
        return {"video": name, "caption": result["answers"][0]["answer"], "duration": result["duration"], "frame_times": result["frame_times"]}

    @v1.post("/ask", summary="Answer a question about a video (Video-LLM)")
    async def ask(question: Annotated[str, Form(min_length=1, max_length=1000, pattern=NOT_BLANK)], file: FileField = None, video: VideoField = None) -> dict:
        model("videollm")
        async with video_input(file, video) as (path, name):
            result = await call("videollm", assistant_answers, path, [question])
        return {"video": name, "question": question, "answer": result["answers"][0]["answer"], "duration": result["duration"]}

    # -- jobs -------------------------------------------------------------------------------
    def generate_job(job: dict, report) -> dict:
        import torch

        from vidfm.io.writer import write_video

        p = job["params"]
        pipe = models.get("generator")
        steps = p["steps"]
        with models.locks["generator"]:
            frames = pipe(p["prompt"], num_inference_steps=steps, guidance_scale=p["guidance"], generator=torch.Generator().manual_seed(p["seed"]),
                          callback_on_step_end=lambda _pipe, i, _t, _x: report(0.95 * (i + 1) / steps)).frames[0]  # fmt: skip
        out = data / "jobs" / job["id"]
        out.mkdir(parents=True, exist_ok=True)
        fps = float(pipe.config.fps)  # the rate the model was trained at
        for name in ("video.mp4", "video.webm"):  # MP4 to download, WebM for any browser; each written whole, then renamed
            tmp = out / f"tmp-{name}"
            write_video(tmp, frames, fps)
            os.replace(tmp, out / name)
        report(1.0)
        return {"video": f"/v1/jobs/{job['id']}/video", "webm": f"/v1/jobs/{job['id']}/video?format=webm", "frames": int(frames.shape[0]),
                "width": int(frames.shape[2]), "height": int(frames.shape[1]), "fps": fps}  # fmt: skip

    def job_or_404(job_id: str) -> dict:
        row = state["store"].get(job_id) if re.fullmatch(r"[0-9a-f]{32}", job_id) else None
        if row is None:
            raise ApiError(404, f"no job {job_id!r}")
        return row

    @v1.post("/generate", status_code=202, summary="Start a text-to-video job")
    def generate(body: GenerateRequest, request: Request) -> Job:
        model("generator")
        try:
            row = state["store"].submit("generate", body.model_dump(), request.state.key_id, limits.queue_size)
        except QueueFull as e:
            raise ApiError(429, str(e), headers={"Retry-After": "10"}) from None
        state["workers"].wake.set()
        return _job_out(row)

    @v1.get("/jobs", summary="Recent jobs, newest first")
    def list_jobs(limit: int = 50) -> dict:
        return {"jobs": [_job_out(r) for r in state["store"].list(max(1, min(limit, 500)))]}

    @v1.get("/jobs/{job_id}", summary="A job's status, progress and result")
    def get_job(job_id: str) -> Job:
        return _job_out(job_or_404(job_id))

    @v1.post("/jobs/{job_id}/cancel", summary="Cancel a job (a running one stops at its next step)")
    def cancel_job(job_id: str) -> Job:
        job_or_404(job_id)
        return _job_out(state["store"].cancel(job_id))

    @v1.get("/jobs/{job_id}/video", summary="The video a finished generation job made", responses={200: {"content": {"video/mp4": {}, "video/webm": {}}}})
    def job_video(job_id: str, format: str = "mp4"):
        row = job_or_404(job_id)
        if format not in ("mp4", "webm"):
            raise ApiError(400, "format: mp4 or webm")
        path = data / "jobs" / row["id"] / f"video.{format}"
        if row["status"] != "done" or not path.is_file():
            raise ApiError(404, f"job {job_id} has no video ({row['status']})")
        return FileResponse(path, media_type=f"video/{format}")

    app.include_router(v1)

    # -- monitoring -------------------------------------------------------------------------
    @app.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(authorize)], responses={401: COMMON[401], 429: COMMON[429], 200: {"content": {"text/plain": {}}}})
    def prometheus():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/healthz", summary="The process is up", tags=["health"])
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="Models loaded, job workers running, job database usable", tags=["health"], responses={503: _doc("not ready yet")})
    def readyz():
        ok = state["ready"] and state["workers"].alive()
        if ok:
            try:
                state["store"].depth()
            except Exception:
                ok = False
        body = {"status": "ready" if ok else "not ready", "models": sorted(models.loaded)}
        return JSONResponse(body, status_code=200 if ok else 503)

    # -- the page and offline API docs ---------------------------------------------------------
    import swagger_ui_bundle

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="vidfm API", swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css", swagger_favicon_url="/static/swagger/favicon-32x32.png")  # fmt: skip

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    too_large = f"the request body is larger than this server's limit of {limits.max_upload_mb:g} MB (--max-upload-mb)"
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: Observed(build(), metrics, too_large)  # outermost: sees every answer, the body limit's too
    return app


class Observed:
    """Access log and metrics for every request (never the key, never the query string),
    and the body limit's plain-text 413 turned into the API's JSON error."""

    def __init__(self, app, metrics: ServiceMetrics, too_large: str):
        self.app, self.metrics, self.too_large = app, metrics, too_large

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status, swallow = time.perf_counter(), 500, False

        async def send_observed(message):
            nonlocal status, swallow
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                if status == 413 and headers.get(b"content-type", b"").startswith(b"text/plain"):
                    body = json.dumps({"detail": self.too_large}).encode()
                    await send({"type": "http.response.start", "status": 413,
                                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
                    await send({"type": "http.response.body", "body": body})
                    swallow = True
                    return
            if not swallow:
                await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request(scope["method"], route, status, seconds)
            key = (scope.get("state") or {}).get("key_id", "-")
            log.info("%s %s %d %.1f ms key=%s", scope["method"], scope["path"], status, seconds * 1000, key)
