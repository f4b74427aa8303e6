"""Knowledge distillation (Hinton et al., 2015): a student matches the teacher's
temperature-softened outputs, plus the hard labels, plus (optionally) the teacher's features.

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T))
         + (1 - alpha) * CE(s, labels)
         + beta * MSE(proj(student_features), teacher_features)

The T^2 keeps the soft term's gradients the same size as T changes. Binary outputs
(one logit per item, e.g. a per-frame transition score) use the Bernoulli form of the same
KL (sigmoid instead of softmax).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0, binary: bool = False, weight=None) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), averaged over items (``weight``ed per item if
    given). ``(..., C)`` logits, or any shape with ``binary=True`` (one logit per item)."""
    t = temperature
    if binary:
        p = torch.sigmoid(teacher_logits / t)
        s = student_logits / t
        # KL between Bernoullis = BCE(s, p) - H(p); H(p) has no gradient, but keep it so a
        # perfect student scores 0
        kl = F.binary_cross_entropy_with_logits(s, p, reduction="none") - F.binary_cross_entropy(p, p, reduction="none")
    else:
        log_p_s = F.log_softmax(student_logits / t, -1)
        log_p_t = F.log_softmax(teacher_logits / t, -1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return (kl.mean() if weight is None else (kl * weight).sum() / weight.sum()) * t * t


def distillation_loss(student_logits, teacher_logits, labels=None, *, temperature: float = 2.0, alpha: float = 0.5, binary: bool = False,
                      student_features=None, teacher_features=None, beta: float = 0.0, weight=None) -> dict:  # fmt: skip
    """The three terms and their weighted sum (``loss``). ``labels``: class indices, or
    0/1 targets with ``binary=True``; without labels the soft term has all the weight.
    ``weight``: per-item weights (same shape as the labels). Features must already have
    the same shape (project the student's first)."""
    soft = kd_loss(student_logits, teacher_logits, temperature, binary, weight)
    out = {"soft": soft}
    if labels is None:
        loss = soft
    else:
        if binary:
            hard = F.binary_cross_entropy_with_logits(student_logits, labels.float(), reduction="none")
        else:
            hard = F.cross_entropy(student_logits.flatten(0, -2), labels.flatten(), reduction="none").view(labels.shape)
        hard = hard.mean() if weight is None else (hard * weight).sum() / weight.sum()
        out["hard"] = hard
        loss = alpha * soft + (1 - alpha) * hard
    if beta and student_features is not None:
        if student_features.shape != teacher_features.shape:
            raise ValueError(f"feature matching needs equal shapes, got {tuple(student_features.shape)} and {tuple(teacher_features.shape)}")
        out["features"] = F.mse_loss(student_features, teacher_features)
        loss = loss + beta * out["features"]
    out["loss"] = loss
    return out
