"""Zero-shot classification with labels in other languages, through the built-in lexicon.

    python benchmarks/multilingual.py --json benchmarks/results/multilingual.json

The 600-video world's val and test splits (144 videos, 12 per action), the contrastive r2plus1d-tiny with the bundled English
all-MiniLM-L6-v2 text tower (``runs/pretrain/contrastive``), vidfm's prompt ensemble.
The 12 action labels are written by hand in each language, as a user would type them.
Each language runs with the lexicon (rewritten into English before the text tower) and
without it (the raw words go to the English tower).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

ROOT = Path(__file__).parent / "_data"
WORLD = ROOT / "world_600"
MODEL = ROOT / "runs" / "pretrain" / "contrastive"

LABELS = {
    "en": {"move_left": "moves to the left", "move_right": "moves to the right", "move_up": "moves up", "move_down": "moves down",
           "grow": "grows", "shrink": "shrinks", "rotate": "rotates", "change_colour": "changes colour", "bounce": "bounces",
           "appear": "appears", "disappear": "disappears", "stay_still": "stays still"},
    "zh": {"move_left": "向左移动", "move_right": "向右移动", "move_up": "上升", "move_down": "下降", "grow": "变大", "shrink": "缩小",
           "rotate": "旋转", "change_colour": "改变颜色", "bounce": "弹跳", "appear": "出现", "disappear": "消失", "stay_still": "保持不动"},
    "ja": {"move_left": "左に動く", "move_right": "右に動く", "move_up": "上がる", "move_down": "下がる", "grow": "大きくなる",
           "shrink": "小さくなる", "rotate": "回転する", "change_colour": "色が変わる", "bounce": "跳ねる", "appear": "現れる",
           "disappear": "消える", "stay_still": "動かない"},
    "es": {"move_left": "se mueve a la izquierda", "move_right": "se mueve a la derecha", "move_up": "sube", "move_down": "baja",
           "grow": "crece", "shrink": "se encoge", "rotate": "gira", "change_colour": "cambia de color", "bounce": "rebota",
           "appear": "aparece", "disappear": "desaparece", "stay_still": "se queda quieto"},
    "fr": {"move_left": "se déplace vers la gauche", "move_right": "se déplace vers la droite", "move_up": "monte", "move_down": "descend",
           "grow": "grandit", "shrink": "rétrécit", "rotate": "tourne", "change_colour": "change de couleur", "bounce": "rebondit",
           "appear": "apparaît", "disappear": "disparaît", "stay_still": "reste immobile"},
    "de": {"move_left": "bewegt sich nach links", "move_right": "bewegt sich nach rechts", "move_up": "steigt", "move_down": "sinkt",
           "grow": "wächst", "shrink": "schrumpft", "rotate": "dreht sich", "change_colour": "wechselt die Farbe", "bounce": "springt",
           "appear": "erscheint", "disappear": "verschwindet", "stay_still": "bleibt stehen"},
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    args = ap.parse_args()
    from vidfm.data.datasets import DataSource
    from vidfm.retrieval.embedder import Embedder
    from vidfm.tasks.retrieval import embed_videos, zero_shot_classifier

    source = DataSource(WORLD)
    records, classes = source.classification("val")
    records += source.classification("test")[0]
    with_lexicon = Embedder(MODEL, lexicon=True)
    without = copy.copy(with_lexicon)  # the same loaded model, queries sent as they are
    without.lexicon = False
    videos = embed_videos(with_lexicon, [r["path"] for r in records])
    gold = [r["label"] for r in records]
    results = {}
    for lang, table in LABELS.items():
        labels = [table[c] for c in classes]
        for name, embedder in (("lexicon", with_lexicon), ("raw", without)):
            if lang == "en" and name == "raw":
                continue
            scores = videos @ zero_shot_classifier(embedder, labels).T
            acc = float((scores.argmax(1) == gold).mean())
            results[f"{lang}_{name}"] = acc
            print(f"{lang} labels, {name}: top-1 {acc:.3f} (chance {1 / len(classes):.3f}, {len(records)} videos)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
