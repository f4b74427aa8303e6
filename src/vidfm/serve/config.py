"""What a server is started with: model folders, a media folder, limits. One TOML file
(``vidfm serve --config serve.toml``) whose values command-line flags may override."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from vidfm.errors import ConfigError

MODEL_KINDS = ("classifier", "video_text", "index", "grounding", "videollm", "generator")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Limits:
    """Everything a client can make the server spend, bounded."""

    max_upload_mb: float = 200.0  # whole request body, enforced while it streams in
    max_duration_s: float = 3600.0  # from the probed header, not the file name
    max_width: int = 3840
    max_height: int = 2160
    max_frames: int = 250_000
    request_timeout_s: float = 120.0  # a synchronous endpoint answers 504 after this
    rate_per_minute: float = 600.0  # per API key (per client address without keys)
    burst: int = 60
    queue_size: int = 64  # queued + running jobs; more are refused with 429
    job_attempts: int = 2  # a job interrupted by a crash is retried this many times in all


@dataclass
class ServeConfig:
    models: dict[str, str] = field(default_factory=dict)  # kind -> folder
    media: str | None = None  # a folder of videos the page can pick from
    data_dir: str = "vidfm-serve"  # the job database, job outputs, upload scratch space
    workers: int = 1  # job worker threads
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def load(cls, path) -> "ServeConfig":
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict, where: str = "config") -> "ServeConfig":
        known = {"models", "media", "server", "limits"}
        if unknown := set(raw) - known:
            raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)}; expected {sorted(known)}")
        models = dict(raw.get("models", {}))
        if bad := set(models) - set(MODEL_KINDS):
            raise ConfigError(f"{where}: unknown model kind(s) {sorted(bad)} under [models]; expected some of {list(MODEL_KINDS)}")
        base = Path(where).parent if where != "config" else Path(".")
        models = {k: str(base / v) for k, v in models.items()}  # relative to the config file
        media = raw.get("media", {}).get("folder")
        server = raw.get("server", {})
        if bad := set(server) - {"data_dir", "workers"}:
            raise ConfigError(f"{where}: unknown key(s) {sorted(bad)} under [server]")
        limits = Limits()
        names = {f.name for f in fields(Limits)}
        for k, v in raw.get("limits", {}).items():
            if k not in names:
                raise ConfigError(f"{where}: unknown limit {k!r}; expected one of {sorted(names)}")
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{where}: limit {k} must be a positive number, got {v!r}")
            setattr(limits, k, type(getattr(limits, k))(v))
        return cls(models=models, media=str(base / media) if media else None, data_dir=str(base / server.get("data_dir", "vidfm-serve")),
                   workers=int(server.get("workers", 1)), limits=limits)  # fmt: skip

    def check(self) -> None:
        for kind, folder in self.models.items():
            if not Path(folder).exists():
                raise ConfigError(f"{folder}: the {kind} model folder does not exist")
        if self.media and not Path(self.media).is_dir():
            raise ConfigError(f"{self.media}: the media folder does not exist")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")


def load_api_keys(environ: dict, key_file: str | None) -> list[str]:
    """Keys from ``VIDFM_API_KEYS`` (comma-separated) and/or a file (one per line, # comments)."""
    keys = [k.strip() for k in environ.get("VIDFM_API_KEYS", "").split(",") if k.strip()]
    if key_file:
        try:
            lines = Path(key_file).read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"{key_file}: cannot read the API key file ({e.strerror})") from None
        keys += [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        if not keys:
            raise ConfigError(f"{key_file}: the API key file holds no keys")
    if any(len(k) < 16 for k in keys):
        raise ConfigError("every API key must be at least 16 characters (make one with: python -c 'import secrets; print(secrets.token_urlsafe(24))')")
    return keys


def check_bind(host: str, keys: list[str]) -> None:
    """Without keys the API is open, so it may only listen on the loopback interface."""
    if not keys and host not in LOOPBACK:
        raise ConfigError(f"refusing to listen on {host} without API keys: set VIDFM_API_KEYS or --api-key-file, or serve on 127.0.0.1")
