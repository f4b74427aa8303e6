"""Is a model giving every video the same answer? A collapsed model (features or logits
that no longer depend on the input) still produces numbers, and searches and predictions
made with it look plausible until one notices every score is equal; so training runs and
``vidfm eval`` measure the spread of what the model outputs and say so loudly."""

from __future__ import annotations

import numpy as np

#: below this relative spread the outputs are called collapsed (healthy models: > 0.05)
COLLAPSE_SPREAD = 1e-3


def relative_spread(x) -> float:
    """``||x - mean(x)|| / ||x||`` over a batch of outputs ``(N, D)``: 0 when every row is
    the same, around 1 for outputs centred on zero. NaN for fewer than two rows."""
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64).reshape(len(x), -1)
    if len(x) < 2:
        return float("nan")
    total = np.linalg.norm(x)
    return float(np.linalg.norm(x - x.mean(0, keepdims=True)) / total) if total > 0 else 0.0


def spread_metrics(x, name: str) -> dict:
    """``{f"{name}_spread": s, "collapsed": 0/1}`` for a batch of outputs."""
    s = relative_spread(x)
    return {f"{name}_spread": s, "collapsed": float(s == s and s < COLLAPSE_SPREAD)}
