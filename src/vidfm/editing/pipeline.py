"""Video editing with a trained vidfm generation pipeline (SPEC §9).

``VideoEditPipeline`` is the generation pipeline plus editing: same components, same
``from_pretrained`` folders. ``edit_clip`` edits one clip of the model's length:

- ``sdedit``: the source latents noised to the timestep diffusers' video-to-video
  pipelines start from (``init_timestep = min(int(N * strength), N)``, start at
  ``N - init_timestep``), denoised under the new prompt; ``inverted_noise`` starts from
  the source's inversion at that step instead of fresh noise.
- ``inversion``: invert the source under its prompt (DDIM for epsilon / v models, the
  Euler ODE backwards for flow models), then denoise under the new prompt. The source
  prompt's reconstruction runs beside it in the batch: its error is reported for every
  inversion. ``null_text`` optimises the unconditional embedding per step (Mokady et
  al.) so the guided reconstruction follows the inverted path.
- ``p2p``: inversion plus attention injection from the reconstruction branch
  (``vidfm.editing.attention``: Prompt-to-Prompt cross-attention replace / refine /
  reweight, FateZero-style self-attention blending, PnP-style query/key injection).

Masks keep the edit where it belongs: a user mask or one thresholded from the
cross-attention of the edited words; outside it the latents are blended back to the
source's at every step, and the final frames are pasted back from the source.

Deterministic steps are written out here (Euler for flow, DDIM with eta 0 for epsilon /
v) on one grid of noise levels shared by sampling and inversion. diffusers'
``DDIMScheduler`` / ``DDIMInverseScheduler`` agree with them where their grids agree
(tests check it), but their ``t - 1000 // N`` previous step leaves the trailing grid when
N does not divide 1000 (one of the inverse scheduler's known off-by-ones); and the
model is evaluated at the noise level the latents actually have (diffusers' inversion
loops evaluate it at the next one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from vidfm.editing.attention import (
    CROSS_MODES,
    SELF_MODES,
    EditController,
    install,
    token_alignment,
)
from vidfm.errors import ConfigError
from vidfm.objectives.diffusion import frame_condition
from vidfm.pipelines.video_generation import (
    VideoGenerationPipeline,
    to_model_range,
    to_uint8,
)

CLIP_METHODS = ("sdedit", "inversion", "p2p")
MASK_MODES = ("attention", "diffedit")  # derived masks: cross-attention of the edited words / prediction difference
DEFAULT_STRENGTH = {"sdedit": 0.6, "inversion": 1.0, "p2p": 1.0, "flow": 0.6, "drag": 0.5}


@dataclass
class AttentionSettings:
    """P2P / FateZero / PnP knobs: modes and the fraction of steps each is applied for.
    The defaults (FateZero blending, the new words' attention doubled) edited the most
    validation pairs of the world (see benchmarks/RESULTS.md, issue 18)."""

    cross: str = "refine"
    self: str = "blend"
    cross_steps: float = 0.8
    self_steps: float = 0.4
    reweight: dict[str, float] = field(default_factory=dict)  # word of the edit prompt -> factor
    emphasis: float = 2.0  # factor on every word of the edit prompt that the source prompt lacks

    def __post_init__(self):
        if self.cross not in CROSS_MODES or self.self not in SELF_MODES:
            raise ConfigError(f"attention modes: cross one of {', '.join(CROSS_MODES)}, self one of {', '.join(SELF_MODES)}")


@dataclass
class ClipEdit:
    """One edited clip: ``frames`` (T, H, W, 3) uint8; ``reconstruction`` the source
    prompt's branch (inversion / p2p); ``mask`` (T, H, W) in [0, 1] where the edit was
    allowed; ``inversion_psnr`` of the reconstruction against the source (dB)."""

    frames: np.ndarray
    reconstruction: np.ndarray | None = None
    mask: np.ndarray | None = None
    inversion_psnr: float | None = None


class Levels:
    """The sampling grid as noise levels 0..N (0 = noisiest, N = clean) with the exact
    deterministic step between neighbours in both directions."""

    def __init__(self, pipe: VideoGenerationPipeline, steps: int):
        from vidfm.objectives.diffusion import sampling_scheduler

        self.flow = pipe.config.prediction == "flow"
        sched = sampling_scheduler(pipe.scheduler.config, "euler" if self.flow else "ddim")
        sched.set_timesteps(steps)
        self.n = steps
        if self.flow:
            self.sigmas = sched.sigmas.float()  # N + 1, descending to 0
            self.model_t = self.sigmas * sched.config.num_train_timesteps
        else:
            self.prediction = pipe.config.prediction
            t = sched.timesteps.long()
            ac = sched.alphas_cumprod.float()
            self.alphas = torch.cat([ac[t], torch.ones(1)])  # clean level: alpha 1
            self.model_t = torch.cat([t.float(), torch.zeros(1)])

    def start(self, strength: float) -> int:
        """diffusers' img2img start: the first ``N - min(int(N * strength), N)`` steps skipped."""
        return self.n - min(int(self.n * strength), self.n)

    def noise_to(self, x0: torch.Tensor, noise: torch.Tensor, level: int) -> torch.Tensor:
        if self.flow:
            s = self.sigmas[level]
            return (1 - s) * x0 + s * noise
        a = self.alphas[level]
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def _x0_eps(self, x, pred, level):
        if self.flow:
            s = self.sigmas[level]
            return x - s * pred, x + (1 - s) * pred
        a = self.alphas[level]
        if self.prediction == "epsilon":
            return (x - (1 - a).sqrt() * pred) / a.sqrt(), pred
        return a.sqrt() * x - (1 - a).sqrt() * pred, a.sqrt() * pred + (1 - a).sqrt() * x

    def move(self, pred: torch.Tensor, x: torch.Tensor, frm: int, to: int) -> torch.Tensor:
        """Latents at level ``frm`` with the model's prediction there -> level ``to``
        (down the grid: a sampling step; up: an inversion step)."""
        if self.flow:
            return x + (self.sigmas[to] - self.sigmas[frm]) * pred
        x0, eps = self._x0_eps(x, pred, frm)
        a = self.alphas[to]
        return a.sqrt() * x0 + (1 - a).sqrt() * eps


class VideoEditPipeline(VideoGenerationPipeline):
    """The generation pipeline with editing (``edit_clip``; any length: ``vidfm.editing.edit_video``)."""

    def encode_video(self, video: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 at the model's size -> scaled latents (1, C, t, h, w)."""
        with torch.no_grad():
            return self.vae.encode_latents(to_model_range(video).to(self.device))

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return to_uint8(self.vae.decode_latents(latents.float()))

    def check_clip(self, video: np.ndarray) -> None:
        cfg = self.config
        want = (cfg.num_frames, cfg.height, cfg.width, 3)
        if video.dtype != np.uint8 or video.shape != want:
            raise ConfigError(f"a clip for this model must be uint8 {want}, got {video.dtype} {video.shape} (edit_video takes any length)")

    def latent_mask(self, mask: np.ndarray) -> torch.Tensor:
        """A pixel mask (T, H, W) in [0, 1] -> (1, 1, t, h, w) on the latent grid: a latent
        cell is editable when any of its pixels or frames is."""
        m = torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None]
        s, r = self.vae.spatial_factor, self.vae.temporal_factor
        m = F.max_pool3d(m, (1, s, s))
        first, rest = m[:, :, :1], m[:, :, 1:]
        if rest.shape[2]:
            rest = F.max_pool3d(rest, (r, 1, 1))
        return torch.cat([first, rest], 2).to(self.device)

    # -- inversion -------------------------------------------------------------------------
    @torch.no_grad()
    def invert(self, x0, text, mask, cond, levels: Levels, start: int) -> dict[int, torch.Tensor]:
        """Latents at every level from clean (N) up to ``start``, following the model's
        deterministic path backwards under ``text`` (no guidance)."""
        path, x = {levels.n: x0}, x0
        for level in range(levels.n - 1, start - 1, -1):
            pred = self.predict(x, levels.model_t[level + 1], text, mask, cond, 1.0)
            x = levels.move(pred, x, level + 1, level)
            path[level] = x
        return path

    def optimise_null_text(self, path, text, mask, cond, levels: Levels, start: int, guidance: float, iters: int = 10, lr: float = 1e-2):
        """Null-text inversion: per step, the unconditional embedding that makes the guided
        step from the current latents land on the inverted path."""
        null = torch.zeros(1, 1, text.shape[-1], device=text.device, dtype=text.dtype)
        nulls, z = {}, path[start]
        for level in range(start, levels.n):
            u = null.clone().requires_grad_(True)
            opt = torch.optim.Adam([u], lr=lr)
            with torch.enable_grad():
                for _ in range(iters):
                    t2, m2 = self.with_null_text(text, mask, guidance, null=u)
                    nxt = levels.move(self.predict(z, levels.model_t[level], t2, m2, cond, guidance), z, level, level + 1)
                    loss = F.mse_loss(nxt, path[level + 1])
                    if loss.item() < 1e-5 + 2e-5 * (level - start):  # the paper's early stop, looser as steps go
                        break
                    (grad,) = torch.autograd.grad(loss, [u])
                    u.grad = grad
                    opt.step()
            null = nulls[level] = u.detach()
            with torch.no_grad():
                t2, m2 = self.with_null_text(text, mask, guidance, null=null)
                z = levels.move(self.predict(z, levels.model_t[level], t2, m2, cond, guidance), z, level, level + 1)
        return nulls

    # -- one clip --------------------------------------------------------------------------
    @torch.no_grad()
    def edit_clip(
        self,
        video: np.ndarray,
        prompt: str,
        source_prompt: str | None = None,
        *,
        method: str = "sdedit",
        strength: float | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 7.5,
        mask: np.ndarray | str | None = None,
        inverted_noise: bool = False,
        null_text: bool = False,
        attention: AttentionSettings | None = None,
        mask_threshold: float = 0.7,
        mask_dilate: int = 1,
        paste_back: bool = True,
        first_frame: np.ndarray | None = None,
        start_latents: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> ClipEdit:
        """Edit ``video`` (the model's clip: ``num_frames`` frames at its size) toward
        ``prompt``. ``mask``: (T, H, W) or (H, W) in [0, 1] (1 = may change),
        ``"attention"`` (from the cross-attention of the words that differ from
        ``source_prompt``) or None (the whole frame). ``first_frame``: an already edited
        frame 0 to hold (windows of a long video). ``start_latents`` replaces the noised
        source as the starting point (drag: warped latents)."""
        self.check_clip(video)
        if method not in CLIP_METHODS:
            raise ConfigError(f"unknown clip method {method!r}; choose one of {', '.join(CLIP_METHODS)}")
        strength = DEFAULT_STRENGTH[method] if strength is None else strength
        if not 0.0 < strength <= 1.0:
            raise ConfigError(f"--strength must be in (0, 1], got {strength}")
        derived = mask if isinstance(mask, str) else None
        needs_source = method in ("inversion", "p2p") or inverted_noise or null_text or derived is not None
        if derived is not None and derived not in MASK_MODES:
            raise ConfigError(f"mask must be an array, {' or '.join(repr(m) for m in MASK_MODES)}, or None; got {mask!r}")
        if needs_source and not (source_prompt and source_prompt.strip()):
            raise ConfigError(f"{method}{' with a derived mask' if derived else ''} needs --source-prompt (what the source video shows)")
        paired = method in ("inversion", "p2p")
        attention = attention or AttentionSettings()
        levels = Levels(self, num_inference_steps)
        start = levels.start(strength)
        if start >= levels.n:
            raise ConfigError(f"strength {strength} with {num_inference_steps} steps leaves no step to take; raise either")
        x0 = self.encode_video(video)
        prompts = [source_prompt, prompt] if paired else [prompt]
        if needs_source:  # one encoding of [source, edit]; an unpaired edit uses its second row
            pair_text, pair_mask = self.encode_prompt([source_prompt, prompt])
            text, tmask = (pair_text, pair_mask) if paired else (pair_text[1:], pair_mask[1:])
            src_text, src_mask = pair_text[:1], pair_mask[:1]
        else:
            text, tmask = self.encode_prompt(prompts)
        b = len(prompts)
        g = generator or torch.Generator().manual_seed(0)
        noise = torch.randn(x0.shape, generator=g).to(x0)
        # frame 0 held to an already edited frame (the previous window's last)
        cond_edit = cond_src = None
        first_latent = None
        if first_frame is not None:
            first_latent = self.encode_image(np.asarray(first_frame)).to(x0.dtype)
            cond_edit = frame_condition(x0, first_latent, None)
            cond_src = frame_condition(x0, x0[:, :, :1], None)
        cond = torch.cat([cond_src, cond_edit]) if paired and cond_edit is not None else cond_edit
        path, nulls = None, None
        if needs_source and (paired or inverted_noise or null_text):
            path = self.invert(x0, src_text, src_mask, cond_src, levels, start)
            if null_text:
                nulls = self.optimise_null_text(path, src_text, src_mask, cond_src, levels, start, guidance_scale)
        if start_latents is not None:
            latents = levels.noise_to(start_latents, noise, start)
        elif path is not None:
            latents = path[start]
        else:
            latents = levels.noise_to(x0, noise, start)
        latents = latents.repeat(b, 1, 1, 1, 1)
        if derived == "diffedit":
            mask = self.diffedit_mask(x0, pair_text, pair_mask, levels, g, mask_threshold, mask_dilate)
        controller = None
        if paired or derived == "attention":
            controller = self._controller(method, prompts if paired else [source_prompt, prompt], attention, levels.n - start, paired)
            saved = install(self.denoiser, controller)
        user_mask = None if mask is None or isinstance(mask, str) else self._pixel_mask(mask)
        lat_mask = self.latent_mask(user_mask) if user_mask is not None else None
        if controller is not None and lat_mask is not None:
            controller.blend_mask = self._token_mask(lat_mask)
        try:
            for level in range(start, levels.n):
                if controller is not None:
                    controller.step = level - start
                t2, m2 = self.with_null_text(text, tmask, guidance_scale, null=nulls[level] if nulls else None)
                pred = self.predict(latents, levels.model_t[level], t2, m2, cond, guidance_scale)
                latents = levels.move(pred, latents, level, level + 1)
                if derived == "attention" and controller.maps and level - start >= max(1, (levels.n - start) // 5):
                    user_mask = self._attention_mask(controller, mask_threshold, mask_dilate)
                    lat_mask = self.latent_mask(user_mask)
                    controller.blend_mask = self._token_mask(lat_mask)
                latents = self._hold(latents, lat_mask, x0, first_latent, noise, levels, level + 1, paired)
        finally:
            if controller is not None:
                self.denoiser.set_attn_processor(saved)
        frames = self.decode(latents)
        edit = frames[-1]
        used_mask = user_mask  # given, DiffEdit's, or the attention mask of the last step
        if used_mask is not None and paste_back:
            edit = np.round(used_mask[..., None] * edit + (1 - used_mask[..., None]) * video).astype(np.uint8)
        if first_frame is not None:
            edit[0] = first_frame
        recon = frames[0] if paired else None
        from vidfm.metrics.generation import psnr_ssim_uint8

        psnr = psnr_ssim_uint8(video[None], recon[None])[0] if recon is not None else None
        return ClipEdit(edit, recon, used_mask, psnr)

    @torch.no_grad()
    def diffedit_mask(self, x0, text, tmask, levels: Levels, generator, threshold: float = 0.5, dilate: int = 1, draws: int = 5) -> np.ndarray:
        """DiffEdit (Couairon et al.): where the model's predictions under the source and
        the edit prompt (``text``: the two encoded as one batch) differ, over a few noise
        draws at mid noise, smoothed, normalised per frame and thresholded -> a (T, H, W)
        0/1 mask. Needs no attention maps, so it works for every denoiser."""
        level = levels.n // 2
        diff = 0.0
        for _ in range(draws):
            x = levels.noise_to(x0, torch.randn(x0.shape, generator=generator).to(x0), level).repeat(2, 1, 1, 1, 1)
            pred = self.predict(x, levels.model_t[level], text, tmask, None, 1.0)
            diff = diff + (pred[1] - pred[0]).abs().mean(0)
        d = F.avg_pool2d(diff[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]  # (t, h, w)
        return self._threshold(d, threshold, dilate)

    def _threshold(self, latent_map: torch.Tensor, threshold: float, dilate: int) -> np.ndarray:
        """A (t, h', w') map -> (T, H, W) 0/1: upsampled, min-max normalised per frame,
        thresholded, grown by ``dilate`` pixels."""
        cfg = self.config
        m = F.interpolate(latent_map[None, None].float(), size=(latent_map.shape[0], cfg.height, cfg.width), mode="trilinear", align_corners=False)[0, 0]
        r = self.vae.temporal_factor
        m = m[[(f + r - 1) // r for f in range(cfg.num_frames)]]  # the causal VAE: latent 0 is frame 0, latent j frames 2j-1..2j
        lo, hi = m.flatten(1).amin(1).view(-1, 1, 1), m.flatten(1).amax(1).view(-1, 1, 1)
        binary = ((m - lo) / (hi - lo).clamp(min=1e-8) >= threshold).float()
        if dilate:
            binary = F.max_pool2d(binary[:, None], 2 * dilate + 1, stride=1, padding=dilate)[:, 0]
        return binary.cpu().numpy()

    def _pixel_mask(self, mask) -> np.ndarray:
        cfg = self.config
        m = np.asarray(mask, dtype=np.float32)
        if m.ndim == 2:
            m = np.broadcast_to(m, (cfg.num_frames, *m.shape))
        if m.shape != (cfg.num_frames, cfg.height, cfg.width):
            raise ConfigError(f"mask of shape {m.shape} does not fit clips of {cfg.num_frames} frames at {cfg.height}x{cfg.width}")
        return np.clip(m, 0, 1)

    def _controller(self, method, prompts, attention: AttentionSettings, steps: int, paired: bool) -> EditController:
        tok = self.text_encoder.tokenizer
        ids = [tok(p, truncation=True, max_length=self.config.max_text_length)["input_ids"] for p in prompts]
        src_tokens, edit_tokens = ([tok.convert_ids_to_tokens(i) for i in ids])
        mapping, changed = token_alignment(src_tokens, edit_tokens)
        src_changed = sorted(set(range(len(src_tokens))) - {int(i) for i in mapping if i >= 0})
        reweight = {}
        for word, factor in attention.reweight.items():
            pieces = tok.tokenize(word)
            hits = [j for j in range(len(edit_tokens)) if edit_tokens[j : j + len(pieces)] == pieces]
            if not hits:
                raise ConfigError(f"--reweight word {word!r} is not in the prompt")
            reweight.update({j + k: float(factor) for j in hits for k in range(len(pieces))})
        if attention.emphasis != 1.0:
            for j in changed:
                reweight.setdefault(j, float(attention.emphasis))
        ctl = EditController(steps, cross_mode=attention.cross if method == "p2p" else "none", self_mode=attention.self if method == "p2p" else "none",
                             cross_steps=attention.cross_steps, self_steps=attention.self_steps, mapping=mapping,
                             reweight=reweight if method == "p2p" else {}, paired=paired)  # fmt: skip
        ctl.record = True
        ctl.changed = (src_changed, changed or sorted(reweight))
        return ctl

    def _attention_mask(self, controller: EditController, threshold: float, dilate: int) -> np.ndarray:
        """The edited words' summed cross-attention -> a (T, H, W) 0/1 mask: per frame,
        cells above ``threshold`` of the frame's maximum, grown by ``dilate`` pixels."""
        cfg = self.config
        t, h, w = self.vae.latent_shape(cfg.num_frames, cfg.height, cfg.width)
        src_changed, edit_changed = controller.changed
        total = None
        for n, maps in controller.maps.items():  # (items, N, L): [source, edit] conditional items first when paired
            side = int(round(np.sqrt(n / t)))
            if side * side * t != n:
                continue
            edit_item = 1 if controller.paired else 0
            m = maps[edit_item][:, edit_changed].sum(-1) if edit_changed else maps[edit_item].new_zeros(n)
            if controller.paired and src_changed:
                m = m + maps[0][:, src_changed].sum(-1)
            m = F.interpolate(m.view(1, 1, t, side, side), size=(t, h, w), mode="trilinear", align_corners=False)[0, 0]
            total = m if total is None else total + m
        if total is None:
            return np.ones((cfg.num_frames, cfg.height, cfg.width), dtype=np.float32)
        return self._threshold(total, threshold, dilate)

    def _token_mask(self, lat_mask: torch.Tensor) -> torch.Tensor:
        """A latent-grid mask -> one value per denoiser token (FateZero's blend region)."""
        p = getattr(self.denoiser.config, "patch_size", 1) or 1
        return F.max_pool3d(lat_mask, (1, p, p)).flatten()

    def _hold(self, latents, lat_mask, x0, first_latent, noise, levels: Levels, level: int, paired: bool) -> torch.Tensor:
        """Blend the edit branch back to the source outside the mask, and hold a given
        first frame, at the noise level just reached."""
        if lat_mask is None and first_latent is None:
            return latents
        edit = latents[-1:]
        if lat_mask is not None:
            background = latents[:1] if paired else levels.noise_to(x0, noise, level)
            edit = lat_mask * edit + (1 - lat_mask) * background
        if first_latent is not None:
            edit = edit.clone()
            edit[:, :, :1] = levels.noise_to(first_latent, noise[:, :, :1], level)
        return torch.cat([latents[:-1], edit])
