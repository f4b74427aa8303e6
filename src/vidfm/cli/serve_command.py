"""``vidfm serve``: the HTTP API and web page (FastAPI + uvicorn, one process)."""

from __future__ import annotations

import os

from vidfm.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API and the web page", description=(
        "Serve vidfm over HTTP: /v1 endpoints (probe, classify, zero-shot, search, shots, scenes, keyframes, ground, "
        "caption, ask, generate jobs), a web page at /, API docs at /docs, Prometheus metrics at /metrics, /healthz and "
        "/readyz. Models load once at start from the folders given here or in --config. API keys come from the "
        "VIDFM_API_KEYS environment variable (comma-separated) or --api-key-file; without keys the server only listens "
        "on 127.0.0.1."))  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (anything but loopback needs API keys)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--config", help="serve.toml: [models], [media] folder, [server] data_dir/workers, [limits] (see docs/serving.md)")
    p.add_argument("--api-key-file", help="a file of API keys, one per line (in addition to VIDFM_API_KEYS)")
    for kind, what in (("classifier", "a classification run"), ("video-text", "a video-text (contrastive) run: zero-shot, semantic scenes"),
                       ("index", "a search index made by 'vidfm index'"), ("grounding", "a temporal grounding run"),
                       ("videollm", "a Video-LLM run: caption and ask"), ("generator", "a text-to-video run: generate jobs")):  # fmt: skip
        p.add_argument(f"--{kind}", metavar="FOLDER", help=what)
    p.add_argument("--media", metavar="FOLDER", help="a folder of videos the page and API can pick by name")
    p.add_argument("--data-dir", help="where the job database, job outputs and upload scratch go (default: vidfm-serve)")
    p.add_argument("--workers", type=int, help="job worker threads (default 1)")
    p.add_argument("--max-upload-mb", type=float, help="largest request body in MB (default 200)")
    p.add_argument("--timeout", type=float, help="seconds before a synchronous request answers 504 (default 120)")
    p.add_argument("--rate-limit", type=float, help="requests a minute per key (default 600)")
    p.add_argument("--open", action="store_true", help="open the page in a browser once the server is up")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run_serve)


def config_from(args):
    from vidfm.serve.config import ServeConfig

    config = ServeConfig.load(args.config) if args.config else ServeConfig()
    for kind in ("classifier", "video_text", "index", "grounding", "videollm", "generator"):
        if getattr(args, kind):
            config.models[kind] = getattr(args, kind)
    config.media = args.media or config.media
    config.data_dir = args.data_dir or config.data_dir
    config.workers = args.workers or config.workers
    for flag, name in (("max_upload_mb", "max_upload_mb"), ("timeout", "request_timeout_s"), ("rate_limit", "rate_per_minute")):
        value = getattr(args, flag)
        if value is not None:
            if value <= 0:
                raise ConfigError(f"--{flag.replace('_', '-')} must be positive, got {value:g}")
            setattr(config.limits, name, value)
    config.check()
    return config


def run_serve(args) -> int:
    import logging
    import threading
    import webbrowser

    import uvicorn

    from vidfm.serve import create_app
    from vidfm.serve.config import check_bind, load_api_keys

    keys = load_api_keys(os.environ, args.api_key_file)
    check_bind(args.host, keys)
    config = config_from(args)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("vidfm").setLevel(args.log_level.upper())  # ours at the asked level; libraries' chatter only from warnings up
    app = create_app(config, keys)
    app.state.models.load_all()  # here, so a bad model folder is a one-line error, not a failed startup
    for kind, seconds in app.state.models.load_seconds.items():
        print(f"loaded {kind} model from {config.models[kind]} in {seconds:.1f} s", flush=True)
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/"
    print(f"serving on {url} (API docs {url}docs; {'API keys required' if keys else 'no API keys: loopback only'})", flush=True)
    if args.open:
        threading.Timer(1.5, webbrowser.open, (url,)).start()
    uvicorn.run(app, host=args.host, port=args.port, workers=1, access_log=False, log_level=args.log_level, timeout_graceful_shutdown=10)
    return 0
