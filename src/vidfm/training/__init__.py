"""The training engine shared by every objective."""

from vidfm.training.trainer import TrainConfig, Trainer, atomic_save_dir

__all__ = ["TrainConfig", "Trainer", "atomic_save_dir"]
