"""Caption augmentation: synonym rewriting and action-word generalisation.

A small built-in lexicon keeps this offline and deterministic; pass your own ``lexicon``
(word -> alternatives) for other domains. Multi-word entries are matched before single
words, whole words only, so "moves up" is rewritten as a unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

# Synonyms: same meaning, different words.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "moves": ("travels", "slides", "shifts"),
    "grows": ("expands", "enlarges", "gets bigger"),
    "shrinks": ("contracts", "gets smaller", "diminishes"),
    "rotates": ("spins", "turns", "revolves"),
    "bounces": ("hops", "jumps", "rebounds"),
    "appears": ("shows up", "emerges", "fades in"),
    "disappears": ("vanishes", "fades out", "goes away"),
    "small": ("little", "tiny"),
    "large": ("big", "huge"),
    "object": ("shape", "item", "thing"),
    "video": ("clip", "footage"),
    "quickly": ("fast", "rapidly"),
    "slowly": ("gradually", "leisurely"),
    "person": ("individual", "someone"),
    "man": ("guy", "gentleman"),
    "woman": ("lady",),
    "car": ("vehicle", "automobile"),
}
# Action-word generalisation: a specific verb -> more general or sibling verbs.
ACTION_GENERALISATION: dict[str, tuple[str, ...]] = {
    "walk": ("stroll", "move", "wander"),
    "walks": ("strolls", "moves", "wanders"),
    "walking": ("strolling", "moving", "wandering"),
    "run": ("jog", "sprint", "move quickly"),
    "runs": ("jogs", "sprints", "moves quickly"),
    "running": ("jogging", "sprinting", "moving quickly"),
    "jump": ("leap", "hop"),
    "jumps": ("leaps", "hops"),
    "slides": ("glides", "moves"),
    "drifts": ("floats", "moves"),
    "sinks": ("drops", "descends"),
    "rises": ("ascends", "climbs"),
    "talk": ("speak", "chat"),
    "talks": ("speaks", "chats"),
    "eat": ("consume", "have food"),
    "eats": ("consumes", "has food"),
}


def augment_caption(
    caption: str,
    rng: np.random.Generator | int | None = None,
    *,
    p: float = 0.5,
    lexicon: dict[str, tuple[str, ...]] | None = None,
) -> str:
    """Rewrite each lexicon word of ``caption`` with probability ``p`` to one of its
    alternatives. Deterministic for a given seed/generator; case of the first letter kept."""
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    table = lexicon if lexicon is not None else {**SYNONYMS, **ACTION_GENERALISATION}
    if not table:
        return caption
    keys = sorted(table, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in keys) + r")\b", re.IGNORECASE)

    def swap(m: re.Match) -> str:
        word = m.group(0)
        options = table.get(word.lower())
        if not options or g.random() >= p:
            return word
        new = options[int(g.integers(len(options)))]
        return new[:1].upper() + new[1:] if word[:1].isupper() else new

    return pattern.sub(swap, caption)


def drop_tokens(caption: str, rng: np.random.Generator | int | None = None, p: float = 0.1) -> str:
    """Modality dropout for text: drop each word with probability ``p`` (keeps at least one)."""
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    words = caption.split()
    kept = [w for w in words if g.random() >= p]
    return " ".join(kept or words[:1])


def translate_caption(caption: str, rng: np.random.Generator | int | None = None, *, languages=("zh", "es", "fr", "de", "ja"), p: float = 0.5) -> str:
    """With probability ``p``, the caption rewritten into one of ``languages`` by the
    built-in lexicon (``vidfm.data.lexicon``): cross-language caption alignment for
    training a multilingual text tower. A lexicon rewriting, not a translation model."""
    from vidfm.data.lexicon import from_english

    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if not languages or g.random() >= p:
        return caption
    return from_english(caption, languages[int(g.integers(len(languages)))])


CAPTION_AUGMENTS = ("synonyms", "drop", "translate")


def caption_augmenter(names) -> Callable[[str, np.random.Generator], str]:
    """One ``(caption, rng) -> caption`` applying the named augmentations: ``translate``
    (half the captions into another language by the built-in lexicon; for a multilingual
    tower), else ``synonyms`` (lexicon rewriting; the lexicon would not know the synonyms,
    so a caption is translated or rewritten, never both), then ``drop`` (10 % word dropout)."""
    from vidfm.errors import ConfigError

    unknown = [n for n in names if n not in CAPTION_AUGMENTS]
    if unknown:
        raise ConfigError(f"unknown caption augmentation {unknown[0]!r}; choose from {', '.join(CAPTION_AUGMENTS)}")

    def apply(caption: str, rng: np.random.Generator) -> str:
        out = translate_caption(caption, rng) if "translate" in names else caption
        if out == caption and "synonyms" in names:
            out = augment_caption(caption, rng)
        return drop_tokens(out, rng) if "drop" in names else out

    return apply
