"""The training engine shared by every objective."""

from vidfm.training.trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
