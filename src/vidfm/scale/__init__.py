"""Scale out on engines people already run: Ray Data for collections of videos
(``batch``, ``jobs``) and PyTorch FSDP2 for models larger than one process (in
``vidfm.training``)."""

from vidfm.scale.batch import ENGINES, JobReport, RayOptions, run_job
from vidfm.scale.jobs import (
    CaptionJob,
    EmbedJob,
    PredictJob,
    ShotsJob,
    index_with_engine,
    run_to_file,
)

__all__ = ["ENGINES", "CaptionJob", "EmbedJob", "JobReport", "PredictJob", "RayOptions", "ShotsJob", "index_with_engine", "run_job", "run_to_file"]
