"""Pruning: structured (torch-pruning removes channels and attention heads for real) and
unstructured (magnitude zeros, reported honestly: dense kernels run no faster).

Structured pruning keeps the token width of the ViTs (their position tables are fixed
sine tables computed from the config, not parameters a pruner could shrink) and the classes
of the head; it removes attention heads and MLP hidden units in transformers, and
channels in CNNs (residual groups together). The attention modules' head counts are fixed
afterwards, and ``pruned_shapes`` records what a loader must rebuild.
"""

from __future__ import annotations

import torch
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.attention import Attention

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _attention_modules(model: nn.Module) -> dict[str, Attention]:
    return {name: m for name, m in model.named_modules() if isinstance(m, Attention)}


def prune_structured(classifier, ratio: float, heads: bool = True) -> dict:
    """Remove ``ratio`` of each prunable group (L2 magnitude importance) from a
    ``VideoClassifier`` in place. Transformers lose whole heads (``heads=True``) and MLP
    units; CNNs lose channels. Returns what changed."""
    try:
        import torch_pruning as tp
    except ImportError:
        raise ConfigError("structured pruning needs torch-pruning (pip install torch-pruning)") from None
    if not 0 < ratio < 1:
        raise ConfigError(f"pruning ratio must be in (0, 1), got {ratio}")
    encoder = classifier.encoder
    kind = encoder.config.model_type
    attns = _attention_modules(classifier)
    if heads and not attns:
        raise ConfigError(f"head pruning needs attention heads; {kind} is a CNN (prune its channels with --no-heads)")
    before = sum(p.numel() for p in classifier.parameters())
    example = torch.rand(1, classifier.num_frames, 3, classifier.image_size, classifier.image_size)
    ignored = [classifier.head]
    if attns:  # keep the token width: the patch embedding feeds a fixed position table
        ignored.append(encoder.patch_embed)
    num_heads = {lin: a.heads for a in attns.values() for lin in (a.to_q, a.to_k, a.to_v)}
    head_dims = {name: a.to_q.out_features // a.heads for name, a in attns.items()}
    pruner = tp.pruner.MetaPruner(
        classifier, example, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
        ignored_layers=ignored, num_heads=num_heads, prune_num_heads=heads and bool(attns), prune_head_dims=False,
        head_pruning_ratio=ratio if heads else 0.0, round_to=None,
    )  # fmt: skip
    classifier.eval()
    pruner.step()
    for name, a in attns.items():
        a.heads = a.to_q.out_features // head_dims[name]
    after = sum(p.numel() for p in classifier.parameters())
    with torch.no_grad():
        classifier(example)  # the pruned graph still runs end to end
    return {"method": "prune", "ratio": ratio, "heads": heads, "params_before": before, "params_after": after,
            "attention_heads": {n: a.heads for n, a in attns.items()}}  # fmt: skip


def prune_magnitude(classifier, sparsity: float, scope: str = "layer") -> dict:
    """Zero the smallest ``sparsity`` of the conv/linear weights (the head excluded), made
    permanent; the model keeps its dense shapes and speed. ``scope="layer"`` ranks within
    each layer (every layer keeps 1 - sparsity of its weights); ``"global"`` ranks all
    weights together, which empties layers whose weights are small in scale (measured: it
    took videomae-tiny to chance at 50 %)."""
    from torch.nn.utils import prune

    if not 0 < sparsity < 1:
        raise ConfigError(f"sparsity must be in (0, 1), got {sparsity}")
    if scope not in ("layer", "global"):
        raise ConfigError(f"sparsity scope must be layer or global, got {scope!r}")
    params = [(m, "weight") for m in classifier.encoder.modules() if isinstance(m, PRUNABLE)]
    if scope == "global":
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for m, name in params:
            prune.l1_unstructured(m, name, amount=sparsity)
    for m, name in params:
        prune.remove(m, name)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in params)
    total = sum(m.weight.numel() for m, _ in params)
    all_params = sum(p.numel() for p in classifier.parameters())
    return {"method": "sparse", "sparsity": sparsity, "scope": scope, "pruned_weights_zero": zeros / total,
            "all_parameters_zero": sum(int((p == 0).sum()) for p in classifier.parameters()) / all_params}  # fmt: skip


def reshape_to_state(model: nn.Module, state: dict, attention_heads: dict[str, int] | None = None) -> None:
    """Rebuild the layers of a freshly built ``model`` whose saved weights in ``state``
    have other shapes (a structurally pruned model), then set the attention head counts."""
    for name, module in list(model.named_modules()):
        w = state.get(f"{name}.weight")
        if w is None or tuple(w.shape) == tuple(getattr(module, "weight", torch.empty(0)).shape):
            continue
        has_bias = f"{name}.bias" in state
        if isinstance(module, nn.Linear):
            new = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            g = module.groups
            new = type(module)(w.shape[1] * g, w.shape[0], module.kernel_size, module.stride, module.padding, module.dilation, g, has_bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            new = type(module)(w.shape[0], module.eps, module.momentum, module.affine, module.track_running_stats)
        elif isinstance(module, nn.LayerNorm):
            new = nn.LayerNorm(w.shape[0], module.eps, module.elementwise_affine)
        else:
            raise ConfigError(f"cannot rebuild pruned layer {name} ({type(module).__name__})")
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, new)
    for name, heads in (attention_heads or {}).items():
        model.get_submodule(name).heads = heads
