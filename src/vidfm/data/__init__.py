"""Datasets, transforms and the synthetic world."""

from vidfm.data.datasets import (
    DataSource,
    SyntheticWorld,
    VideoDataset,
    captions_from_jsonl,
    classification_from_csv,
    classification_from_folder,
    collate_readable,
    grounding_from_sta,
    qa_from_jsonl,
)
from vidfm.data.synthetic import WorldConfig, generate_world

__all__ = [
    "DataSource",
    "SyntheticWorld",
    "VideoDataset",
    "WorldConfig",
    "captions_from_jsonl",
    "classification_from_csv",
    "classification_from_folder",
    "collate_readable",
    "generate_world",
    "grounding_from_sta",
    "qa_from_jsonl",
]
