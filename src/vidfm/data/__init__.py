"""Datasets, transforms and the synthetic world."""

from vidfm.data.datasets import (
    SyntheticWorld,
    VideoDataset,
    captions_from_jsonl,
    classification_from_csv,
    classification_from_folder,
    grounding_from_sta,
    qa_from_jsonl,
)
from vidfm.data.synthetic import WorldConfig, generate_world

__all__ = [
    "SyntheticWorld",
    "VideoDataset",
    "WorldConfig",
    "captions_from_jsonl",
    "classification_from_csv",
    "classification_from_folder",
    "generate_world",
    "grounding_from_sta",
    "qa_from_jsonl",
]
