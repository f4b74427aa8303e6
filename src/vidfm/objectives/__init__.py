"""Self-supervised and cross-modal pre-training objectives, each a module whose forward
returns the loss, run by the one ``vidfm.training.Trainer``."""

from vidfm.objectives.contrastive import (
    ContrastiveVideoModel,
    TwoViews,
    nt_xent,
    triplet_loss,
)
from vidfm.objectives.mvm import MaskedVideoModel, patchify_targets, tube_mask
from vidfm.objectives.video_text import (
    VideoTextModel,
    same_caption_mask,
    video_text_loss,
)

__all__ = [
    "ContrastiveVideoModel",
    "MaskedVideoModel",
    "TwoViews",
    "VideoTextModel",
    "nt_xent",
    "patchify_targets",
    "same_caption_mask",
    "triplet_loss",
    "tube_mask",
    "video_text_loss",
]
