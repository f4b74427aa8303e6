"""Inference pipelines (diffusers-style: one task per class, a readable ``__call__``)."""

from vidfm.pipelines.video_generation import VideoGenerationPipeline

__all__ = ["VideoGenerationPipeline"]
