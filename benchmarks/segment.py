"""Referring video object segmentation on the synthetic world: J&F against two baselines.

    python benchmarks/segment.py [--model benchmarks/_data/runs/segment_mix] [--splits test,compositional] [--json F]

The model is the tiny Video-LLM of benchmarks/videollm.py with a [SEG] token and a
sam2-tiny trained by

    vidfm train videollm benchmarks/_data/world_600 --stage segment --init benchmarks/_data/runs/videollm/tiny/best \
        --out benchmarks/_data/runs/segment --epochs 24 --batch-size 8 --lr 1e-3 --seg-mix 0
    vidfm train videollm benchmarks/_data/world_600 --stage segment --init benchmarks/_data/runs/segment/best \
        --out benchmarks/_data/runs/segment_more --epochs 12 --batch-size 8 --lr 5e-4 --seg-mix 0
    vidfm train videollm benchmarks/_data/world_600 --stage segment --init benchmarks/_data/runs/segment_more/best \
        --out benchmarks/_data/runs/segment_mix --epochs 4 --batch-size 8 --lr 5e-4 --seg-mix 1

Every object of every video of a split is asked for by its shortest unique description (the
main object's with its action), and every video once for a colour and shape it does not show.
J&F (DAVIS) on every frame, per (video, object) and mean; clips with several objects apart
(with the right-object rate); refusals of absent things; the whole-frame and
largest-moving-region baselines on the same objects, and the ratio of ours to the better one.
Also a contact sheet of predicted masks (benchmarks/results/segment_examples.png) and the
seconds per frame.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
WORLD = HERE / "_data" / "world_600"


def examples(model, out: Path, count: int = 6) -> None:
    """Middle frames of a few multi-object test clips with the mask drawn, one per expression."""
    from vidfm.io.reader import VideoReader
    from vidfm.io.writer import save_contact_sheet
    from vidfm.tasks.segment import decode_masks, overlay, refer, referring_records

    records = [r for r in referring_records(WORLD, "test", seed=1, train=False, negatives=0.0) if r["objects"] > 1][:count]
    frames, labels = [], []
    for r in records:
        with VideoReader(r["video"]) as reader:
            frame = reader[len(reader) // 2]
        ref = refer(model, r["video"], r["expression"])
        mask = decode_masks(model, frame[None], ref["prompt"])[0][0] if ref["prompt"] is not None else np.zeros(frame.shape[:2], bool)
        frames.append(overlay(frame, mask))
        labels.append(r["expression"].removeprefix("the ")[:24])
    save_contact_sheet(out, np.stack(frames), labels=labels, columns=3, scale=4)


def main() -> None:
    from vidfm.models.videollm import VideoLLM
    from vidfm.tasks.segment import evaluate_segmentation

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(HERE / "_data" / "runs" / "segment_mix"))
    ap.add_argument("--splits", default="test,compositional")
    ap.add_argument("--json", default=str(HERE / "results" / "segment.json"))
    args = ap.parse_args()
    model = VideoLLM.from_pretrained(args.model)
    results = {"model": args.model, "world": str(WORLD)}
    for split in args.splits.split(","):
        t0 = time.perf_counter()
        m = evaluate_segmentation(model, WORLD, split)
        seconds = time.perf_counter() - t0
        b = m["baselines"]
        best = max(b["whole_frame"]["JF"], b["moving_region"]["JF"])
        m["ratio_to_best_baseline"] = m["JF"] / best if best else None
        m["seconds"] = seconds
        results[split] = m
        multi = m["multi_object"]
        print(f"{split}: J&F {m['JF']:.3f} (J {m['J']:.3f}, F {m['F']:.3f}) over {m['count']} objects in {m['videos']} videos; "
              f"one object {m['single_object']['JF']:.3f}, several {multi['JF']:.3f} (right object {multi['right_object']:.3f}, {multi['count']} objects); "
              f"absent refused {m['absent_refused']['rate']:.3f}; [SEG] given {m['answered_with_seg']:.3f}")  # fmt: skip
        print(f"  baselines J&F: whole frame {b['whole_frame']['JF']:.3f}, largest moving region {b['moving_region']['JF']:.3f}; "
              f"ours / best baseline {m['ratio_to_best_baseline']:.2f}x; {seconds:.0f} s for {m['count']} objects")  # fmt: skip
    examples(model, HERE / "results" / "segment_examples.png")
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json} and {HERE / 'results' / 'segment_examples.png'}")


if __name__ == "__main__":
    main()
