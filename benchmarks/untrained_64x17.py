"""An untrained 64x64x17 pipeline (x2 VAE, dit-tiny with 4x4 patches) for the speed table: time per step does not depend on training.

    python benchmarks/untrained_64x17.py   # writes benchmarks/_data/runs/gen2/speed64
"""
import torch

from vidfm.models.generative import build_denoiser, load_vae
from vidfm.objectives.diffusion import training_scheduler
from vidfm.pipelines import VideoGenerationPipeline

torch.manual_seed(0)
vae = load_vae("benchmarks/_data/runs/gen2/vae_x2/best")
den = build_denoiser("dit-tiny", latent_channels=4, text_dim=384, patch_size=4)
pipe = VideoGenerationPipeline(vae, den, training_scheduler("flow"), num_frames=17, height=64, width=64)
pipe.save_pretrained("benchmarks/_data/runs/gen2/speed64")
