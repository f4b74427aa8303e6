"""A built-in multilingual lexicon: Chinese, Japanese, Spanish, French and German words for
colours, shapes, sizes and actions, mapped to the English words vidfm's captions use.

This is a lexicon, not a multilingual model. It lets an English text tower (the bundled
all-MiniLM-L6-v2) answer ``vidfm search IDX "红色的圆向左移动"`` by rewriting the query
word by word into English ("red circle moves to the left"). It covers the synthetic
world's vocabulary and little else: words it does not know are kept (Latin scripts) or
dropped (Chinese, Japanese) and reported. The real alternative is a multilingual text
model: give any Hugging Face folder (e.g. paraphrase-multilingual-MiniLM-L12-v2) as
``--text-model`` when pre-training, and pass ``--no-lexicon`` at query time.

Matching is longest-first over the whole phrase table, so "变大" (grows) wins over
"大" (large) and "se mueve a la izquierda" over "izquierda".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

LEXICON: dict[str, dict[str, str]] = {
    "zh": {
        "红色": "red", "红": "red", "绿色": "green", "绿": "green", "蓝色": "blue", "蓝": "blue", "黄色": "yellow", "黄": "yellow",
        "紫色": "purple", "紫": "purple", "橙色": "orange", "橘色": "orange", "橙": "orange",
        "圆形": "circle", "圆圈": "circle", "圆": "circle", "正方形": "square", "方形": "square", "方块": "square",
        "三角形": "triangle", "三角": "triangle", "十字形": "cross", "十字": "cross",
        "小的": "small", "小": "small", "中等": "medium", "大的": "large", "大": "large",
        "向左移动": "moves to the left", "往左移动": "moves to the left", "左移": "moves to the left",
        "向右移动": "moves to the right", "往右移动": "moves to the right", "右移": "moves to the right",
        "向上移动": "moves up", "往上移动": "moves up", "上升": "moves up", "向下移动": "moves down", "往下移动": "moves down",
        "下降": "moves down", "下沉": "moves down", "移动": "moves", "向左": "to the left", "向右": "to the right",
        "变大": "grows", "长大": "grows", "放大": "grows", "变小": "shrinks", "缩小": "shrinks", "旋转": "rotates", "转动": "rotates",
        "改变颜色": "changes colour", "变色": "changes colour", "变成": "turns", "弹跳": "bounces", "跳动": "bounces", "反弹": "bounces",
        "出现": "appears", "消失": "disappears", "保持不动": "stays still", "静止": "stays still", "不动": "stays still",
    },
    "ja": {
        "赤い": "red", "赤": "red", "緑色": "green", "緑": "green", "青い": "blue", "青": "blue", "黄色い": "yellow", "黄色": "yellow",
        "紫色": "purple", "紫": "purple", "オレンジ": "orange", "橙色": "orange",
        "円": "circle", "丸": "circle", "正方形": "square", "四角": "square", "三角形": "triangle", "三角": "triangle", "十字": "cross",
        "小さい": "small", "中くらい": "medium", "大きい": "large",
        "左に動く": "moves to the left", "左へ移動": "moves to the left", "右に動く": "moves to the right", "右へ移動": "moves to the right",
        "上に動く": "moves up", "上がる": "moves up", "下に動く": "moves down", "下がる": "moves down",
        "大きくなる": "grows", "小さくなる": "shrinks", "回転する": "rotates", "回る": "rotates", "跳ねる": "bounces",
        "現れる": "appears", "消える": "disappears", "動かない": "stays still", "止まっている": "stays still", "色が変わる": "changes colour",
    },
    "es": {
        "rojo": "red", "roja": "red", "verde": "green", "azul": "blue", "amarillo": "yellow", "amarilla": "yellow",
        "morado": "purple", "morada": "purple", "púrpura": "purple", "naranja": "orange",
        "círculo": "circle", "cuadrado": "square", "triángulo": "triangle", "cruz": "cross",
        "pequeño": "small", "pequeña": "small", "mediano": "medium", "mediana": "medium", "grande": "large",
        "se mueve a la izquierda": "moves to the left", "se mueve a la derecha": "moves to the right", "se mueve hacia arriba": "moves up",
        "se mueve hacia abajo": "moves down", "sube": "moves up", "baja": "moves down", "se mueve": "moves", "crece": "grows",
        "se encoge": "shrinks", "gira": "rotates", "rebota": "bounces", "aparece": "appears", "desaparece": "disappears",
        "se queda quieto": "stays still", "se queda quieta": "stays still", "cambia de color": "changes colour",
        "izquierda": "left", "derecha": "right",
    },
    "fr": {
        "rouge": "red", "vert": "green", "verte": "green", "bleu": "blue", "bleue": "blue", "jaune": "yellow",
        "violet": "purple", "violette": "purple", "cercle": "circle", "rond": "circle", "carré": "square", "croix": "cross",
        "petit": "small", "petite": "small", "moyen": "medium", "moyenne": "medium", "grand": "large", "grande": "large",
        "se déplace vers la gauche": "moves to the left", "se déplace vers la droite": "moves to the right", "va à gauche": "moves to the left",
        "va à droite": "moves to the right", "monte": "moves up", "descend": "moves down", "se déplace": "moves",
        "grandit": "grows", "rétrécit": "shrinks", "tourne": "rotates", "rebondit": "bounces", "apparaît": "appears",
        "disparaît": "disappears", "reste immobile": "stays still", "change de couleur": "changes colour", "gauche": "left", "droite": "right",
    },
    "de": {
        "rot": "red", "rote": "red", "roter": "red", "rotes": "red", "grün": "green", "grüne": "green", "grüner": "green", "grünes": "green",
        "blau": "blue", "blaue": "blue", "blauer": "blue", "blaues": "blue", "gelb": "yellow", "gelbe": "yellow", "gelber": "yellow",
        "gelbes": "yellow", "lila": "purple", "violett": "purple", "kreis": "circle", "quadrat": "square", "dreieck": "triangle", "kreuz": "cross",
        "klein": "small", "kleine": "small", "kleiner": "small", "kleines": "small", "mittelgroß": "medium", "groß": "large", "große": "large",
        "großer": "large", "großes": "large", "bewegt sich nach links": "moves to the left", "bewegt sich nach rechts": "moves to the right",
        "bewegt sich nach oben": "moves up", "bewegt sich nach unten": "moves down", "steigt": "moves up", "sinkt": "moves down",
        "bewegt sich": "moves", "wächst": "grows", "schrumpft": "shrinks", "dreht sich": "rotates", "springt": "bounces", "hüpft": "bounces",
        "erscheint": "appears", "verschwindet": "disappears", "bleibt stehen": "stays still", "steht still": "stays still",
        "wechselt die farbe": "changes colour", "links": "left", "rechts": "right",
    },
}  # fmt: skip
#: words that carry no meaning for the towers (articles, particles): dropped
FUNCTION_WORDS: dict[str, set[str]] = {
    "zh": {"的", "一个", "一", "个", "在", "了", "地", "着", "是", "视频", "中", "里", "和"},
    "ja": {"が", "の", "は", "を", "に", "と", "て", "いる", "動画", "する"},
    "es": {"un", "una", "el", "la", "los", "las", "de", "del", "que", "y"},
    "fr": {"un", "une", "le", "la", "les", "l", "de", "du", "des", "qui", "et"},
    "de": {"ein", "eine", "einer", "eines", "der", "die", "das", "den", "und"},
}
ENGLISH = {w for table in LEXICON.values() for phrase in table.values() for w in phrase.split()}
LANGUAGES = tuple(LEXICON)


@dataclass
class Translation:
    text: str  # the English rewriting (the input itself when nothing was translated)
    language: str | None  # the language recognised, None for English or unknown
    matched: list[str] = field(default_factory=list)  # phrases found in the lexicon
    unknown: list[str] = field(default_factory=list)  # what the lexicon did not know


def _has(text: str, *scripts: str) -> bool:
    return any(any(s in unicodedata.name(ch, "") for s in scripts) for ch in text)


def _latin_words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+", text.lower())


def _phrase_matches(words: list[str], table: dict[str, str]) -> list[tuple[int, int, str]]:
    """Longest-first (start, length, phrase) matches of the table's phrases over words."""
    phrases = sorted((p.split() for p in table), key=len, reverse=True)
    out, i = [], 0
    while i < len(words):
        for p in phrases:
            if words[i : i + len(p)] == p:
                out.append((i, len(p), " ".join(p)))
                i += len(p)
                break
        else:
            i += 1
    return out


def detect_language(text: str) -> str | None:
    """``zh``/``ja`` by script (kana means Japanese), else the Latin-script language with
    the most lexicon words, if it has more of them than English; None means English."""
    if _has(text, "HIRAGANA", "KATAKANA"):
        return "ja"
    if _has(text, "CJK UNIFIED"):
        return "zh"
    words = _latin_words(text)
    english = sum(w in ENGLISH for w in words)
    scores = {lang: sum(n for _, n, _ in _phrase_matches(words, LEXICON[lang])) for lang in ("es", "fr", "de")}
    best = max(scores, key=scores.get)
    return best if scores[best] > english else None


def to_english(text: str, language: str | None = None) -> Translation:
    """The English rewriting of ``text`` (recognised, or in ``language``)."""
    language = language or detect_language(text)
    if language is None:
        return Translation(text, None)
    if language not in LEXICON:
        raise ValueError(f"no lexicon for {language!r}; built in: {', '.join(LANGUAGES)}")
    table, skip = LEXICON[language], FUNCTION_WORDS[language]
    if language in ("zh", "ja"):
        keys = sorted(table, key=len, reverse=True)
        out, matched, unknown, i = [], [], [], 0
        chars = "".join(ch if unicodedata.category(ch)[0] not in "PS" else " " for ch in text)
        while i < len(chars):
            if chars[i].isspace():
                i += 1
                continue
            latin = re.match(r"[A-Za-z]+", chars[i:])
            if latin:  # English mixed in (a prompt template around a Chinese label) stays
                out.append(latin.group(0))
                i += latin.end()
                continue
            key = next((k for k in keys if chars.startswith(k, i)), None)
            if key is not None:
                out.append(table[key])
                matched.append(key)
                i += len(key)
                continue
            word = next((w for w in sorted(skip, key=len, reverse=True) if chars.startswith(w, i)), None)
            if word is None:
                unknown.append(chars[i])
            i += len(word) if word else 1
        return Translation(" ".join(out), language, matched, unknown)
    words = _latin_words(text)
    starts = {i: (n, phrase) for i, n, phrase in _phrase_matches(words, table)}
    out, matched, unknown, i = [], [], [], 0
    while i < len(words):
        if i in starts:
            n, phrase = starts[i]
            out.append(table[phrase])
            matched.append(phrase)
            i += n
            continue
        if words[i] not in skip:
            out.append(words[i])
            unknown.append(words[i])
        i += 1
    return Translation(" ".join(_adjectives_first(out)), language, matched, unknown)


def _adjectives_first(phrases: list[str]) -> list[str]:
    """"circle red" (Spanish, French order) -> "red circle"."""
    from vidfm.data.synthetic import COLOURS, SHAPES, SIZES

    shapes, adjectives = set(SHAPES), set(COLOURS) | set(SIZES)
    out = list(phrases)
    for i in range(len(out) - 1):
        if out[i] in shapes and out[i + 1] in adjectives:
            j = i + 1
            while j < len(out) and out[j] in adjectives:
                j += 1
            out[i:j] = out[i + 1 : j] + [out[i]]
    return out


def from_english(text: str, language: str) -> str:
    """English caption -> ``language``, phrase by phrase (for caption augmentation when a
    multilingual text tower is trained); words without an entry stay English."""
    if language not in LEXICON:
        raise ValueError(f"no lexicon for {language!r}; built in: {', '.join(LANGUAGES)}")
    reverse: dict[str, str] = {}
    for foreign, english in LEXICON[language].items():
        reverse.setdefault(english, foreign)  # the first (most common) form of each meaning
    words = _latin_words(text)
    joiner = "" if language in ("zh", "ja") else " "
    articles = {"a", "an", "the"}
    out, i = [], 0
    for start, n, phrase in _phrase_matches(words, reverse):
        out += [w for w in words[i:start] if w not in articles] if joiner else []
        out.append(reverse[phrase])
        i = start + n
    out += [w for w in words[i:] if w not in articles] if joiner else []
    return joiner.join(out)


__all__ = ["LANGUAGES", "LEXICON", "Translation", "detect_language", "from_english", "to_english"]
