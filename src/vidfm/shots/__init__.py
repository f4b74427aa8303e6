"""Temporal structure of a video: shot boundaries (and, built on them, scenes and keyframes)."""

from vidfm.shots.detect import (
    METHODS,
    HistogramDetector,
    PySceneDetectDetector,
    Shots,
    TransNetV2Detector,
    detect_shots,
    make_detector,
)
from vidfm.shots.split import split_shots

__all__ = ["METHODS", "HistogramDetector", "PySceneDetectDetector", "Shots", "TransNetV2Detector", "detect_shots", "make_detector", "split_shots"]
