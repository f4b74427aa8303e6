"""Rebuilding a compressed classifier (imported by ``VideoClassifier.from_pretrained``;
kept free of ``vidfm.tasks`` imports so the two do not import each other)."""

from __future__ import annotations

import json
from pathlib import Path

from vidfm.errors import ConfigError


def load_compressed_classifier(cls, path: Path, meta: dict, head_file: str):
    """Rebuild a classifier saved with a ``compression`` record (see ``compress_classifier``)."""
    from safetensors.torch import load_file

    from vidfm.compress.prune import reshape_to_state
    from vidfm.compress.tome import TokenMergingEncoder
    from vidfm.models import ENCODER_CLASSES

    info = meta["compression"]
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    if model_type not in ENCODER_CLASSES:
        raise ConfigError(f"{path}: holds a {model_type!r} model, not a vidfm video encoder")
    enc_cls = ENCODER_CLASSES[model_type]
    model = cls(enc_cls(enc_cls.config_class.from_pretrained(str(path))), meta["classes"], meta.get("dropout", 0.0))
    state = {f"encoder.{k}": v for k, v in load_file(path / "model.safetensors").items()}
    state.update({f"head.{k}": v for k, v in load_file(path / head_file).items()})
    if info["method"] == "prune":
        reshape_to_state(model, state, info.get("attention_heads"))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"{path}: weights do not match its compression record ({str(e).splitlines()[0][:160]})") from None
    if info["method"] == "tome":
        model.encoder = TokenMergingEncoder(model.encoder, int(info["r"]))
    model.compression = info
    return model.eval()
