"""INT8 quantisation.

* ONNX Runtime, the deployment path: ``quant_pre_process`` (shape inference + graph
  optimisation), then ``quantize_dynamic`` (int8 weights, activations quantised on the fly)
  or ``quantize_static`` (QDQ format, activation ranges calibrated on real clips).
* PyTorch: torchao's ``quantize_`` (int8 dynamic activations + int8 weights) when torchao
  is installed, and the deprecated ``torch.ao`` dynamic path where this torch still has it.
  Both are measured in ``benchmarks/compress.py``; neither is a deployment format here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidfm.compress.onnx import _need, check_onnx_file
from vidfm.errors import ConfigError

# Conv layers stay float in dynamic mode: ORT's ConvInteger kernels ran slower than float
# convolutions on this CPU (benchmarks/RESULTS.md, "Compression")
DYNAMIC_OPS = ["MatMul", "Gemm"]


def _preprocessed(src: Path, tmp: Path) -> Path:
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    single = tmp / "model.onnx"  # the pre-processor loses external data on its way through a temp dir
    onnx.save(onnx.load(str(src)), str(single))
    out = tmp / "pre.onnx"
    quant_pre_process(str(single), str(out), skip_symbolic_shape=True)
    return out


def quantize_onnx_dynamic(src, dst, per_channel: bool = True, ops: list[str] | None = None) -> Path:
    """INT8 weights, dynamically quantised activations (MatMul/Gemm by default)."""
    _need("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    check_onnx_file(src)
    with tempfile.TemporaryDirectory() as tmp:
        pre = _preprocessed(Path(src), Path(tmp))
        part = Path(tmp) / Path(dst).name
        quantize_dynamic(str(pre), str(part), weight_type=QuantType.QInt8, per_channel=per_channel, op_types_to_quantize=ops or DYNAMIC_OPS)
        return _publish(part, Path(dst))


def quantize_onnx_static(src, dst, calibration, input_name: str = "video", per_channel: bool = True, method: str = "minmax") -> Path:
    """QDQ INT8 with activation ranges from ``calibration``: an iterable of input arrays
    (e.g. (B, T, C, H, W) float32 clips). ``method``: minmax, entropy or percentile."""
    _need("onnxruntime")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ConfigError(f"calibration method must be one of {', '.join(methods)}, got {method!r}")
    check_onnx_file(src)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {input_name: np.ascontiguousarray(np.asarray(x, dtype=np.float32))}

    with tempfile.TemporaryDirectory() as tmp:
        pre = _preprocessed(Path(src), Path(tmp))
        part = Path(tmp) / Path(dst).name
        quantize_static(str(pre), str(part), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=methods[method], extra_options={"ActivationSymmetric": True})  # fmt: skip
        return _publish(part, Path(dst))


def _publish(part: Path, dst: Path) -> Path:
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(part), dst)
    return dst


def torchao_int8(model: nn.Module) -> nn.Module:
    """torchao's int8 dynamic-activation, int8-weight quantisation of every Linear, in place."""
    try:
        from torchao.quantization import (
            Int8DynamicActivationInt8WeightConfig,
            quantize_,
        )
    except ImportError:
        raise ConfigError("the torchao backend needs torchao (pip install torchao)") from None
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return model


def torch_ao_dynamic(model: nn.Module) -> nn.Module:
    """The deprecated ``torch.ao.quantization.quantize_dynamic`` (qint8 Linear layers),
    where this torch still ships it."""
    fn = getattr(getattr(getattr(torch, "ao", None), "quantization", None), "quantize_dynamic", None)
    if fn is None:
        raise ConfigError("this torch has no torch.ao.quantization.quantize_dynamic; use ONNX Runtime INT8 or torchao")
    return fn(model, {nn.Linear}, dtype=torch.qint8)
