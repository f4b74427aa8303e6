"""A Video-LLM: a vidfm video encoder, a connector and a causal language model.

The encoder's hidden layer ``feature_layer`` (default -2) is read as a grid of tokens per
time slot, ``(B, t, h, w, D)``. Each slot's grid is pooled (2x2 by default; before or after
the projection, a config field: VideoGPT+ pools after, LLaVA-NeXT-Video before) and turned
into language-model embeddings by the connector (MLP, Q-Former or Perceiver resampler).
The prompt interleaves each slot's tokens with its time as text, so the model can answer
"when" with seconds::

    <chat prefix> Video of 4.2 s. 0.0 s: [v v v v] 0.5 s: [v v v v] ... <question> <assistant>

With ``image_encoder`` the model is a dual encoder (VideoGPT+): a per-frame image tower
adds spatial detail, and each slot also gets the image tokens of its frames.

With ``tiles`` > 1 (AnyRes, LLaVA-NeXT) frames are read at ``tiles * image_size`` pixels:
the encoder sees the whole frame resized to ``image_size`` (the global view) and each of the
``tiles x tiles`` crops at its native size; the crops' grids are stitched back into one
high-resolution grid per slot, pooled and projected like the global one, so small objects
keep their pixels without an encoder trained at a larger size.

Shapes: ``features``: what ``encode_video`` returns, a list (one per video) of dicts with
``grid`` (t, h, w, D) [, ``tile_grid`` (t, tiles*h, tiles*w, D), ``image_grid`` (T, h, w, D)], ``times`` (t,) seconds per slot and
``duration``. Models never open files: the task layer reads the frames.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vidfm.errors import ConfigError
from vidfm.models.connectors import CONNECTORS, build_connector, pool_grid, pooled_size

CONFIG = "videollm.json"
PLACEHOLDER = "<video>"
SYSTEM_PROMPT = "You are a video assistant. Answer briefly about the video; give times in seconds."
LM_TRAIN = ("frozen", "lora", "full")


@dataclass
class VideoLLMConfig:
    encoder: str = "tsm-tiny"  # a preset (fresh) or an encoder folder; the weights are saved with the model
    feature_layer: int = -2
    image_encoder: str | None = None  # VideoGPT+ dual encoder: a per-frame image tower
    num_frames: int = 8
    sample_fps: float = 1.0  # frames are taken at this rate, then uniformly thinned to num_frames
    image_size: int = 64  # the encoder's frame side; frames are read at tiles * image_size
    tiles: int = 1  # AnyRes: also encode tiles x tiles crops of the frame at full detail
    encoder_train: str = "frozen"  # frozen | full: whether instruct/dpo also train the video encoder(s)
    pool: str = "avg"  # none | avg | max | bilinear, per frame grid
    pool_stride: int = 2
    pool_order: str = "pool_then_project"  # or project_then_pool
    connector: str = "mlp"  # mlp | qformer | perceiver
    num_queries: int = 4  # qformer/perceiver: tokens per time slot
    connector_layers: int = 2
    lm: str = "smollm2"  # smollm2 | tiny | a model folder | a .gguf file
    lm_train: str = "lora"  # frozen | lora | full (what the instruct/dpo stages tune in the LM)
    lora_rank: int = 16
    rope_factor: int = 1  # linear RoPE scaling of the LM (ceil(needed / trained context))
    memory_tokens: int = 0  # > 0: a VideoLLaMB memory bridge reads long videos segment by segment
    memory_layers: int = 2
    segmenter: str | None = None  # referring segmentation: sam2-tiny (trained here) or a SAM-2 folder, prompted by [SEG]
    seg_size: int = 128  # sam2-tiny's input side in pixels
    system_prompt: str = SYSTEM_PROMPT
    max_new_tokens: int = 48
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.connector not in CONNECTORS:
            raise ConfigError(f"unknown connector {self.connector!r}; choose one of {', '.join(CONNECTORS)}")
        if self.pool_order not in ("pool_then_project", "project_then_pool"):
            raise ConfigError(f"pool_order must be pool_then_project or project_then_pool, got {self.pool_order!r}")
        if self.lm_train not in LM_TRAIN:
            raise ConfigError(f"lm_train must be one of {', '.join(LM_TRAIN)}, got {self.lm_train!r}")
        if self.encoder_train not in ("frozen", "full"):
            raise ConfigError(f"encoder_train must be frozen or full, got {self.encoder_train!r}")
        if self.num_frames < 1 or self.sample_fps <= 0 or self.pool_stride < 1 or self.tiles < 1:
            raise ConfigError("num_frames, pool_stride and tiles must be >= 1 and sample_fps > 0")

    @property
    def read_size(self) -> int:
        """Frame side in pixels to decode at (the encoder's size, times the AnyRes tiles)."""
        return self.image_size * self.tiles

    @classmethod
    def load(cls, path: Path) -> "VideoLLMConfig":
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path.parent}: not a Video-LLM (no {CONFIG}); train one with 'vidfm train videollm'") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e.msg})") from None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class VideoLLM(nn.Module):
    def __init__(self, config: VideoLLMConfig, encoder=None, lm=None, tokenizer=None, image_encoder=None, sam=None):
        super().__init__()
        from vidfm.models import resolve_encoder
        from vidfm.models.lm import load_lm, scale_rope

        config.validate()
        self.config = config
        self.encoder = encoder if encoder is not None else resolve_encoder(config.encoder, num_frames=config.num_frames, image_size=config.image_size)
        self.image_encoder = image_encoder
        if image_encoder is None and config.image_encoder:
            self.image_encoder = resolve_encoder(config.image_encoder, num_frames=config.num_frames, image_size=config.image_size)
        if lm is None:
            lm, tokenizer = load_lm(config.lm)
        self.lm, self.tokenizer = lm, tokenizer
        scale_rope(self.lm, config.rope_factor)
        self.encoder.requires_grad_(False).eval()
        if self.image_encoder is not None:
            self.image_encoder.requires_grad_(False).eval()
        d_lm = self.lm.config.hidden_size
        self.feature_dim = self._feature_dim(self.encoder)
        self.connector = self._connector(self.feature_dim, d_lm)
        self.image_connector = self._connector(self._feature_dim(self.image_encoder), d_lm) if self.image_encoder is not None else None
        self.post_project_pool = config.pool_order == "project_then_pool" and config.connector == "mlp"
        self.memory_bridge = None
        if config.memory_tokens:
            self.add_memory_bridge(config.memory_tokens, config.memory_layers)
        self.segmenter = None
        if config.segmenter:
            self.add_segmenter(config.segmenter, config.seg_size, sam)
        self.merged_lora = False  # a LoRA folded into the LM's weights: saving then writes the whole LM

    def add_memory_bridge(self, tokens: int = 32, layers: int = 2) -> None:
        """A fresh VideoLLaMB memory bridge in the LM's width (``vidfm.models.memory``)."""
        from vidfm.models.memory import MemoryBridge

        d_lm = self.lm.config.hidden_size
        heads = next(h for h in (8, 4, 2, 1) if d_lm % h == 0)
        self.config.memory_tokens, self.config.memory_layers = tokens, layers
        self.memory_bridge = MemoryBridge(d_lm, tokens, layers, heads).to(self.device)

    def add_segmenter(self, sam: str = "sam2-tiny", image_size: int = 128, model=None) -> None:
        """The ``[SEG]`` token (added to the tokenizer and the LM's vocabulary) and a SAM-2
        prompted by its hidden state (``vidfm.models.segmentation``); ``model``: an already
        loaded ``Sam2Model`` (else ``sam`` is loaded: ``sam2-tiny`` or a folder)."""
        from vidfm.models.segmentation import SEG_TOKEN, ReferringSegmenter, load_sam2

        if SEG_TOKEN not in self.tokenizer.get_vocab():
            self.tokenizer.add_special_tokens({"additional_special_tokens": [SEG_TOKEN]})
        if self.lm.get_input_embeddings().weight.shape[0] < len(self.tokenizer):
            self.lm.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        self.config.segmenter, self.config.seg_size = sam, image_size
        self.segmenter = ReferringSegmenter(model if model is not None else load_sam2(sam, image_size), self.lm.config.hidden_size).to(self.device)

    def lm_lora_targets(self) -> list[str]:
        """The LM's attention and MLP projections, where its LoRA goes."""
        names = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
        return sorted({n for n, _ in self.lm.named_modules() if n.rsplit(".", 1)[-1] in names})

    @property
    def seg_token_id(self) -> int:
        from vidfm.models.segmentation import SEG_TOKEN

        if self.segmenter is None:
            raise ConfigError("this Video-LLM cannot segment (train one with 'vidfm train videollm --stage segment')")
        return self.tokenizer.convert_tokens_to_ids(SEG_TOKEN)

    # -- pieces --------------------------------------------------------------------------
    def _feature_dim(self, encoder) -> int:
        with torch.no_grad():
            out = encoder(torch.zeros(1, self.config.num_frames, 3, self.config.image_size, self.config.image_size), output_hidden_states=True)
        return encoder.grid_tokens(out, self.config.feature_layer).shape[-1]

    def _connector(self, dim_in: int, dim_out: int) -> nn.Module:
        c = self.config
        return build_connector(c.connector, dim_in, dim_out, c.num_queries, c.connector_layers)

    @property
    def encoder_trains(self) -> bool:
        return any(p.requires_grad for p in self.encoder.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        for enc in (self.encoder, self.image_encoder):
            if enc is not None and not any(p.requires_grad for p in enc.parameters()):
                enc.eval()  # frozen: BatchNorm statistics and dropout stay as trained
        return self

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    def embed_text(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0].to(self.device)
        return self.lm.get_input_embeddings()(ids)

    # -- vision ----------------------------------------------------------------------------
    def encode_video(self, clips: torch.Tensor, frame_times: list, durations: list) -> list[dict]:
        """Encoder features of ``clips (B, T, C, H, W)`` in [0, 1]: per video a ``grid``
        (t, h, w, D) at ``feature_layer``, the ``times`` of its t slots (the first frame of
        each) and the ``duration``; with an image tower also ``image_grid``. Gradients flow
        only while the encoder trains."""
        c = self.config
        if clips.ndim != 5 or clips.shape[1] != c.num_frames or clips.shape[-1] != c.read_size or clips.shape[-2] != c.read_size:
            raise ConfigError(f"expected clips (B, {c.num_frames}, 3, {c.read_size}, {c.read_size}), got {tuple(clips.shape)}")
        clips = clips.to(self.device)
        tiles = None
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.encoder_trains):
            if c.tiles > 1:
                crops = rearrange(clips, "b t c (i h) (j w) -> (b i j) t c h w", i=c.tiles, j=c.tiles)
                tiles = self.encoder.grid_tokens(self.encoder(crops, output_hidden_states=True), c.feature_layer)
                tiles = rearrange(tiles, "(b i j) t h w d -> b t (i h) (j w) d", i=c.tiles, j=c.tiles)
                clips = F.interpolate(clips.flatten(0, 1), size=(c.image_size, c.image_size), mode="bilinear", antialias=True, align_corners=False).unflatten(0, clips.shape[:2])
            grid = self.encoder.grid_tokens(self.encoder(clips, output_hidden_states=True), c.feature_layer)
            image = None
            if self.image_encoder is not None:
                image = self.image_encoder.grid_tokens(self.image_encoder(clips, output_hidden_states=True), c.feature_layer)
        feats = []
        for i in range(len(clips)):
            t = grid.shape[1]
            first = [int(k * c.num_frames / t) for k in range(t)]
            item = {"grid": grid[i], "times": torch.tensor([float(frame_times[i][k]) for k in first]), "duration": float(durations[i])}
            if image is not None:
                item["image_grid"] = image[i]
            if tiles is not None:
                item["tile_grid"] = tiles[i]
            feats.append(item)
        return feats

    def slot_tokens(self, grid: torch.Tensor, connector: nn.Module) -> torch.Tensor:
        """(t, h, w, D) features -> (t, n, D_lm) language-model embeddings per time slot."""
        c = self.config
        grid = grid.to(self.device, dtype=next(connector.parameters()).dtype)
        if c.connector != "mlp":  # resamplers take the whole slot and return num_queries tokens
            return connector(grid.flatten(1, 2))
        if self.post_project_pool:
            return pool_grid(connector(grid), c.pool, c.pool_stride).flatten(1, 2)
        return connector(pool_grid(grid, c.pool, c.pool_stride)).flatten(1, 2)

    def tokens_per_slot(self, h: int, w: int) -> int:
        c = self.config
        if c.connector != "mlp":
            return c.num_queries
        ph, pw = pooled_size(h, w, c.pool, c.pool_stride)
        return ph * pw

    def visual_token_count(self, features: dict) -> int:
        """How many embeddings a video contributes (computed from the config, checked
        against what the connector makes)."""
        if "segments" in features or "memory" in features:
            return self.config.memory_tokens
        t, h, w, _ = features["grid"].shape
        n = t * self.tokens_per_slot(h, w)
        if "tile_grid" in features:
            n += t * self.tokens_per_slot(*features["tile_grid"].shape[1:3])
        if "image_grid" in features:
            T, ih, iw, _ = features["image_grid"].shape
            n += T * self.tokens_per_slot(ih, iw)
        return n

    def visual_tokens(self, features: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(t, n, D_lm) tokens per time slot (the global view's, then AnyRes tiles'), and
        (T, n', D_lm) image-tower tokens per frame or None."""
        slots = self.slot_tokens(features["grid"], self.connector)
        if "tile_grid" in features:
            slots = torch.cat([slots, self.slot_tokens(features["tile_grid"], self.connector)], 1)
        images = self.slot_tokens(features["image_grid"], self.image_connector) if "image_grid" in features else None
        return slots, images

    def segment_tokens(self, features: dict) -> torch.Tensor:
        """One segment's (n, D_lm) tokens for the memory bridge: every slot's (and its
        frames' image tokens), in order."""
        slots, images = self.visual_tokens(features)
        return torch.cat([slots.flatten(0, 1)] + ([] if images is None else [images.flatten(0, 1)]))

    def memory_block(self, features: dict) -> torch.Tensor:
        """A long video through the memory bridge: its duration and part count as text, then
        the M memory tokens. ``features``: ``segments`` (a list of per-segment features, run
        through the bridge here: training) or ``memory`` (already read: a stream)."""
        if self.memory_bridge is None:
            raise ConfigError("this model has no memory bridge (train one with --memory-tokens)")
        if "memory" in features:
            memory, parts = features["memory"].to(self.device), features["parts"]
        else:
            memory, parts = self.memory_bridge([self.segment_tokens(f) for f in features["segments"]]), len(features["segments"])
        if memory.shape[0] != self.visual_token_count(features):
            raise ConfigError(f"the memory has {memory.shape[0]} tokens where the config gives {self.config.memory_tokens}")
        return torch.cat([self.embed_text(f"Video of {features['duration']:.1f} s in {parts} parts. Memory:"), memory])

    def video_block(self, features: dict) -> torch.Tensor:
        """The video's part of the prompt as embeddings: duration, then per slot its time
        as text followed by its visual tokens (and its frames' image tokens)."""
        if "segments" in features or "memory" in features:
            return self.memory_block(features)
        grid = features["grid"]
        if grid.ndim != 4 or grid.shape[-1] != self.feature_dim:
            raise ConfigError(f"video features of shape {tuple(grid.shape)} do not fit this model (expected (t, h, w, {self.feature_dim}))")
        slots, images = self.visual_tokens(features)
        per_image = 0 if images is None else images.shape[0] // slots.shape[0]
        pieces = [self.embed_text(f"Video of {features['duration']:.1f} s.")]
        for k, time in enumerate(features["times"].tolist()):
            pieces.append(self.embed_text(f" {time:.1f} s:"))
            if images is not None:
                pieces.append(images[k * per_image : (k + 1) * per_image].flatten(0, 1))
            pieces.append(slots[k])
        block = torch.cat(pieces)
        expected = self.visual_token_count(features)
        visual = slots.shape[0] * slots.shape[1] + (0 if images is None else images.shape[0] * images.shape[1])
        if visual != expected:
            raise ConfigError(f"the connector made {visual} visual tokens where the config gives {expected}")
        return block

    # -- prompts ---------------------------------------------------------------------------
    def _turns(self, messages: list[dict]) -> list[dict]:
        """The system prompt, then the conversation with the video placeholder in its first
        user turn."""
        if not messages or messages[0]["role"] != "user":
            raise ConfigError("a conversation starts with a user message")
        for m in messages:
            if m["role"] == "user" and not str(m["content"]).strip():
                raise ConfigError("the question is empty; ask something about the video")
        turns = [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []
        return turns + [{**messages[0], "content": f"{PLACEHOLDER}\n{messages[0]['content']}"}] + list(messages[1:])

    def _render(self, turns: list[dict], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=generation_prompt)

    def prompt_parts(self, messages: list[dict]) -> tuple[str, str]:
        """The chat-template text before and after the video placeholder, ready for the
        next assistant turn. ``messages``: the conversation so far (user/assistant)."""
        pre, _, post = self._render(self._turns(messages), True).partition(PLACEHOLDER)
        return pre, post

    def _text_and_video(self, text: str, features: dict) -> torch.Tensor:
        if PLACEHOLDER not in text:
            return self.embed_text(text)
        pre, _, post = text.partition(PLACEHOLDER)
        return torch.cat([self.embed_text(pre), self.video_block(features), self.embed_text(post)])

    def sequence(self, features: dict, messages: list[dict], answer: str | None = None):
        """(embeddings (L, D), labels (L,)) of a conversation about the video. Every
        assistant turn in ``messages`` (and ``answer``, appended as the last one) carries
        labels, its end-of-turn token included; everything else is -100. Without a final
        assistant turn the sequence ends ready for the next answer."""
        messages = list(messages) + ([{"role": "assistant", "content": answer}] if answer is not None else [])
        turns = self._turns(messages)
        embed = self.lm.get_input_embeddings()
        pieces, labels, done = [], [], ""
        for i, turn in enumerate(turns):
            if turn["role"] != "assistant":
                continue
            prompt = self._render(turns[:i], True)
            if not prompt.startswith(done):
                raise ConfigError("the tokenizer's chat template does not extend turn by turn; train on single questions")
            piece = self._text_and_video(prompt[len(done) :], features)
            ids = self.tokenizer(turn["content"] + self.tokenizer.eos_token, add_special_tokens=False, return_tensors="pt").input_ids[0].to(self.device)
            pieces += [piece, embed(ids)]
            labels += [torch.full((piece.shape[0],), -100, dtype=torch.long, device=self.device), ids]
            done = prompt + turn["content"] + self.tokenizer.eos_token
        if turns[-1]["role"] != "assistant":
            piece = self._text_and_video(self._render(turns, True)[len(done) :], features)
            pieces.append(piece)
            labels.append(torch.full((piece.shape[0],), -100, dtype=torch.long, device=self.device))
        return torch.cat(pieces), torch.cat(labels)

    def batch(self, items: list[tuple[torch.Tensor, torch.Tensor]], left: bool) -> dict:
        """Pad sequences to one length (left for generation, right for training)."""
        length = max(e.shape[0] for e, _ in items)
        d = items[0][0].shape[1]
        pad = self.lm.get_input_embeddings()(torch.tensor([self.tokenizer.pad_token_id], device=self.device))[0]
        embeds = pad.expand(len(items), length, d).clone()
        labels = torch.full((len(items), length), -100, dtype=torch.long, device=self.device)
        mask = torch.zeros(len(items), length, dtype=torch.long, device=self.device)
        for i, (e, lab) in enumerate(items):
            s = length - e.shape[0] if left else 0
            embeds[i, s : s + e.shape[0]], labels[i, s : s + e.shape[0]], mask[i, s : s + e.shape[0]] = e, lab, 1
        return {"inputs_embeds": embeds, "attention_mask": mask, "labels": labels}

    def check_context(self, length: int) -> None:
        from vidfm.models.lm import context_length, rope_factor

        limit = context_length(self.lm) * self.config.rope_factor
        if length > limit:
            raise ConfigError(f"the prompt needs {length} positions but the language model covers {limit}; set rope_factor to "
                              f"{rope_factor(length, context_length(self.lm))} (linear RoPE scaling), or use fewer frames / more pooling")  # fmt: skip

    # -- training --------------------------------------------------------------------------
    def forward(self, features: list[dict], messages: list[list[dict]], answers: list[str] | None = None):
        """Language-model loss of the assistant turns (and ``answers``, one more turn per
        conversation) given the videos."""
        answers = answers if answers is not None else [None] * len(messages)
        batch = self.batch([self.sequence(f, m, a) for f, m, a in zip(features, messages, answers)], left=False)
        self.check_context(batch["inputs_embeds"].shape[1])
        return self.lm(**batch)

    def seg_hidden(self, features: list[dict], messages: list[list[dict]], answers: list[str]):
        """(language-model output with its loss, (n, D_lm) last hidden states at every
        ``[SEG]`` of the answers, (n,) which conversation each came from): what prompts
        the segmenter (Sa2VA / LISA take the hidden state at the token's position)."""
        batch = self.batch([self.sequence(f, m, a) for f, m, a in zip(features, messages, answers)], left=False)
        self.check_context(batch["inputs_embeds"].shape[1])
        seg = batch["labels"] == self.seg_token_id
        # nothing after [SEG] is a target: its hidden state belongs to the mask decoder (the
        # next-token loss there makes every [SEG] state the same); answering stops at [SEG]
        batch["labels"] = batch["labels"].masked_fill(seg.long().cumsum(1) - seg.long() > 0, -100)
        out = self.lm(**batch, output_hidden_states=True)
        rows, cols = seg.nonzero(as_tuple=True)
        return out, out.hidden_states[-1][rows, cols], rows

    def answer_logprobs(self, features: list[dict], messages: list[list[dict]], answers: list[str]) -> torch.Tensor:
        """(B,) summed log-probabilities of each answer's tokens (what DPO compares)."""
        batch = self.batch([self.sequence(f, m, a) for f, m, a in zip(features, messages, answers)], left=False)
        logits = self.lm(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
        labels = batch["labels"][:, 1:]
        keep = labels != -100
        logp = torch.gather(F.log_softmax(logits, -1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (logp * keep).sum(1)

    # -- answering -------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, features: list[dict], messages: list[list[dict]], max_new_tokens: int | None = None, streamer=None, min_new_tokens: int = 0,
                 keep_seg: bool = False) -> list[str]:  # fmt: skip
        """Greedy answers (deterministic; the same whatever the batch size).
        ``min_new_tokens`` holds back the end of turn (e.g. to time a fixed length);
        ``keep_seg`` stops at ``[SEG]`` and keeps it in the text (other special tokens are
        dropped)."""
        batch = self.batch([self.sequence(f, m) for f, m in zip(features, messages)], left=True)
        self.check_context(batch["inputs_embeds"].shape[1] + (max_new_tokens or self.config.max_new_tokens))
        stop = [self.tokenizer.eos_token_id] + ([self.seg_token_id] if keep_seg else [])
        out = self.lm.generate(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"],
                               max_new_tokens=max_new_tokens or self.config.max_new_tokens, do_sample=False,
                               pad_token_id=self.tokenizer.pad_token_id, eos_token_id=stop, streamer=streamer,
                               min_new_tokens=min_new_tokens)  # fmt: skip
        if keep_seg:
            seg = self.seg_token_id
            specials = set(self.tokenizer.all_special_ids) - {seg}
            out = [[t for t in row.tolist() if t not in specials] for row in out]
        return [self.tokenizer.decode(row, skip_special_tokens=not keep_seg).strip() for row in out]

    # -- persistence -----------------------------------------------------------------------
    def save_pretrained(self, path) -> Path:
        """``videollm.json``, ``encoder/`` (+ ``image_encoder/``), ``connector.safetensors``,
        ``tokenizer/`` (+ ``segmenter/``, a SAM-2 folder), and the language model by what
        was tuned: nothing (frozen: named in the config), ``lm_lora/`` (peft format), or
        ``lm/`` (a full model folder: the tiny LM, a fully tuned one, or one a LoRA was
        merged into)."""
        from safetensors.torch import save_file

        from vidfm.adapt.lora import has_lora, merge_lora, save_lora
        from vidfm.files import atomic_save_dir
        from vidfm.models import save_encoder

        heads = {f"connector.{k}": v for k, v in self.connector.state_dict().items()}
        for name in ("image_connector", "memory_bridge"):
            if getattr(self, name) is not None:
                heads.update({f"{name}.{k}": v for k, v in getattr(self, name).state_dict().items()})
        if self.segmenter is not None:
            heads.update({f"segmenter.{k}": v for k, v in self.segmenter.state_dict().items() if not k.startswith("sam.")})  # SAM-2: its own folder
        whole_lm = self.config.lm == "tiny" or self.config.lm_train == "full" or self.merged_lora

        def write(d: Path):
            (d / CONFIG).write_text(json.dumps(asdict(self.config), indent=2))
            save_encoder(self.encoder, d / "encoder")
            if self.image_encoder is not None:
                save_encoder(self.image_encoder, d / "image_encoder")
            save_file({k: v.detach().contiguous().clone() for k, v in heads.items()}, d / "connector.safetensors")
            self.tokenizer.save_pretrained(d / "tokenizer")
            if self.segmenter is not None:
                self.segmenter.sam.save_pretrained(d / "segmenter")
            if whole_lm:  # a complete model folder, usable on its own (a LoRA on it folded in)
                (merge_lora(copy.deepcopy(self.lm)) if has_lora(self.lm) else self.lm).save_pretrained(d / "lm")
                self.tokenizer.save_pretrained(d / "lm")
            elif has_lora(self.lm):
                save_lora(self.lm, d / "lm_lora")

        return atomic_save_dir(Path(path), write)

    @classmethod
    def from_pretrained(cls, path, merge_lora: bool = True) -> "VideoLLM":
        """A saved Video-LLM folder (or a training run folder: its ``best/``)."""
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        from vidfm.adapt.lora import load_lora
        from vidfm.files import model_folder
        from vidfm.models import load_encoder
        from vidfm.models.lm import load_lm, prepare_tokenizer

        path = model_folder(path, CONFIG)
        if not path.exists():
            raise ConfigError(f"{path}: no such Video-LLM folder")
        config = VideoLLMConfig.load(path / CONFIG)
        lm, tokenizer = load_lm(str(path / "lm") if (path / "lm").is_dir() else config.lm)
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(str(path / "tokenizer"), local_files_only=True))
        if lm.get_input_embeddings().weight.shape[0] < len(tokenizer):  # [SEG] was added to a base LM named in the config
            lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        merged = False
        if (path / "lm_lora").is_dir():
            load_lora(lm, path / "lm_lora", merge=merge_lora)
            merged = merge_lora
        image = load_encoder(path / "image_encoder") if (path / "image_encoder").is_dir() else None
        sam = None
        if config.segmenter:
            from vidfm.models.segmentation import load_sam2

            sam = load_sam2(str(path / "segmenter"))
        model = cls(config, encoder=load_encoder(path / "encoder"), lm=lm, tokenizer=tokenizer, image_encoder=image, sam=sam)
        model.merged_lora = merged or (path / "lm").is_dir()  # an LM saved whole stays whole
        state = load_file(path / "connector.safetensors")
        for name in ("connector", "image_connector", "memory_bridge", "segmenter"):
            module = getattr(model, name)
            if module is None:
                continue
            part = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
            if name == "segmenter":  # SAM-2's weights came from segmenter/
                part = {**{k: v for k, v in module.state_dict().items() if k.startswith("sam.")}, **part}
            try:
                module.load_state_dict(part)
            except RuntimeError as e:
                raise ConfigError(f"{path}/connector.safetensors: does not fit {CONFIG} ({str(e).splitlines()[0][:120]})") from None
        return model.eval()
