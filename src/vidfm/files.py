"""Files and folders, written so that a crash never leaves a half-written one.

The lowest module of vidfm besides ``errors``: every writer (videos, annotations, model
folders, indexes, caches, checkpoints) publishes through ``atomic_file`` or
``atomic_save_dir``, and every command that takes "a model" resolves a training run folder
to the model inside it with ``model_folder``.

Temporary files are created with the permissions an ordinary ``open()`` would give
(``0666`` minus the umask): ``tempfile.mkstemp`` (and safetensors) make them ``0600``, and
renaming one into place would leave videos and weights readable by their owner only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """What ``open(path, "w")`` would create: 0666 minus the process umask."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_file(path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, the file is flushed
    to disk and renamed over ``path`` in one step (with the usual permissions). On an
    error the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=suffix if suffix is not None else path.suffix, dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path, text: str) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_save_dir(final, write: Callable[[Path], object]) -> Path:
    """Write a folder so that a crash at any moment leaves either the old or the new one:
    fill ``final.tmp``, move the old folder aside, rename, then delete the old."""
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return publish_dir(tmp, final)


def publish_dir(tmp, final) -> Path:
    """Swap a completely written folder ``tmp`` in as ``final``: flush its files, move the
    old ``final`` aside (``final.old`` survives a crash mid-swap), rename, delete the old."""
    tmp, final = Path(tmp), Path(final)
    old = final.with_name(final.name + ".old")
    mode = default_file_mode()
    for f in tmp.rglob("*"):  # make the bytes durable before the rename publishes them
        if f.is_file():
            os.chmod(f, mode)  # some writers (safetensors, tempfile) create files 0600
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def model_folder(path, marker: str = "config.json") -> Path:
    """A training run folder stands for the model in its ``best/``: return ``path/best``
    when ``path`` itself lacks ``marker`` but ``best`` has it (or exists), else ``path``."""
    path = Path(path)
    if not (path / marker).exists() and (path / "best").is_dir():
        return path / "best"
    return path


def file_signature(paths) -> str:
    """A short hash of each file's path, size and modification time, in order: what a
    cache of per-video features is keyed by, so a video changed in place (same name, new
    content) is never served stale features. Missing files count as such."""
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p).encode())
        try:
            st = os.stat(p)
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()[:16]


def stat_key(path) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file, or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def fingerprint_folder(folder) -> str:
    """sha256 over a model folder's config and weight files (names and bytes), recursively:
    an index or a cache made with one model can then refuse another. Provenance notes
    (``pretrain.json``, ``train_config.json``) are not the model and are left out."""
    folder = Path(folder)
    h = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors", ".bin"))
    for p in files:
        if p.name in ("pretrain.json", "train_config.json"):
            continue
        h.update(str(p.relative_to(folder)).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def cached(path, key, build: Callable[[], object]):
    """``build()``'s value through a cache file (``torch.save``), reused while ``key`` is the
    same; a damaged or foreign cache is rebuilt, and the new one appears atomically."""
    import torch

    path = Path(path)
    if path.exists():
        try:
            blob = torch.load(path, weights_only=False)
            if blob.get("key") == key:
                return blob["value"]
        except Exception:  # noqa: BLE001 - a damaged cache is only a cache
            pass
    value = build()
    with atomic_file(path) as tmp:
        torch.save({"key": key, "value": value}, tmp)
    return value
