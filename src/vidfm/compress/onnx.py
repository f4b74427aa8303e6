"""ONNX export and ONNX Runtime inference.

Export goes through ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript) with a
dynamic batch axis; the weights go to ``NAME.onnx.data`` beside ``NAME.onnx``: the pair is
one model (copy both). vidfm writes what a loader needs into the model's metadata
(``vidfm_kind``, class names, frames, size), so ``vidfm eval``/``predict`` open a ``.onnx``
file like a classifier folder.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from vidfm.errors import ConfigError


def _need(package: str):
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ConfigError(f"ONNX export and runtime need {package!r} (pip install onnx onnxscript onnxruntime)") from None


def export_onnx(model: nn.Module, example: tuple[torch.Tensor, ...], path, *, input_names: list[str], output_names: list[str],
                dynamic: dict[str, dict[int, str]] | None = None, metadata: dict | None = None, name: str = "model") -> Path:  # fmt: skip
    """Export ``model(*example)`` to ``path`` (+ ``path.data``), written atomically.
    ``dynamic``: per input, the axes that may vary (default: axis 0 of every input is the
    batch; ``{}`` for fixed shapes). Unsupported operators fail with a one-line ``ConfigError`` naming ``name``."""
    _need("onnx")
    _need("onnxscript")
    path = Path(path)
    if path.suffix != ".onnx":
        raise ConfigError(f"{path}: an ONNX model file must end in .onnx")
    dynamic = dynamic if dynamic is not None else {n: {0: "batch"} for n in input_names}
    shapes = tuple({axis: torch.export.Dim.AUTO for axis in dynamic.get(n, {})} or None for n in input_names)
    import logging

    # the exporter logs a warning per torchvision operator it cannot register: not ours to show
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    model = copy.deepcopy(model).eval()  # tracing fills derived caches (position tables) with fake tensors
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
        tmp_path = Path(tmp) / path.name
        try:
            with torch.no_grad():
                program = torch.onnx.export(model, example, dynamo=True, dynamic_shapes=shapes, input_names=input_names,
                                            output_names=output_names, optimize=True, verbose=False)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - torch.export / onnxscript raise many kinds
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ConfigError(f"{name}: cannot be exported to ONNX ({first[:200]})") from None
        program.save(str(tmp_path), external_data=True)
        write_metadata(tmp_path, metadata or {})
        path.parent.mkdir(parents=True, exist_ok=True)
        for f in sorted(Path(tmp).iterdir(), key=lambda p: p.suffix == ".onnx"):  # the data file first, the model last
            shutil.move(str(f), path.parent / f.name)
    return path


def external_files(path) -> list[Path]:
    """The external-data files an ONNX model refers to."""
    onnx = _need("onnx")
    from onnx.external_data_helper import _get_all_tensors

    proto = onnx.load(str(path), load_external_data=False)
    names = set()
    for t in _get_all_tensors(proto):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            names |= {e.value for e in t.external_data if e.key == "location"}
    return [Path(path).parent / n for n in sorted(names)]


def check_onnx_file(path) -> Path:
    """A readable ONNX model whose external data is all there, or a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: ONNX model not found")
    try:
        missing = [f.name for f in external_files(path) if not f.is_file()]
    except Exception as e:  # noqa: BLE001 - protobuf decode errors
        raise ConfigError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    if missing:
        raise ConfigError(f"{path}: its weights file {missing[0]} is missing; an exported model is the .onnx file and its data file together")
    return path


def write_metadata(path, meta: dict) -> None:
    """Replace the model's metadata (values that are not strings are stored as JSON)."""
    onnx = _need("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.save(proto, str(path))


def metadata(path) -> dict:
    onnx = _need("onnx")
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def session(path, threads: int | None = None):
    """An ONNX Runtime CPU session for ``path`` (checked first)."""
    ort = _need("onnxruntime")
    check_onnx_file(path)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxClassifier:
    """A classifier exported by ``vidfm export``, run by ONNX Runtime; the same interface
    as ``VideoClassifier`` for evaluation and prediction (``classes``, ``num_frames``,
    ``image_size``, ``model(video) -> logits``)."""

    def __init__(self, path, threads: int | None = None):
        self.path = Path(path)
        self.session = session(path, threads)
        meta = metadata(path)
        if meta.get("vidfm_kind") != "classifier":
            raise ConfigError(f"{path}: not a vidfm classifier export (kind {meta.get('vidfm_kind')!r})")
        self.classes = json.loads(meta["classes"])
        self.num_frames, self.image_size = int(meta["num_frames"]), int(meta["image_size"])

    def eval(self):
        return self

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {"video": video.detach().cpu().float().numpy()})
        return torch.from_numpy(logits)


def export_classifier(model, path, batch: int = 2) -> Path:
    example = torch.rand(batch, model.num_frames, 3, model.image_size, model.image_size)
    meta = {"vidfm_kind": "classifier", "classes": model.classes, "num_frames": str(model.num_frames), "image_size": str(model.image_size),
            "encoder": model.encoder.config.model_type}  # fmt: skip
    return export_onnx(model, (example,), path, input_names=["video"], output_names=["logits"], metadata=meta, name=f"classifier ({meta['encoder']})")


class _Pooled(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, video):
        return self.encoder(video).pooled


def export_encoder(encoder, path, batch: int = 2) -> Path:
    c = encoder.config
    example = torch.rand(batch, c.num_frames, 3, c.image_size, c.image_size)
    meta = {"vidfm_kind": "encoder", "num_frames": str(c.num_frames), "image_size": str(c.image_size), "encoder": c.model_type}
    return export_onnx(_Pooled(encoder), (example,), path, input_names=["video"], output_names=["pooled"], metadata=meta, name=f"encoder ({c.model_type})")


def export_shot_student(model, path) -> Path:
    frames = torch.randint(0, 256, (300, 27, 48, 3), dtype=torch.uint8)
    meta = {"vidfm_kind": "shot_student", "context": str(model.context)}
    return export_onnx(model, (frames,), path, input_names=["frames"], output_names=["logits"], dynamic={"frames": {0: "frames"}}, metadata=meta, name="shot student")


class _TransNetV2Outputs(nn.Module):
    """TransNetV2 with plain tensor outputs (single-frame and all-frames logits)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frames):
        one, extra = self.model(frames)
        return one, extra["many_hot"]


def export_transnetv2(model, path) -> Path:
    """TransNetV2 (``vidfm.shots.detect.load_transnetv2()``) for one 100-frame window, uint8 (1, 100, 27, 48, 3).
    The batch is fixed: the network's colour-histogram branch builds its scatter indices
    from the batch size, which the exporter bakes in (a batch of 2 failed in ONNX Runtime);
    one window per pass is also what runs fastest on a CPU."""
    windows = torch.randint(0, 256, (1, 100, 27, 48, 3), dtype=torch.uint8)
    return export_onnx(_TransNetV2Outputs(model), (windows,), path, input_names=["frames"], output_names=["single", "many"],
                       dynamic={}, metadata={"vidfm_kind": "transnetv2", "window": "100"}, name="TransNetV2")  # fmt: skip
