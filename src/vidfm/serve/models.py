"""The models a server holds: each loaded once at start from its folder, timed, and used
by one request at a time (2 CPU cores gain nothing from running one model twice at once)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from vidfm.errors import ConfigError
from vidfm.serve.config import MODEL_KINDS

HOW_TO_ADD = {
    "classifier": "--classifier RUN (a 'vidfm train classify' run)",
    "video_text": "--video-text RUN (a 'vidfm pretrain --objective contrastive' run)",
    "index": "--index FOLDER (made by 'vidfm index')",
    "grounding": "--grounding RUN (a 'vidfm train ground' run)",
    "videollm": "--videollm RUN (a 'vidfm train videollm' run)",
    "generator": "--generator RUN (a 'vidfm train denoiser' run)",
}


class NotConfigured(Exception):
    def __init__(self, kind: str):
        super().__init__(f"this server has no {kind.replace('_', '-')} model; start it with {HOW_TO_ADD[kind]} or set it under [models] in the config")


def _load(kind: str, folder: str):
    from vidfm.files import model_folder

    if kind == "classifier":
        from vidfm.tasks.classify import VideoClassifier

        return VideoClassifier.from_pretrained(model_folder(folder, "classifier.json")).eval()
    if kind == "video_text":
        from vidfm.retrieval.embedder import Embedder

        return Embedder(folder)
    if kind == "index":
        from vidfm.retrieval.embedder import Embedder
        from vidfm.retrieval.index import VideoIndex

        index = VideoIndex.open(folder)
        return index, Embedder(index.model_path())
    if kind == "grounding":
        from vidfm.tasks.ground import Grounder

        return Grounder(folder)
    if kind == "videollm":
        from vidfm.models.videollm import VideoLLM

        return VideoLLM.from_pretrained(folder).eval()
    from vidfm.pipelines import VideoGenerationPipeline

    return VideoGenerationPipeline.from_pretrained(folder)


class Models:
    def __init__(self, folders: dict[str, str]):
        self.folders = {k: v for k, v in folders.items() if v}
        self.loaded: dict[str, object] = {}
        self.load_seconds: dict[str, float] = {}
        self.locks = {k: threading.Lock() for k in (*MODEL_KINDS, "text")}  # "text": the index's text tower

    def load_all(self) -> None:
        for kind, folder in self.folders.items():
            if kind in self.loaded:
                continue
            start = time.perf_counter()
            try:
                self.loaded[kind] = _load(kind, folder)
            except ConfigError:
                raise
            except Exception as e:  # a folder that is not that kind of model
                raise ConfigError(f"{folder}: cannot load it as a {kind} model ({type(e).__name__}: {str(e)[:200]})") from None
            self.load_seconds[kind] = time.perf_counter() - start

    def get(self, kind: str):
        if kind not in self.loaded:
            raise NotConfigured(kind)
        return self.loaded[kind]

    def describe(self) -> dict:
        return {k: {"configured": k in self.loaded, "folder": Path(self.folders[k]).name if k in self.folders else None} for k in MODEL_KINDS}

    def close(self) -> None:
        if "index" in self.loaded:
            self.loaded["index"][0].close()
