"""Compression and deployment: distillation, pruning, INT8, token merging, ONNX Runtime.

Every method takes a saved ``VideoClassifier`` (``vidfm train classify``'s output) and
writes something the rest of vidfm opens:

* ``distill``: a new classifier folder (a smaller student trained on the teacher's
  softened logits, the labels and optionally its pooled features);
* ``prune`` (structured) / ``sparse`` (magnitude) / ``tome``: a classifier folder whose
  ``classifier.json`` records the compression, so ``VideoClassifier.from_pretrained``
  rebuilds the pruned shapes or the token merging; pruning can be followed by a short
  distillation from the unpruned model to recover accuracy;
* ``int8-dynamic`` / ``int8-static``: an INT8 ONNX model for ONNX Runtime, which ``vidfm
  eval`` and ``vidfm predict`` open like a folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from vidfm.compress.distill import distillation_loss, kd_loss
from vidfm.errors import ConfigError

FOLDER_METHODS = ("distill", "prune", "sparse", "tome")
ONNX_METHODS = ("int8-dynamic", "int8-static")
METHODS = FOLDER_METHODS + ONNX_METHODS
WIDTH_FIELDS = ("widths", "stem_width", "hidden_size", "intermediate_size", "temporal_dim")


def scaled_encoder(config, scale: float):
    """A fresh encoder of ``config``'s architecture with its width fields multiplied by
    ``scale`` (heads kept, so a ViT's head width shrinks with it): the default student.
    ``config``: an encoder config, or a preset name."""
    from vidfm.models import ENCODER_CLASSES, PRESETS

    if isinstance(config, str):
        if config not in PRESETS:
            raise ConfigError(f"unknown student preset {config!r}; choose one of: {', '.join(PRESETS)}")
        config_cls, kwargs = PRESETS[config]
        config = config_cls(**kwargs)
    fields = config.to_dict()
    for f in WIDTH_FIELDS:
        v = fields.get(f)
        if f == "hidden_size" and "widths" in fields:
            fields.pop(f, None)  # a CNN's width is its last stage's
        elif isinstance(v, (list, tuple)):
            fields[f] = [max(1, round(x * scale)) for x in v]
        elif isinstance(v, int):
            fields[f] = max(1, round(v * scale))
    heads = fields.get("num_attention_heads")
    if heads and "hidden_size" in fields:
        fields["hidden_size"] = max(heads, fields["hidden_size"] // heads * heads)
    for key in ("architectures", "transformers_version", "model_type", "dtype", "torch_dtype"):
        fields.pop(key, None)
    cls = ENCODER_CLASSES[config.model_type]
    return cls(cls.config_class(**fields))


def kd_loss_fn(teacher, temperature: float, alpha: float, feature_weight: float = 0.0, projection=None):
    """A ``Trainer`` loss: the student's logits against the teacher's (no gradient) and the
    labels; with ``feature_weight`` the student's pooled vector, projected to the teacher's
    width, matches the teacher's (cosine-normalised MSE)."""

    def loss_fn(model, batch, g):
        video, labels = batch["video"], batch["label"]
        teacher.to(video.device)
        with torch.no_grad():
            t_out = teacher.encoder(video)
            t_logits = teacher.head(t_out.pooled)
        if feature_weight:
            s_out = model.encoder(video)
            logits = model.head(s_out.pooled)
            s_feat, t_feat = F.normalize(projection(s_out.pooled), dim=-1), F.normalize(t_out.pooled, dim=-1)
        else:
            logits, s_feat, t_feat = model(video), None, None
        terms = distillation_loss(logits.float(), t_logits.float(), labels, temperature=temperature, alpha=alpha,
                                  student_features=s_feat, teacher_features=t_feat, beta=feature_weight)  # fmt: skip
        return terms["loss"], {"train_acc": float((logits.argmax(-1) == labels).float().mean()), "kd_soft": float(terms["soft"].detach())}

    return loss_fn


def distill_classifier(teacher_path, data, student, *, train_config, student_scale: float = 1.0, temperature: float = 4.0, alpha: float = 0.7,
                       feature_weight: float = 0.0, val=None, on_error: str = "skip", resume: bool = True) -> dict:  # fmt: skip
    """Train ``student`` on ``data`` from a saved teacher classifier: ``None`` (the
    teacher's own architecture, widths scaled by ``student_scale``), a preset name (scaled
    likewise), a folder, or a ``VideoClassifier``. The best weights land in
    ``train_config.output_dir/best``. Returns the trainer's summary."""
    from torch import nn

    from vidfm.models import resolve_encoder
    from vidfm.tasks.classify import (
        VideoClassifier,
        classification_datasets,
        evaluate_fn_for,
    )
    from vidfm.training import Trainer

    teacher = VideoClassifier.from_pretrained(teacher_path).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    train, val_ds, _, classes = classification_datasets(data, val, num_frames=teacher.num_frames, size=teacher.image_size, seed=train_config.seed, on_error=on_error)
    if classes != teacher.classes:
        raise ConfigError(f"{data}: its classes {classes[:4]}... differ from the teacher's {teacher.classes[:4]}...")
    if isinstance(student, VideoClassifier):
        model = student
    else:
        torch.manual_seed(train_config.seed)
        if student is None:
            enc = scaled_encoder(teacher.encoder.config, student_scale)
        elif Path(student).exists():
            enc = resolve_encoder(student)
        else:
            enc = scaled_encoder(student, student_scale)
            enc.config.num_frames, enc.config.image_size = teacher.num_frames, teacher.image_size
        model = VideoClassifier(enc, classes)
    projection = None
    if feature_weight:
        projection = nn.Linear(model.encoder.output_dim, teacher.encoder.output_dim, bias=False)
        model.add_module("feature_projection", projection)  # trained with the student, not saved
    train_config.extra = {"task": "distill", "teacher": str(teacher_path), "student": "given" if isinstance(student, VideoClassifier) else str(student),
                          "student_scale": student_scale, "temperature": temperature, "alpha": alpha, "feature_weight": feature_weight, "classes": classes}  # fmt: skip

    def save(m, path):
        extra = m._modules.pop("feature_projection", None)
        try:
            m.save_pretrained(path)
        finally:
            if extra is not None:
                m.add_module("feature_projection", extra)

    trainer = Trainer(model, train_config, train, kd_loss_fn(teacher, temperature, alpha, feature_weight, projection), val_dataset=val_ds,
                      evaluate_fn=evaluate_fn_for(len(classes)), save_fn=save)  # fmt: skip
    summary = trainer.fit(resume=resume)
    summary.update(teacher_params=sum(p.numel() for p in teacher.parameters()), student_params=sum(p.numel() for n, p in model.named_parameters() if not n.startswith("feature_projection")))
    return summary


def compress_classifier(model_path, method: str, out, **opts) -> dict:
    """Apply one method to a saved classifier and write the result to ``out`` (a folder,
    or a ``.onnx`` file for the INT8 methods). Returns a report (sizes, what changed)."""
    from vidfm.tasks.classify import VideoClassifier

    if method not in METHODS:
        raise ConfigError(f"unknown compression method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "distill":
        raise ConfigError("distillation trains a new model: use distill_classifier (CLI: vidfm compress MODEL --method distill --data DATA)")
    model = VideoClassifier.from_pretrained(model_path)
    before = _size_on_disk(Path(model_path))
    if method in ONNX_METHODS:
        return _int8(model, method, Path(out), before, **opts)
    if method == "prune":
        from vidfm.compress.prune import prune_structured

        info = prune_structured(model, opts.get("ratio", 0.5), heads=opts.get("heads", True))
    elif method == "sparse":
        from vidfm.compress.prune import prune_magnitude

        info = prune_magnitude(model, opts.get("sparsity", 0.5), opts.get("scope", "layer"))
    else:
        from vidfm.compress.tome import TokenMergingEncoder, tokens_after

        r = int(opts.get("r", 8))
        TokenMergingEncoder(model.encoder, r)  # validates the encoder type
        c = model.encoder.config
        n = c.grid()[0] * c.grid()[1] * c.grid()[2] if hasattr(c, "grid") else 0
        info = {"method": "tome", "r": r, "tokens_per_layer": [n] + tokens_after(n, c.num_hidden_layers, r)}
    model.compression = info
    model.save_pretrained(out)
    return {**info, "source": str(model_path), "out": str(out), "bytes_before": before, "bytes_after": _size_on_disk(Path(out))}


def _int8(model, method: str, out: Path, before: int, calibration=None, per_channel: bool = True, **_) -> dict:
    import shutil
    import tempfile

    from vidfm.compress.onnx import export_classifier, metadata, write_metadata
    from vidfm.compress.quantize import quantize_onnx_dynamic, quantize_onnx_static

    if out.suffix != ".onnx":
        raise ConfigError(f"{out}: INT8 methods write an ONNX model; name it *.onnx")
    if method == "int8-static" and calibration is None:
        raise ConfigError("static INT8 needs calibration clips (--data DATA)")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, part = export_classifier(model, Path(tmp) / "fp32.onnx"), Path(tmp) / out.name
        if method == "int8-dynamic":
            quantize_onnx_dynamic(fp32, part, per_channel)
        else:
            quantize_onnx_static(fp32, part, calibration, per_channel=per_channel)
        write_metadata(part, metadata(fp32))  # the quantiser drops it
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(part), out)
    return {"method": method, "out": str(out), "bytes_before": before, "bytes_after": _size_on_disk(out)}


def _size_on_disk(path: Path) -> int:
    from vidfm.files import model_folder

    if path.suffix == ".onnx":
        from vidfm.compress.onnx import external_files

        return path.stat().st_size + sum(f.stat().st_size for f in external_files(path) if f.is_file())
    folder = model_folder(path)
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


__all__ = ["METHODS", "compress_classifier", "distill_classifier", "distillation_loss", "kd_loss", "scaled_encoder"]
