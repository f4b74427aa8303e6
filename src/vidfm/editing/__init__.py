"""Video editing (SPEC §9): SDEdit, inversion, attention injection, masks, flow
propagation and drag, one clip at a time (``VideoEditPipeline.edit_clip``) or over a
video of any length in windows (``edit_video``)."""

from vidfm.editing.pipeline import AttentionSettings, ClipEdit, VideoEditPipeline

__all__ = ["AttentionSettings", "ClipEdit", "VideoEditPipeline"]
