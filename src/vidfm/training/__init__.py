"""The training engine shared by every objective."""

from vidfm.training.trainer import TrainConfig, Trainer, atomic_save_dir, model_folder

__all__ = ["TrainConfig", "Trainer", "atomic_save_dir", "model_folder"]
