"""Caption metrics as the COCO caption evaluation computes them: BLEU-1..4, METEOR, ROUGE-L
and CIDEr-D, over ``{video: [references]}`` and ``{video: candidate}``.

BLEU, ROUGE-L and CIDEr-D are computed here in Python (no Java, fast enough to run inside
training loops) with the COCO toolkit's exact definitions, quirks included: corpus BLEU with
the "closest" reference length and its 1e-15/1e-9 smoothing; ROUGE-L from the best LCS
precision and recall over the references with beta 1.2; CIDEr-D with document frequencies
from the evaluated references, clipped tf-idf n-gram cosines, a Gaussian length penalty
(sigma 6, on the bigram count, as the reference code does) and a factor 10. A test checks
every number against pycocoevalcap on the same pairs.

METEOR needs WordNet and paraphrase tables: it runs pycocoevalcap's METEOR 1.5 jar (Java)
when both are present, and is reported as unavailable otherwise. SPICE needs Stanford
CoreNLP models downloaded at first use (and does not run on Java 16+): unsupported offline.

Tokenisation follows the toolkit's PTB tokenizer: lower case, punctuation split off and
dropped, contractions split ("don't" -> "do n't").
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from vidfm.errors import ConfigError

_CONTRACTION = re.compile(r"(\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_PUNCT = re.compile(r"[.,!?;:\"()\[\]{}`']")


def tokenize(text: str) -> str:
    """PTB-style: lower-cased tokens joined by single spaces, punctuation removed."""
    text = _CONTRACTION.sub(lambda m: f"{m.group(1)} {m.group(2).replace(chr(39), chr(1))}", text.lower().replace("\n", " "))
    text = _PUNCT.sub(" ", text).replace(chr(1), "'")  # contractions keep their apostrophe
    text = re.sub(r"(?<=\s)-+(?=\s)|^-+|-+$", " ", text)
    return " ".join(text.split())


def _ngrams(words: list[str], n: int) -> Counter:
    counts = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


def bleu(refs: dict, cands: dict, n: int = 4) -> list[float]:
    """Corpus BLEU-1..n (already-tokenised strings)."""
    tiny, small = 1e-15, 1e-9
    correct, guess = [0] * n, [0] * n
    test_total = ref_total = 0
    for key, cand in cands.items():
        words = cand.split()
        counts = _ngrams(words, n)
        max_ref = Counter()
        lengths = []
        for r in refs[key]:
            rw = r.split()
            lengths.append(len(rw))
            for g, c in _ngrams(rw, n).items():
                max_ref[g] = max(max_ref[g], c)
        test_total += len(words)
        if len(cands) == 1:
            ref_total += sum(lengths) / len(lengths)  # the toolkit's "average" for a single segment
        else:
            ref_total += min((abs(L - len(words)), L) for L in lengths)[1]  # "closest"
        for k in range(n):
            guess[k] += max(0, len(words) - k)
        for g, c in counts.items():
            correct[len(g) - 1] += min(max_ref.get(g, 0), c)
    scores, product = [], 1.0
    for k in range(n):
        product *= (correct[k] + tiny) / (guess[k] + small)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (test_total + tiny) / (ref_total + small)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(refs: dict, cands: dict, beta: float = 1.2) -> float:
    scores = []
    for key, cand in cands.items():
        c = cand.split(" ")
        prec, rec = [], []
        for r in refs[key]:
            rw = r.split(" ")
            lcs = _lcs(rw, c)
            prec.append(lcs / len(c))
            rec.append(lcs / len(rw))
        p, r = max(prec), max(rec)
        scores.append((1 + beta**2) * p * r / (r + beta**2 * p) if p and r else 0.0)
    return float(np.mean(scores))


def cider_d(refs: dict, cands: dict, n: int = 4, sigma: float = 6.0) -> float:
    keys = list(cands)
    ref_counts = {k: [_ngrams(r.split(), n) for r in refs[k]] for k in keys}
    df = Counter()
    for k in keys:
        for g in {g for counts in ref_counts[k] for g in counts}:
            df[g] += 1
    log_n = math.log(float(len(keys)))

    def vec(counts):
        v = [dict() for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for g, tf in counts.items():
            i = len(g) - 1
            v[i][g] = tf * (log_n - math.log(max(1.0, df[g])))
            norm[i] += v[i][g] ** 2
            if i == 1:  # the reference implementation's length counts bigrams
                length += tf
        return v, [math.sqrt(x) for x in norm], length

    scores = []
    for k in keys:
        vh, nh, lh = vec(_ngrams(cands[k].split(), n))
        total = np.zeros(n)
        for counts in ref_counts[k]:
            vr, nr, lr = vec(counts)
            for i in range(n):
                val = sum(min(w, vr[i].get(g, 0.0)) * vr[i].get(g, 0.0) for g, w in vh[i].items())
                if nh[i] and nr[i]:
                    val /= nh[i] * nr[i]
                total[i] += val * math.exp(-((lh - lr) ** 2) / (2 * sigma**2))
        scores.append(float(np.mean(total)) / len(ref_counts[k]) * 10.0)
    return float(np.mean(scores))


def meteor(refs: dict, cands: dict) -> float | None:
    """METEOR 1.5 through pycocoevalcap's jar, or None when Java or the package is missing."""
    import shutil

    if shutil.which("java") is None:
        return None
    try:
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError:
        return None
    scorer = Meteor()
    try:
        return float(scorer.compute_score({k: refs[k] for k in cands}, {k: [v] for k, v in cands.items()})[0])
    finally:
        del scorer


def caption_metrics(references: dict, candidates: dict, with_meteor: bool = True) -> dict:
    """``references``: {id: [caption, ...]}; ``candidates``: {id: caption}. Every candidate
    needs references. -> BLEU-1..4, METEOR (or None), ROUGE-L, CIDEr-D, count."""
    if not candidates:
        raise ConfigError("no candidate captions to score")
    missing = [k for k in candidates if not references.get(k)]
    if missing:
        raise ConfigError(f"no reference captions for {len(missing)} candidates (e.g. {missing[0]!r})")
    refs = {k: [tokenize(r) for r in references[k]] for k in candidates}
    cands = {k: tokenize(v) for k, v in candidates.items()}
    b = bleu(refs, cands)
    out = {f"BLEU-{i + 1}": b[i] for i in range(4)}
    out["METEOR"] = meteor(refs, cands) if with_meteor else None
    out["ROUGE-L"] = rouge_l(refs, cands)
    out["CIDEr-D"] = cider_d(refs, cands)
    out["count"] = len(cands)
    return out
